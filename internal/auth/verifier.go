package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// MaxTokenLen is the longest token Verify parses; longer ones are refused
// before any decoding.
const MaxTokenLen = 8 << 10

// DevHS256KeyID is the kid of the development HS256 secret. A token signed
// with it may carry this kid or none.
const DevHS256KeyID = "dev-hs256"

var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken wraps every reason Verify refuses a token; the wrapped
	// jwt error (jwt.ErrTokenExpired, ...) says which.
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnknownKey means the token's kid (or, without kid, its algorithm)
	// matches no configured key.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrMissingTenant means the token has no tid claim.
	ErrMissingTenant = errors.New("token has no tid claim")
)

// Config says which tokens a Verifier accepts.
type Config struct {
	// Issuer is the required iss claim. Required.
	Issuer string
	// Audience is the value the aud claim must contain. Required.
	Audience string
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	// Defaults to 30s.
	Leeway time.Duration
	// DevHS256Secret enables HS256 tokens signed with this shared secret (at
	// least 32 bytes). For local development only: anyone who can verify can
	// also forge. Defaults to none (HS256 refused).
	DevHS256Secret []byte
	// Ed25519PublicKeyFiles are PEM files of Ed25519 public keys; each verifies
	// EdDSA only. A key's kid is its RFC 7638 thumbprint. Defaults to none.
	Ed25519PublicKeyFiles []string
	// RSAPublicKeyFiles are PEM files of RSA public keys (≥ 2048 bits); each
	// verifies RS256 only. A key's kid is its RFC 7638 thumbprint. Defaults to
	// none.
	RSAPublicKeyFiles []string
	// Keys are further public keys given in memory. Defaults to none.
	Keys []VerificationKey
	// JWKSURL is an identity provider's JWK Set, fetched at start (failing
	// NewVerifier if unreachable) and refreshed in the background and on an
	// unknown kid (at most once a minute). Defaults to none.
	JWKSURL string
	// JWKSAlgorithms are the algorithms accepted for JWKS keys; each key is
	// still held to its own type and alg. Only EdDSA and RS256 are allowed.
	// Defaults to EdDSA and RS256.
	JWKSAlgorithms []string
	// JWKSRefresh is how often the JWK Set is refetched. Defaults to 1h.
	JWKSRefresh time.Duration
	// JWKSHTTPClient fetches the JWK Set. Defaults to a client with a 10s
	// timeout.
	JWKSHTTPClient *http.Client
	// CacheSize is how many verified tokens are remembered, so that a client
	// reusing its token skips the signature check (an EdDSA verification
	// costs far more than the request's other work). Only tokens that passed
	// every check are kept, keyed by a SHA-256 of the whole token, and a hit
	// still checks exp. Negative disables the cache. Defaults to 10000.
	CacheSize int
	// CacheTTL is the longest a verified token is remembered: after a key is
	// withdrawn, its tokens pass for at most this long. Defaults to 5m.
	CacheTTL time.Duration
	// Now is the clock used for exp, nbf and iat. Defaults to time.Now.
	Now func() time.Time
}

type pinnedKey struct {
	id  string
	alg string
	key any // ed25519.PublicKey, *rsa.PublicKey or []byte (HS256)
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	byKID  map[string]pinnedKey
	byAlg  map[string][]jwt.VerificationKey // keys for tokens without kid, by algorithm
	jwks   keyfunc.Keyfunc
	jwksOK []string
	ctx    context.Context
	cancel context.CancelFunc
	now    func() time.Time
	leeway time.Duration
	cache  *tokenCache // nil when disabled
}

