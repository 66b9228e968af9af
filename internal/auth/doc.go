// Package auth verifies the bearer tokens that every /v1 route of ingest
// requires, and issues them for jetinferctl.
//
// A token is a JWT whose claims are [Claims]: the registered claims (sub, iss,
// aud, exp, nbf, iat, jti) plus tid (the tenant), scope (space-separated
// scopes such as "jobs:write jobs:read") and, optionally, tasks (the task
// names the token may submit to).
//
// A [Verifier] accepts a token only if it is signed by one of its configured
// keys with the algorithm pinned to that key, carries exp, names the expected
// issuer and audience, is inside its validity window (with a small leeway) and
// names a tenant. Keys come from Ed25519 or RSA public key PEM files, a JWKS
// URL, or, for local development only, an HS256 shared secret. A token whose
// header names a kid is checked against that key alone; a kid no source knows
// is refused. The alg header never chooses the key type: an HS256 token signed
// with the bytes of a public key is refused, and "none" is never accepted.
//
// Clients reuse a token for many requests, and an EdDSA check costs more than
// the rest of a request, so a Verifier remembers tokens that passed every
// check (by SHA-256 of the token, bounded in number and age; exp is still
// checked on a hit). See Config.CacheSize.
//
// A [Signer] issues tokens (EdDSA or RS256 from a private key PEM, or HS256
// with the development secret) and gives every token a jti that names its
// tenant, so that a token can be revoked by jti alone (see
// internal/tenant.Store.Revoke).
//
// [Middleware] puts verified claims into the request context ([FromContext])
// and answers 401 with a WWW-Authenticate challenge otherwise; [Require]
// answers 403 when the claims lack a scope. Quota, rate limit and revocation
// are not checked here: internal/tenant does that in one Redis round trip.
package auth
