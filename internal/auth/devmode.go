package auth

// Warnings returns what an operator must hear at start about cfg, loudly:
// an HS256 development secret lets anyone who holds it mint a token for any
// tenant and scope, which is tolerable on a laptop and a hole next to real
// (asymmetric) keys, where it silently bypasses their issuer.
func (c Config) Warnings() []string {
	if c.DevHS256Secret == nil {
		return nil
	}
	if len(c.Ed25519PublicKeyFiles) > 0 || len(c.RSAPublicKeyFiles) > 0 || c.JWKSURL != "" {
		return []string{"INSECURE: an HS256 development secret is accepted next to real signing keys; " +
			"anyone holding that secret can mint a token for any tenant and scope, bypassing the real issuer. " +
			"Remove --auth-hs256-secret-file in production."}
	}
	return []string{"HS256 development mode: tokens are signed with a shared secret that anyone who can verify can also forge; " +
		"use --auth-ed25519-keys, --auth-rsa-keys or --auth-jwks-url outside local development."}
}
