package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://auth.jetinfer.test"
	testAudience = "jetinfer"
)

// testNow is the fixed clock of these tests, so that tokens in the fuzz corpus
// stay valid.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

type testKeys struct {
	edPriv    ed25519.PrivateKey
	edPub     ed25519.PublicKey
	edPubPEM  []byte
	rsaPriv   *rsa.PrivateKey
	rsaPubPEM []byte
	devSecret []byte
}

var (
	keysOnce sync.Once
	keys     testKeys
)

// loadKeys makes deterministic Ed25519 keys and one RSA key per test binary.
func loadKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		seed := sha256.Sum256([]byte("jetinfer auth test key"))
		keys.edPriv = ed25519.NewKeyFromSeed(seed[:])
		keys.edPub = keys.edPriv.Public().(ed25519.PublicKey)
		der, _ := x509.MarshalPKIXPublicKey(keys.edPub)
		keys.edPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys.rsaPriv = k
		der, _ = x509.MarshalPKIXPublicKey(&k.PublicKey)
		keys.rsaPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		keys.devSecret = []byte("0123456789abcdef0123456789abcdef-dev")
	})
	return keys
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestVerifier accepts the Ed25519 and RSA test keys from PEM files, and
// the HS256 dev secret when dev is true.
func newTestVerifier(t testing.TB, dev bool, mods ...func(*Config)) *Verifier {
	t.Helper()
	k := loadKeys(t)
	cfg := Config{
		Issuer:                testIssuer,
		Audience:              testAudience,
		Ed25519PublicKeyFiles: []string{writeFile(t, "ed.pem", k.edPubPEM)},
		RSAPublicKeyFiles:     []string{writeFile(t, "rsa.pem", k.rsaPubPEM)},
		Now:                   fixedNow,
	}
	if dev {
		cfg.DevHS256Secret = k.devSecret
	}
	for _, m := range mods {
		m(&cfg)
	}
	v, err := NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func signerCfg() SignerConfig {
	return SignerConfig{Issuer: testIssuer, Audience: testAudience, Now: fixedNow}
}

func edSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner(signerCfg(), loadKeys(t).edPriv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "svc-news",
			Audience:  jwt.ClaimStrings{testAudience},
			ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour)),
			IssuedAt:  jwt.NewNumericDate(testNow),
			ID:        "acme.fixed-jti",
		},
		Tenant: "acme",
		Scope:  "jobs:write jobs:read",
	}
}

