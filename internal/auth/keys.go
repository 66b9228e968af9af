package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// Algorithms, as they appear in a token's alg header.
const (
	// AlgEdDSA is Ed25519 signatures; the preferred algorithm.
	AlgEdDSA = "EdDSA"
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256.
	AlgRS256 = "RS256"
	// AlgHS256 is HMAC-SHA256 with a shared secret; for local development only.
	AlgHS256 = "HS256"
)

// MinRSABits is the smallest RSA modulus a key may have.
const MinRSABits = 2048

// MinHS256SecretLen is the smallest development HS256 secret, in bytes.
const MinHS256SecretLen = 32

// VerificationKey is one public key a Verifier accepts, pinned to one
// algorithm.
type VerificationKey struct {
	// ID is the key id matched against a token's kid header. Empty means the
	// RFC 7638 thumbprint of Key.
	ID string
	// Alg is the only algorithm the key verifies: AlgEdDSA for an
	// ed25519.PublicKey, AlgRS256 for an *rsa.PublicKey.
	Alg string
	// Key is an ed25519.PublicKey or *rsa.PublicKey.
	Key crypto.PublicKey
}

// ParsePublicKeyPEM parses the first PEM block of data as an Ed25519 or RSA
// public key (PKIX "PUBLIC KEY", or PKCS #1 "RSA PUBLIC KEY") and returns it
// pinned to its algorithm, with its thumbprint as ID.
func ParsePublicKeyPEM(data []byte) (VerificationKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return VerificationKey{}, errors.New("no PEM block")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return VerificationKey{}, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return VerificationKey{}, fmt.Errorf("parse public key: %w", err)
	}
	return newVerificationKey(pub)
}

func newVerificationKey(pub any) (VerificationKey, error) {
	k := VerificationKey{Key: pub}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		k.Alg = AlgEdDSA
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return VerificationKey{}, fmt.Errorf("RSA key has %d bits, want at least %d", p.N.BitLen(), MinRSABits)
		}
		k.Alg = AlgRS256
	default:
		return VerificationKey{}, fmt.Errorf("unsupported public key type %T (want Ed25519 or RSA)", pub)
	}
	id, err := Thumbprint(pub)
	if err != nil {
		return VerificationKey{}, err
	}
	k.ID = id
	return k, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url) of an
// Ed25519 or RSA public key. Signer and Verifier use it as the default kid, so
// a key pair needs no configured id.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var canon string
	switch p := pub.(type) {
	case ed25519.PublicKey:
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(p) + `"}`
	case *rsa.PublicKey:
		e := big.NewInt(int64(p.E)).Bytes()
		canon = `{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(p.N.Bytes()) + `"}`
	default:
		return "", fmt.Errorf("thumbprint: unsupported key type %T", pub)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:]), nil
}

// ParsePrivateKeyPEM parses the first PEM block of data as an Ed25519 or RSA
// private key (PKCS #8 "PRIVATE KEY", or PKCS #1 "RSA PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T (want Ed25519 or RSA)", key)
	}
}

// GenerateEd25519PEM makes a new Ed25519 key pair and returns the private key
// as PKCS #8 PEM (for the Signer, keep it secret) and the public key as PKIX
// PEM (for the Verifier).
func GenerateEd25519PEM() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal public key: %w", err)
	}
	privatePEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	publicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return privatePEM, publicPEM, nil
}

// GenerateHS256DevSecret returns a new random HS256 secret for local
// development: 32 random bytes as 43 base64url characters. The text itself is
// the secret (pass it as is to Config.DevHS256Secret and NewDevHS256Signer).
func GenerateHS256DevSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
