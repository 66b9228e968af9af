package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenTTL is the longest lifetime Signer.IssueFor gives a token.
const MaxTokenTTL = 366 * 24 * time.Hour

// Signer issues tokens. It is safe for concurrent use.
type Signer struct {
	method   jwt.SigningMethod
	key      any
	kid      string
	issuer   string
	audience string
	now      func() time.Time
}

// SignerConfig names the issuer and audience written into issued tokens.
type SignerConfig struct {
	// Issuer is written as iss when a token has none. Required.
	Issuer string
	// Audience is written as aud when a token has none. Required.
	Audience string
	// Now is the clock for iat and TTLs. Defaults to time.Now.
	Now func() time.Time
}

func (c SignerConfig) signer(m jwt.SigningMethod, key any, kid string) (*Signer, error) {
	if c.Issuer == "" || c.Audience == "" {
		return nil, errors.New("signer config: Issuer and Audience are required")
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &Signer{method: m, key: key, kid: kid, issuer: c.Issuer, audience: c.Audience, now: now}, nil
}

// NewSigner returns a Signer for an Ed25519 (EdDSA) or RSA (RS256) private
// key. Tokens carry the key's RFC 7638 thumbprint as kid, which is what a
// Verifier loading the public key expects.
func NewSigner(cfg SignerConfig, key crypto.Signer) (*Signer, error) {
	var m jwt.SigningMethod
	switch k := key.(type) {
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
		m = jwt.SigningMethodRS256
	default:
		return nil, fmt.Errorf("unsupported signing key %T (want Ed25519 or RSA)", key)
	}
	kid, err := Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	return cfg.signer(m, key, kid)
}

// NewSignerFromPEM is NewSigner with a PKCS #8 or PKCS #1 PEM private key.
func NewSignerFromPEM(cfg SignerConfig, privatePEM []byte) (*Signer, error) {
	key, err := ParsePrivateKeyPEM(privatePEM)
	if err != nil {
		return nil, err
	}
	return NewSigner(cfg, key)
}

// LoadSigner is NewSignerFromPEM with the PEM read from path.
func LoadSigner(cfg SignerConfig, path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	s, err := NewSignerFromPEM(cfg, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// NewDevHS256Signer returns a Signer for HS256 with a shared secret of at
// least 32 bytes. For local development only; tokens carry kid "dev-hs256".
func NewDevHS256Signer(cfg SignerConfig, secret []byte) (*Signer, error) {
	if len(secret) < MinHS256SecretLen {
		return nil, fmt.Errorf("HS256 secret has %d bytes, want at least %d", len(secret), MinHS256SecretLen)
	}
	return cfg.signer(jwt.SigningMethodHS256, slices.Clone(secret), DevHS256KeyID)
}

// KeyID is the kid the Signer writes into tokens.
func (s *Signer) KeyID() string { return s.kid }

// Alg is the algorithm the Signer signs with.
func (s *Signer) Alg() string { return s.method.Alg() }

// Issue signs c. It fills what c leaves empty: iss and aud from the
// SignerConfig, iat with now, and jti with NewJTI(c.Tenant). c must have a
// tenant and an expiry.
func (s *Signer) Issue(c Claims) (string, error) {
	if c.Tenant == "" {
		return "", ErrMissingTenant
	}
	if c.ExpiresAt == nil {
		return "", errors.New("issue: claims have no exp")
	}
	if c.Issuer == "" {
		c.Issuer = s.issuer
	}
	if len(c.Audience) == 0 {
		c.Audience = jwt.ClaimStrings{s.audience}
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(s.now())
	}
	if c.ID == "" {
		id, err := NewJTI(c.Tenant)
		if err != nil {
			return "", err
		}
		c.ID = id
	}
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = s.kid
	out, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return out, nil
}

// TokenRequest describes a token for IssueFor: what `jetinferctl token issue`
// takes.
type TokenRequest struct {
	// Tenant is the tid claim. Required.
	Tenant string
	// Subject is the sub claim: who or what uses the token. Defaults to the
	// tenant.
	Subject string
	// Scopes are the granted scopes; each must be one of Scopes. Required.
	Scopes []string
	// Tasks, when not empty, restricts the token to these task names.
	Tasks []string
	// TTL is the token's lifetime, at most MaxTokenTTL. Required.
	TTL time.Duration
}

// IssueFor builds claims from req, checks them, and signs them. It returns
// the token and its claims (the jti among them, for revocation).
func (s *Signer) IssueFor(req TokenRequest) (string, *Claims, error) {
	if req.Tenant == "" {
		return "", nil, ErrMissingTenant
	}
	if req.TTL <= 0 || req.TTL > MaxTokenTTL {
		return "", nil, fmt.Errorf("issue: TTL %s must be positive and at most %s", req.TTL, MaxTokenTTL)
	}
	if len(req.Scopes) == 0 {
		return "", nil, errors.New("issue: no scopes")
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(Scopes, sc) {
			return "", nil, fmt.Errorf("issue: unknown scope %q (known: %s)", sc, strings.Join(Scopes, " "))
		}
	}
	for _, t := range req.Tasks {
		if t == "" || strings.ContainsAny(t, " \t\n") {
			return "", nil, fmt.Errorf("issue: bad task name %q", t)
		}
	}
	sub := req.Subject
	if sub == "" {
		sub = req.Tenant
	}
	jti, err := NewJTI(req.Tenant)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{s.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(req.TTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		Tenant: req.Tenant,
		Scope:  strings.Join(req.Scopes, " "),
		Tasks:  slices.Clone(req.Tasks),
	}
	tok, err := s.Issue(*c)
	if err != nil {
		return "", nil, err
	}
	return tok, c, nil
}

// NewJTI returns a fresh token id that names its tenant: "<tenant>.<128
// random bits, base64url>". Tenant IDs cannot contain a dot, so JTITenant can
// recover the tenant, which lets a token be revoked by its jti alone.
func NewJTI(tenant string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("jti: %w", err)
	}
	return tenant + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// JTITenant returns the tenant named by a jti made by NewJTI.
func JTITenant(jti string) (string, bool) {
	i := strings.LastIndexByte(jti, '.')
	if i <= 0 || i == len(jti)-1 {
		return "", false
	}
	return jti[:i], true
}