// sign signs c with method and key, setting kid when not empty.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyAccepts(t *testing.T) {
	k := loadKeys(t)
	v := newTestVerifier(t, true)
	edKID, _ := Thumbprint(k.edPub)
	rsaKID, _ := Thumbprint(&k.rsaPriv.PublicKey)
	withExp := func(d time.Duration) Claims {
		c := goodClaims()
		c.ExpiresAt = jwt.NewNumericDate(testNow.Add(d))
		return c
	}
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"EdDSA with kid", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, goodClaims())},
		{"EdDSA without kid", sign(t, jwt.SigningMethodEdDSA, k.edPriv, "", goodClaims())},
		{"RS256 with kid", sign(t, jwt.SigningMethodRS256, k.rsaPriv, rsaKID, goodClaims())},
		{"RS256 without kid", sign(t, jwt.SigningMethodRS256, k.rsaPriv, "", goodClaims())},
		{"HS256 dev with kid", sign(t, jwt.SigningMethodHS256, k.devSecret, DevHS256KeyID, goodClaims())},
		{"HS256 dev without kid", sign(t, jwt.SigningMethodHS256, k.devSecret, "", goodClaims())},
		{"expired within leeway", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, withExp(-10*time.Second))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Tenant != "acme" || c.Subject != "svc-news" || !c.HasScope(ScopeJobsWrite) {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

// TestVerifyRefusesAttacks is the table of tokens that must never pass.
func TestVerifyRefusesAttacks(t *testing.T) {
	k := loadKeys(t)
	edKID, _ := Thumbprint(k.edPub)
	rsaKID, _ := Thumbprint(&k.rsaPriv.PublicKey)
	rsaPubDER, _ := x509.MarshalPKIXPublicKey(&k.rsaPriv.PublicKey)
	edPubDER, _ := x509.MarshalPKIXPublicKey(k.edPub)
	mod := func(f func(*Claims)) Claims { c := goodClaims(); f(&c); return c }
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)

	noneTok := func(kid string) string {
		h := map[string]any{"alg": "none", "typ": "JWT"}
		if kid != "" {
			h["kid"] = kid
		}
		return b64(h) + "." + b64(goodClaims()) + "."
	}
	libNone := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", goodClaims())
	good := sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, goodClaims())
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	flipped[5] ^= 0x01
	if flipped[5] == '-' || flipped[5] == '_' || flipped[5] == '.' {
		flipped[5] = 'A'
	}
	badSig := parts[0] + "." + parts[1] + "." + string(flipped)
	// A valid header and signature over other claims: claims swapped in.
	swapped := parts[0] + "." + b64(mod(func(c *Claims) { c.Tenant = "victim" })) + "." + parts[2]
	// A mismatching alg in a header whose kid names the Ed25519 key.
	rsaAsEd := sign(t, jwt.SigningMethodRS256, k.rsaPriv, edKID, goodClaims())

	attacks := []struct {
		name string
		tok  string
		want error // an extra errors.Is check, when set
	}{
		{"alg none", noneTok(""), nil},
		{"alg none with kid", noneTok(edKID), nil},
		{"alg none via library", libNone, nil},
		{"HS256 with Ed25519 public PEM as secret", sign(t, jwt.SigningMethodHS256, k.edPubPEM, "", goodClaims()), nil},
		{"HS256 with Ed25519 public PEM as secret and its kid", sign(t, jwt.SigningMethodHS256, k.edPubPEM, edKID, goodClaims()), nil},
		{"HS256 with raw Ed25519 public key as secret and its kid", sign(t, jwt.SigningMethodHS256, []byte(k.edPub), edKID, goodClaims()), nil},
		{"HS256 with Ed25519 public DER as secret", sign(t, jwt.SigningMethodHS256, edPubDER, edKID, goodClaims()), nil},
		{"HS256 with RSA public PEM as secret", sign(t, jwt.SigningMethodHS256, k.rsaPubPEM, "", goodClaims()), nil},
		{"HS256 with RSA public PEM as secret and its kid", sign(t, jwt.SigningMethodHS256, k.rsaPubPEM, rsaKID, goodClaims()), nil},
		{"HS256 with RSA public DER as secret and its kid", sign(t, jwt.SigningMethodHS256, rsaPubDER, rsaKID, goodClaims()), nil},
		{"HS256 with dev kid but PEM secret", sign(t, jwt.SigningMethodHS256, k.edPubPEM, DevHS256KeyID, goodClaims()), nil},
		{"RS256 header with Ed25519 kid", rsaAsEd, nil},
		{"expired", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Hour)) })), jwt.ErrTokenExpired},
		{"expired just past leeway", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-31 * time.Second)) })), jwt.ErrTokenExpired},
		{"not yet valid (nbf)", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Hour)) })), jwt.ErrTokenNotValidYet},
		{"issued in the future (iat)", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(testNow.Add(time.Hour)) })), jwt.ErrTokenUsedBeforeIssued},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other-service"} })), jwt.ErrTokenInvalidAudience},
		{"no audience", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.Audience = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.Issuer = "https://evil.test" })), jwt.ErrTokenInvalidIssuer},
		{"missing exp", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.ExpiresAt = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"missing tid", sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, mod(func(c *Claims) { c.Tenant = "" })), ErrMissingTenant},
		{"bad signature", badSig, jwt.ErrTokenSignatureInvalid},
		{"claims swapped under a valid signature", swapped, jwt.ErrTokenSignatureInvalid},
		{"signed by another key under our kid", sign(t, jwt.SigningMethodEdDSA, otherEd, edKID, goodClaims()), jwt.ErrTokenSignatureInvalid},
		{"signed by another key without kid", sign(t, jwt.SigningMethodEdDSA, otherEd, "", goodClaims()), jwt.ErrTokenSignatureInvalid},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, k.edPriv, "no-such-key", goodClaims()), ErrUnknownKey},
		{"non-string kid", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, goodClaims())
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(k.edPriv)
			return s
		}(), nil},
		{"ES256 not configured", b64(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + b64(goodClaims()) + ".c2ln", jwt.ErrTokenSignatureInvalid},
		{"empty", "", ErrNoToken},
		{"garbage", "not.a.token", jwt.ErrTokenMalformed},
		{"oversized", strings.Repeat("a", MaxTokenLen+1), nil},
	}
	for _, dev := range []bool{false, true} {
		v := newTestVerifier(t, dev)
		for _, a := range attacks {
			name := a.name
			if dev {
				name += " (dev HS256 on)"
			}
			t.Run(name, func(t *testing.T) {
				c, err := v.Verify(a.tok)
				if err == nil {
					t.Fatalf("accepted: %+v", c)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("error %v does not wrap ErrInvalidToken", err)
				}
				if a.want != nil && !errors.Is(err, a.want) {
					t.Errorf("error %v, want %v", err, a.want)
				}
			})
		}
	}
}