// NewVerifier loads the configured keys and returns a Verifier. ctx bounds the
// initial JWKS fetch and the background refresh; Close stops the refresh too.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth config: Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth config: Audience is required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("auth config: Leeway %s must be between 0 and 5m", cfg.Leeway)
	}
	v := &Verifier{byKID: map[string]pinnedKey{}, byAlg: map[string][]jwt.VerificationKey{}}
	add := func(k pinnedKey) error {
		if _, dup := v.byKID[k.id]; dup {
			return fmt.Errorf("auth config: duplicate key id %q", k.id)
		}
		v.byKID[k.id] = k
		v.byAlg[k.alg] = append(v.byAlg[k.alg], k.key)
		return nil
	}
	if cfg.DevHS256Secret != nil {
		if len(cfg.DevHS256Secret) < MinHS256SecretLen {
			return nil, fmt.Errorf("auth config: DevHS256Secret has %d bytes, want at least %d", len(cfg.DevHS256Secret), MinHS256SecretLen)
		}
		if err := add(pinnedKey{id: DevHS256KeyID, alg: AlgHS256, key: slices.Clone(cfg.DevHS256Secret)}); err != nil {
			return nil, err
		}
	}
	load := func(files []string, wantAlg string) error {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("auth config: read key: %w", err)
			}
			k, err := ParsePublicKeyPEM(data)
			if err != nil {
				return fmt.Errorf("auth config: %s: %w", f, err)
			}
			if k.Alg != wantAlg {
				return fmt.Errorf("auth config: %s holds a %s key, listed as %s", f, k.Alg, wantAlg)
			}
			if err := add(pinnedKey{id: k.ID, alg: k.Alg, key: k.Key}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := load(cfg.Ed25519PublicKeyFiles, AlgEdDSA); err != nil {
		return nil, err
	}
	if err := load(cfg.RSAPublicKeyFiles, AlgRS256); err != nil {
		return nil, err
	}
	for i, k := range cfg.Keys {
		pk, err := newVerificationKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("auth config: Keys[%d]: %w", i, err)
		}
		if k.Alg != "" && k.Alg != pk.Alg {
			return nil, fmt.Errorf("auth config: Keys[%d]: alg %s does not fit a %T", i, k.Alg, k.Key)
		}
		if k.ID != "" {
			pk.ID = k.ID
		}
		if err := add(pinnedKey{id: pk.ID, alg: pk.Alg, key: pk.Key}); err != nil {
			return nil, err
		}
	}
	methods := make([]string, 0, 3)
	for alg := range v.byAlg {
		methods = append(methods, alg)
	}
	v.ctx, v.cancel = context.WithCancel(ctx)
	if cfg.JWKSURL != "" {
		algs := cfg.JWKSAlgorithms
		if len(algs) == 0 {
			algs = []string{AlgEdDSA, AlgRS256}
		}
		for _, a := range algs {
			if a != AlgEdDSA && a != AlgRS256 {
				v.cancel()
				return nil, fmt.Errorf("auth config: JWKSAlgorithms: %q not allowed (EdDSA or RS256)", a)
			}
			if !slices.Contains(methods, a) {
				methods = append(methods, a)
			}
		}
		v.jwksOK = algs
		client := cfg.JWKSHTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		noErr := false
		kf, err := keyfunc.NewDefaultOverrideCtx(v.ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    client,
			HTTPTimeout:               10 * time.Second,
			NoErrorReturnFirstHTTPReq: &noErr,
			RefreshInterval:           cfg.JWKSRefresh,
			// An unknown kid refetches the set at most once a minute, and a
			// token with an unknown kid never holds its request for more than
			// a few seconds (the default would let it wait a minute).
			RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
			RateLimitWaitMax:  3 * time.Second,
		})
		if err != nil {
			v.cancel()
			return nil, fmt.Errorf("auth config: JWKS %s: %w", cfg.JWKSURL, err)
		}
		v.jwks = kf
	}
	if len(methods) == 0 {
		v.cancel()
		return nil, errors.New("auth config: no keys (set a public key file, a JWKS URL, or DevHS256Secret)")
	}
	slices.Sort(methods)
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	v.parser = jwt.NewParser(opts...)
	v.now, v.leeway = cfg.Now, cfg.Leeway
	if v.now == nil {
		v.now = time.Now
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize, cfg.CacheTTL)
	}
	return v, nil
}

// Close stops the JWKS background refresh. Verify keeps working with the keys
// already fetched.
func (v *Verifier) Close() { v.cancel() }

// Verify checks token and returns its claims, which the caller may read but
// must not modify. Every refusal wraps ErrInvalidToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrNoToken)
	}
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		now := v.now()
		if c, ok := v.cache.get(sum, now); ok {
			if now.After(c.ExpiresAt.Add(v.leeway)) {
				v.cache.remove(sum)
				return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
			}
			cp := *c
			return &cp, nil
		}
	}
	c := new(Claims)
	if _, err := v.parser.ParseWithClaims(token, c, v.keyFor); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Tenant == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrMissingTenant)
	}
	if !ValidTenantID(c.Tenant) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrInvalidTenant)
	}
	if v.cache != nil {
		cp := *c
		v.cache.put(sum, &cp, v.now())
	}
	return c, nil
}

// keyFor picks the key for t: by kid when the header has one, else every key
// pinned to t's algorithm. The algorithm never selects a key of another type.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kidV, hasKID := t.Header["kid"]
	if hasKID {
		kid, ok := kidV.(string)
		if !ok {
			return nil, errors.New("kid header is not a string")
		}
		if k, ok := v.byKID[kid]; ok {
			if k.alg != alg {
				return nil, fmt.Errorf("key %q verifies %s, token says %s", kid, k.alg, alg)
			}
			return k.key, nil
		}
		if v.jwks == nil || !slices.Contains(v.jwksOK, alg) {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		key, err := v.jwks.KeyfuncCtx(v.ctx)(t)
		if err != nil {
			return nil, fmt.Errorf("%w: kid %q: %w", ErrUnknownKey, kid, err)
		}
		if !keyFits(alg, key) {
			return nil, fmt.Errorf("key %q is a %T, token says %s", kid, key, alg)
		}
		return key, nil
	}
	keys := v.byAlg[alg]
	if v.jwks != nil && slices.Contains(v.jwksOK, alg) {
		set, err := v.jwks.VerificationKeySet(v.ctx)
		if err == nil {
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					keys = append(slices.Clip(keys), k)
				}
			}
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%w: no %s key", ErrUnknownKey, alg)
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// keyFits reports whether key is of the one type alg may use.
func keyFits(alg string, key any) bool {
	switch alg {
	case AlgEdDSA:
		_, ok := key.(ed25519.PublicKey)
		return ok
	case AlgRS256:
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= MinRSABits
	}
	return false
}
