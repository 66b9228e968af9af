package auth

import (
	"context"
	"strings"
	"testing"
)

// HS256 development mode is announced at start, and as insecure when it
// sits next to real keys; a config of real keys alone says nothing.
func TestDevHS256WarningsNextToRealKeys(t *testing.T) {
	secret := []byte(strings.Repeat("k", MinHS256SecretLen))
	for _, tc := range []struct {
		name     string
		cfg      Config
		insecure bool // want the loud next-to-real-keys warning
		none     bool
	}{
		{name: "real keys only", cfg: Config{Ed25519PublicKeyFiles: []string{"a.pem"}}, none: true},
		{name: "hs256 alone", cfg: Config{DevHS256Secret: secret}},
		{name: "hs256 and ed25519", cfg: Config{DevHS256Secret: secret, Ed25519PublicKeyFiles: []string{"a.pem"}}, insecure: true},
		{name: "hs256 and rsa", cfg: Config{DevHS256Secret: secret, RSAPublicKeyFiles: []string{"r.pem"}}, insecure: true},
		{name: "hs256 and jwks", cfg: Config{DevHS256Secret: secret, JWKSURL: "https://idp.example/jwks"}, insecure: true},
	} {
		w := tc.cfg.Warnings()
		switch {
		case tc.none && len(w) != 0:
			t.Errorf("%s: warnings %q, want none", tc.name, w)
		case !tc.none && len(w) != 1:
			t.Errorf("%s: warnings %q, want one", tc.name, w)
		case !tc.none && strings.HasPrefix(w[0], "INSECURE") != tc.insecure:
			t.Errorf("%s: warning %q, insecure want %v", tc.name, w[0], tc.insecure)
		}
	}
}

// A development secret under 32 bytes is refused by the verifier and the
// signer alike.
func TestShortHS256SecretRefused(t *testing.T) {
	short := []byte(strings.Repeat("k", MinHS256SecretLen-1))
	if _, err := NewVerifier(context.Background(), Config{Issuer: "i", Audience: "a", DevHS256Secret: short}); err == nil {
		t.Error("verifier accepted a 31-byte HS256 secret")
	}
	if _, err := NewDevHS256Signer(SignerConfig{Issuer: "i", Audience: "a"}, short); err == nil {
		t.Error("signer accepted a 31-byte HS256 secret")
	}
}