func TestHS256RefusedWithoutDevSecret(t *testing.T) {
	k := loadKeys(t)
	v := newTestVerifier(t, false)
	tok := sign(t, jwt.SigningMethodHS256, k.devSecret, "", goodClaims())
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("HS256 accepted by a verifier without a dev secret")
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	k := loadKeys(t)
	edFile := writeFile(t, "ed.pem", k.edPubPEM)
	rsaFile := writeFile(t, "rsa.pem", k.rsaPubPEM)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	smallFile := writeFile(t, "small.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallDER}))
	base := Config{Issuer: testIssuer, Audience: testAudience}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no keys", func(c *Config) {}},
		{"no issuer", func(c *Config) { c.Issuer = ""; c.Ed25519PublicKeyFiles = []string{edFile} }},
		{"no audience", func(c *Config) { c.Audience = ""; c.Ed25519PublicKeyFiles = []string{edFile} }},
		{"short dev secret", func(c *Config) { c.DevHS256Secret = []byte("short") }},
		{"RSA file listed as Ed25519", func(c *Config) { c.Ed25519PublicKeyFiles = []string{rsaFile} }},
		{"Ed25519 file listed as RSA", func(c *Config) { c.RSAPublicKeyFiles = []string{edFile} }},
		{"1024-bit RSA", func(c *Config) { c.RSAPublicKeyFiles = []string{smallFile} }},
		{"missing file", func(c *Config) { c.Ed25519PublicKeyFiles = []string{filepath.Join(t.TempDir(), "nope.pem")} }},
		{"duplicate key", func(c *Config) { c.Ed25519PublicKeyFiles = []string{edFile, edFile} }},
		{"HS256 for JWKS", func(c *Config) { c.JWKSURL = "http://127.0.0.1:1/jwks"; c.JWKSAlgorithms = []string{AlgHS256} }},
		{"unreachable JWKS", func(c *Config) { c.JWKSURL = "http://127.0.0.1:1/jwks" }},
		{"leeway too large", func(c *Config) { c.Ed25519PublicKeyFiles = []string{edFile}; c.Leeway = time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			v, err := NewVerifier(context.Background(), cfg)
			if err == nil {
				v.Close()
				t.Fatal("NewVerifier accepted the config")
			}
		})
	}
}

func jwk(kid string, pub ed25519.PublicKey) map[string]string {
	return map[string]string{
		"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}
}

func TestVerifyJWKS(t *testing.T) {
	k := loadKeys(t)
	kid, _ := Thumbprint(k.edPub)
	var (
		mu    sync.Mutex
		set   = []map[string]string{jwk(kid, k.edPub)}
		fetch int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetch++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer srv.Close()
	v, err := NewVerifier(context.Background(), Config{
		Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL + "/jwks", Now: fixedNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	mu.Lock()
	if fetch != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", fetch)
	}
	mu.Unlock()
	tok, _, err := edSigner(t).IssueFor(TokenRequest{Tenant: "acme", Scopes: []string{ScopeJobsRead}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(tok); err != nil || c.Tenant != "acme" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.edPriv, "", goodClaims())); err != nil {
		t.Fatalf("Verify without kid: %v", err)
	}

	// The identity provider rotates in a new key: its first token makes the
	// Verifier refetch the set.
	newPub, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	mu.Lock()
	set = append(set, jwk("2026-11", newPub))
	mu.Unlock()
	if _, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, newPriv, "2026-11", goodClaims())); err != nil {
		t.Fatalf("token of a rotated-in key: %v", err)
	}
	// Unknown kids right after are refused at once, without a refetch.
	start := time.Now()
	if _, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.edPriv, "rotated-away", goodClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unknown kid held the request %v", d)
	}
	mu.Lock()
	if fetch != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", fetch)
	}
	mu.Unlock()

	for name, tok := range map[string]string{
		"HS256 with JWKS x as secret": sign(t, jwt.SigningMethodHS256, []byte(k.edPub), kid, goodClaims()),
		"RS256 under an EdDSA kid":    sign(t, jwt.SigningMethodRS256, k.rsaPriv, kid, goodClaims()),
		"another unknown kid":         sign(t, jwt.SigningMethodEdDSA, k.edPriv, "nope", goodClaims()),
	} {
		if _, err := v.Verify(tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSignerRoundTrip(t *testing.T) {
	k := loadKeys(t)
	v := newTestVerifier(t, true)
	rsaDER := x509.MarshalPKCS1PrivateKey(k.rsaPriv)
	rsaSigner, err := NewSignerFromPEM(signerCfg(), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: rsaDER}))
	if err != nil {
		t.Fatal(err)
	}
	devSigner, err := NewDevHS256Signer(signerCfg(), k.devSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Signer{edSigner(t), rsaSigner, devSigner} {
		t.Run(s.Alg(), func(t *testing.T) {
			tok, c, err := s.IssueFor(TokenRequest{
				Tenant: "acme", Scopes: []string{ScopeJobsWrite, ScopeBackfillsWrite},
				Tasks: []string{"sentiment"}, TTL: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.ID != c.ID || got.Tenant != "acme" || got.Subject != "acme" {
				t.Fatalf("claims = %+v, issued %+v", got, c)
			}
			if tid, ok := JTITenant(got.ID); !ok || tid != "acme" {
				t.Fatalf("JTITenant(%q) = %q, %v", got.ID, tid, ok)
			}
			if !got.HasScope(ScopeBackfillsWrite) || got.HasScope(ScopeDLQAdmin) {
				t.Fatalf("scopes %q", got.Scope)
			}
			if !got.AllowsTask("sentiment") || got.AllowsTask("ner") {
				t.Fatalf("tasks %q", got.Tasks)
			}
			if !got.ExpiresAt.Time.Equal(testNow.Add(time.Hour)) {
				t.Fatalf("exp %v", got.ExpiresAt)
			}
		})
	}
}

func TestGeneratedKeysWork(t *testing.T) {
	priv, pub, err := GenerateEd25519PEM()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := GenerateHS256DevSecret()
	if err != nil || len(secret) < MinHS256SecretLen {
		t.Fatalf("secret %q, %v", secret, err)
	}
	v, err := NewVerifier(context.Background(), Config{
		Issuer: testIssuer, Audience: testAudience,
		Ed25519PublicKeyFiles: []string{writeFile(t, "pub.pem", pub)},
		DevHS256Secret:        []byte(secret),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	s, err := LoadSigner(SignerConfig{Issuer: testIssuer, Audience: testAudience}, writeFile(t, "priv.pem", priv))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.IssueFor(TokenRequest{Tenant: "t1", Scopes: []string{ScopeJobsRead}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	ds, _ := NewDevHS256Signer(SignerConfig{Issuer: testIssuer, Audience: testAudience}, []byte(secret))
	tok, _, _ = ds.IssueFor(TokenRequest{Tenant: "t1", Scopes: []string{ScopeJobsRead}, TTL: time.Minute})
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestIssueForRefusesBadRequests(t *testing.T) {
	s := edSigner(t)
	for name, req := range map[string]TokenRequest{
		"no tenant":     {Scopes: []string{ScopeJobsRead}, TTL: time.Hour},
		"no scopes":     {Tenant: "a", TTL: time.Hour},
		"unknown scope": {Tenant: "a", Scopes: []string{"jobs:admin"}, TTL: time.Hour},
		"zero ttl":      {Tenant: "a", Scopes: []string{ScopeJobsRead}},
		"ttl too long":  {Tenant: "a", Scopes: []string{ScopeJobsRead}, TTL: 2 * MaxTokenTTL},
		"bad task":      {Tenant: "a", Scopes: []string{ScopeJobsRead}, TTL: time.Hour, Tasks: []string{"a b"}},
	} {
		if _, _, err := s.IssueFor(req); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	if _, err := s.Issue(Claims{Tenant: "a"}); err == nil {
		t.Error("Issue without exp: issued")
	}
}

func TestClaimsScopesAndTasks(t *testing.T) {
	c := &Claims{Scope: "jobs:read  jobs:write dlq:admin"}
	for s, want := range map[string]bool{
		"jobs:read": true, "jobs:write": true, "dlq:admin": true,
		"jobs": false, "": false, "backfills:write": false, "jobs:read jobs:write": false,
	} {
		if got := c.HasScope(s); got != want {
			t.Errorf("HasScope(%q) = %v", s, got)
		}
	}
	if !c.AllowsTask("anything") {
		t.Error("no tasks claim must allow every task")
	}
	c.Tasks = []string{"ner"}
	if !c.AllowsTask("ner") || c.AllowsTask("sentiment") {
		t.Error("tasks claim not enforced")
	}
	if n := testing.AllocsPerRun(100, func() { c.HasScope("dlq:admin") }); n != 0 {
		t.Errorf("HasScope allocates %v", n)
	}
}

func TestJTITenant(t *testing.T) {
	for jti, want := range map[string]string{"acme.abc": "acme", "a-b_c.x": "a-b_c", ".x": "", "acme.": "", "nodot": ""} {
		got, ok := JTITenant(jti)
		if got != want || ok != (want != "") {
			t.Errorf("JTITenant(%q) = %q, %v", jti, got, ok)
		}
	}
}

func TestMiddleware(t *testing.T) {
	v := newTestVerifier(t, false)
	tok, _, err := edSigner(t).IssueFor(TokenRequest{Tenant: "acme", Scopes: []string{ScopeJobsRead}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var seen *Claims
	h := Middleware(v, nil)(Require(ScopeJobsRead)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})))
	admin := Middleware(v, nil)(Require(ScopeDLQAdmin)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler ran without scope")
	})))
	for _, tc := range []struct {
		name      string
		h         http.Handler
		authz     string
		status    int
		code      string
		challenge string
	}{
		{"ok", h, "Bearer " + tok, http.StatusNoContent, "", ""},
		{"lowercase scheme", h, "bearer " + tok, http.StatusNoContent, "", ""},
		{"missing", h, "", http.StatusUnauthorized, "unauthorized", `Bearer realm="jetinfer"`},
		{"basic scheme", h, "Basic YTpi", http.StatusUnauthorized, "unauthorized", `Bearer realm="jetinfer"`},
		{"bad token", h, "Bearer " + tok + "x", http.StatusUnauthorized, "invalid_token", `Bearer realm="jetinfer", error="invalid_token"`},
		{"missing scope", admin, "Bearer " + tok, http.StatusForbidden, "insufficient_scope", `Bearer realm="jetinfer", error="insufficient_scope", scope="dlq:admin"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodGet, "/v1/jobs/x", nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.code == "" {
				if seen == nil || seen.Tenant != "acme" {
					t.Fatalf("claims in context: %+v", seen)
				}
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("body %s (%v)", w.Body, err)
			}
		})
	}
}

func TestMiddlewareCustomError(t *testing.T) {
	v := newTestVerifier(t, false)
	var got []any
	h := Middleware(v, func(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
		got = []any{status, code}
		w.WriteHeader(status)
	})(http.NotFoundHandler())
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer x.y.z")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if len(got) != 2 || got[0] != http.StatusUnauthorized || got[1] != "invalid_token" {
		t.Fatalf("onError got %v", got)
	}
}

// fuzzIssued are the jtis of the corpus's valid tokens: the only tokens Verify
// may accept.
var fuzzIssued = map[string]bool{"acme.fixed-jti": true}

func FuzzVerify(f *testing.F) {
	k := loadKeys(f)
	v := newTestVerifier(f, true)
	edKID, _ := Thumbprint(k.edPub)
	f.Add(sign(f, jwt.SigningMethodEdDSA, k.edPriv, edKID, goodClaims()))
	f.Add(sign(f, jwt.SigningMethodHS256, k.devSecret, "", goodClaims()))
	f.Add(sign(f, jwt.SigningMethodHS256, k.edPubPEM, edKID, goodClaims()))
	f.Add(b64(map[string]string{"alg": "none"}) + "." + b64(goodClaims()) + ".")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("...")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		if !fuzzIssued[c.ID] || c.Tenant != "acme" {
			t.Fatalf("accepted a token that was never issued: %q -> %+v", tok, c)
		}
	})
}

// BenchmarkVerify measures the signature check (cache off) and a client
// reusing its token (cache on).
func BenchmarkVerify(b *testing.B) {
	k := loadKeys(b)
	v := newTestVerifier(b, true, func(c *Config) { c.CacheSize = -1 })
	cached := newTestVerifier(b, true)
	edKID, _ := Thumbprint(k.edPub)
	rsaKID, _ := Thumbprint(&k.rsaPriv.PublicKey)
	for _, bc := range []struct {
		name string
		tok  string
	}{
		{"HS256", sign(b, jwt.SigningMethodHS256, k.devSecret, DevHS256KeyID, goodClaims())},
		{"EdDSA", sign(b, jwt.SigningMethodEdDSA, k.edPriv, edKID, goodClaims())},
		{"RS256", sign(b, jwt.SigningMethodRS256, k.rsaPriv, rsaKID, goodClaims())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"-cached", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cached.Verify(bc.tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestVerifyCache(t *testing.T) {
	k := loadKeys(t)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v := newTestVerifier(t, false, func(c *Config) { c.Now = clock; c.CacheSize = 4; c.CacheTTL = time.Minute })
	edKID, _ := Thumbprint(k.edPub)
	tok := sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, goodClaims()) // exp testNow+1h
	c1, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	c1.Tenant = "mutated by caller"
	c2, err := v.Verify(tok)
	if err != nil || c2.Tenant != "acme" || c2 == c1 {
		t.Fatalf("cached Verify = %+v, %v", c2, err)
	}
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), clock()); !ok {
		t.Fatal("verified token not cached")
	}
	// A cached token still expires: past exp+leeway it is refused.
	advance(time.Hour + 20*time.Second)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	advance(20 * time.Second)
	if _, err := v.Verify(tok); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("cached token past exp: %v", err)
	}
	// The cache stays bounded.
	for i := range 50 {
		c := goodClaims()
		c.ID = fmt.Sprint("acme.", i)
		c.ExpiresAt = jwt.NewNumericDate(clock().Add(time.Hour))
		if _, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, c)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(v.cache.entries); n > 4 {
		t.Fatalf("cache holds %d entries, max 4", n)
	}
	// Entries age out after CacheTTL.
	c := goodClaims()
	c.ExpiresAt = jwt.NewNumericDate(clock().Add(time.Hour))
	tok = sign(t, jwt.SigningMethodEdDSA, k.edPriv, edKID, c)
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	if _, ok := v.cache.get(sha256.Sum256([]byte(tok)), clock()); ok {
		t.Fatal("entry outlived CacheTTL")
	}
}
