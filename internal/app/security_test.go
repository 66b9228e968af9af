package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// startIngestWith runs ingest with the stack's settings changed by mod.
func (s *stack) startIngestWith(mod func(*config.Ingest)) {
	t := s.t
	var cfg config.Ingest
	defaults(&cfg)
	cfg.NATS.URL = s.natsURL
	cfg.Redis.URL = s.redis.URL()
	cfg.Addr, cfg.OpsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.HS256SecretFile = s.secret
	cfg.Log.Level = "error"
	cfg.Edge.AuditLog = config.AuditLogOff // tests that read it name a file
	if mod != nil {
		mod(&cfg)
	}
	addr, opsAddr := make(chan string, 1), make(chan string, 1)
	s.run("ingest", func(ctx context.Context) error {
		return app.RunIngest(ctx, cfg, testLogger(t), app.Hooks{Listening: func(a string) { addr <- a },
			OpsListening: func(a string) { opsAddr <- a }})
	})
	select {
	case a := <-addr:
		scheme := "http://"
		if cfg.Edge.TLS() {
			scheme = "https://"
		}
		s.url, s.opsURL = scheme+a, "http://"+<-opsAddr
	case <-time.After(20 * time.Second):
		t.Fatal("ingest did not start")
	}
}

// announce tells ingest the fleet serves these tasks, as a worker would at
// start, without loading a model.
func (s *stack) announce(tasks ...string) *queue.Client {
	s.t.Helper()
	q, err := queue.New(s.nats.Connect(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		s.t.Fatal(err)
	}
	for _, task := range tasks {
		kind := "text-classification"
		switch task {
		case "ner":
			kind = "token-classification"
		case "rerank":
			kind = "text-ranking"
		case "embed":
			kind = "feature-extraction"
		}
		if err := q.Announce(ctx, job.ModelInfo{Task: task, Kind: kind, Version: "test", MaxLength: 128}); err != nil {
			s.t.Fatal(err)
		}
	}
	if len(tasks) > 0 {
		// A worker also joins the membership registry, without which
		// ingest answers synchronous calls 503 no_workers.
		m := job.Member{ID: "announced-" + queue.MemberKey(strings.Join(tasks, "-")), Host: "test", Device: "cpu",
			Started: time.Now().UTC(), LastSeen: time.Now().UTC(), TTLMs: time.Hour.Milliseconds()}
		for _, task := range tasks {
			m.Tasks = append(m.Tasks, job.MemberTask{Task: task, Version: "test"})
		}
		reg, err := q.Membership(ctx)
		if err == nil {
			err = reg.Beat(ctx, m)
		}
		if err != nil {
			s.t.Fatal(err)
		}
	}
	return q
}

func (s *stack) createTenant(tn tenant.Tenant) {
	s.t.Helper()
	if _, err := tenant.NewStore(s.redis.Client(s.t)).Create(context.Background(), tn); err != nil {
		s.t.Fatal(err)
	}
}

// keys are the production signing keys of the attack tests: ingest trusts
// their public halves, and no HS256 secret.
type keys struct {
	ed, rsa         *auth.Signer
	edPub, rsaPub   []byte // PEM
	edFile, rsaFile string
	edKID           string
	edPriv          ed25519.PrivateKey
	rsaPriv         *rsa.PrivateKey
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.edPriv = priv
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k.rsaPriv = rk
	cfg := auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}
	if k.ed, err = auth.NewSigner(cfg, priv); err != nil {
		t.Fatal(err)
	}
	if k.rsa, err = auth.NewSigner(cfg, rk); err != nil {
		t.Fatal(err)
	}
	k.edKID = k.ed.KeyID()
	dir := t.TempDir()
	write := func(name string, key any) ([]byte, string) {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return data, path
	}
	k.edPub, k.edFile = write("ed.pub.pem", pub)
	k.rsaPub, k.rsaFile = write("rsa.pub.pem", &rk.PublicKey)
	return k
}

func (k *keys) issue(t *testing.T, s *auth.Signer, tenantID string, tasks []string, scopes ...string) (string, *auth.Claims) {
	t.Helper()
	tok, c, err := s.IssueFor(auth.TokenRequest{Tenant: tenantID, Scopes: scopes, Tasks: tasks, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

// claims are valid claims for acme, to be spoiled by one attack each.
func validClaims() jwt.MapClaims {
	now := time.Now()
	jti, _ := auth.NewJTI("acme")
	return jwt.MapClaims{
		"iss": "jetinfer", "aud": "jetinfer", "sub": "acme", "tid": "acme",
		"scope": "jobs:write jobs:read", "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func signed(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
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

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// errorOf returns the error object of a JSON error response.
func errorOf(t *testing.T, r response) map[string]any {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	return e
}

// TestAttacksAreRefused runs every attack on the gate through a production
// ingest (EdDSA and RS256 keys, no HS256 secret, tenants in Redis) and checks
// the status, the error code, and that nothing was enqueued.
func TestAttacksAreRefused(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment", "ner")
	k := newKeys(t)
	s.createTenant(tenant.Tenant{ID: "initech", Enabled: false})
	s.startIngestWith(func(c *config.Ingest) {
		c.Auth.HS256SecretFile = ""
		c.Auth.Ed25519KeyFiles = k.edFile
		c.Auth.RSAKeyFiles = k.rsaFile
		c.Auth.Leeway = 5 * time.Second
	})

	good, _ := k.issue(t, k.ed, "acme", nil, auth.ScopeJobsWrite, auth.ScopeJobsRead)
	goodRSA, _ := k.issue(t, k.rsa, "acme", nil, auth.ScopeJobsWrite, auth.ScopeJobsRead)
	revoked, rc := k.issue(t, k.ed, "acme", nil, auth.Scopes...)
	if err := tenant.NewStore(s.redis.Client(t)).Revoke(context.Background(), rc.ID, rc.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	readOnly, _ := k.issue(t, k.ed, "acme", nil, auth.ScopeJobsRead)
	writeOnly, _ := k.issue(t, k.ed, "acme", nil, auth.ScopeJobsWrite)
	nerOnly, _ := k.issue(t, k.ed, "acme", []string{"ner"}, auth.ScopeJobsWrite, auth.ScopeJobsRead)
	disabled, _ := k.issue(t, k.ed, "initech", nil, auth.Scopes...)
	unknown, _ := k.issue(t, k.ed, "hooli", nil, auth.ScopeJobsWrite, auth.ScopeJobsRead)
	globex, _ := k.issue(t, k.ed, "globex", nil, auth.Scopes...)
	otherEd := func() ed25519.PrivateKey { _, p, _ := ed25519.GenerateKey(rand.Reader); return p }()

	submit := map[string]any{"task": "sentiment", "input": map[string]any{"text": "Shares rose."}}
	// acme's job, for the cross-tenant attacks.
	r := s.do("POST", "/v1/jobs", good, submit)
	if r.status != http.StatusAccepted {
		t.Fatalf("valid EdDSA token: %d %s", r.status, r.body)
	}
	acmeJob := r.json(t)["id"].(string)
	all, _ := k.issue(t, k.ed, "acme", nil, auth.Scopes...)
	r = s.do("POST", "/v1/backfills", all, map[string]any{"task": "sentiment", "name": "acme-archive"})
	if r.status != http.StatusCreated {
		t.Fatalf("create backfill: %d %s", r.status, r.body)
	}
	acmeBackfill := r.json(t)["id"].(string)
	if r := s.do("POST", "/v1/jobs", goodRSA, submit); r.status != http.StatusAccepted {
		t.Fatalf("valid RS256 token: %d %s", r.status, r.body)
	}
	queued := func() uint64 {
		info, err := q.JetStream().Stream(context.Background(), job.StreamJobs)
		if err != nil {
			t.Fatal(err)
		}
		si, err := info.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return si.State.Msgs
	}
	before := queued()
	if before != 2 {
		t.Fatalf("%d jobs queued after two submissions", before)
	}

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	attacks := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "POST", "/v1/jobs", "", submit, 401, "unauthorized"},
		{"not a JWT", "POST", "/v1/jobs", "not.a.jwt", submit, 401, "invalid_token"},
		{"alg none", "POST", "/v1/jobs", none, submit, 401, "invalid_token"},
		{"alg none, no kid, signature kept", "POST", "/v1/jobs", none + "AAAA", submit, 401, "invalid_token"},
		{"HS256 keyed with the Ed25519 public key PEM", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodHS256, k.edPub, "", validClaims()), submit, 401, "invalid_token"},
		{"HS256 keyed with the Ed25519 public key PEM, its kid", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodHS256, k.edPub, k.edKID, validClaims()), submit, 401, "invalid_token"},
		{"HS256 keyed with the raw Ed25519 public key", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodHS256, []byte(k.edPriv.Public().(ed25519.PublicKey)), "", validClaims()), submit, 401, "invalid_token"},
		{"HS256 keyed with the RSA public key PEM", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodHS256, k.rsaPub, k.rsa.KeyID(), validClaims()), submit, 401, "invalid_token"},
		{"RS256 token under the EdDSA key's kid", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodRS256, k.rsaPriv, k.edKID, validClaims()), submit, 401, "invalid_token"},
		{"signed by an unknown Ed25519 key", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, otherEd, "", validClaims()), submit, 401, "invalid_token"},
		{"expired", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "exp", time.Now().Add(-time.Minute).Unix())), submit, 401, "invalid_token"},
		{"not yet valid", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "nbf", time.Now().Add(time.Hour).Unix())), submit, 401, "invalid_token"},
		{"missing exp", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "exp", nil)), submit, 401, "invalid_token"},
		{"wrong audience", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "aud", "someone-else")), submit, 401, "invalid_token"},
		{"wrong issuer", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "iss", "evil")), submit, 401, "invalid_token"},
		{"missing tid", "POST", "/v1/jobs",
			signed(t, jwt.SigningMethodEdDSA, k.edPriv, k.edKID, with(validClaims(), "tid", nil)), submit, 401, "invalid_token"},
		{"tampered payload", "POST", "/v1/jobs", tamper(t, good), submit, 401, "invalid_token"},
		{"revoked jti", "POST", "/v1/jobs", revoked, submit, 401, "token_revoked"},
		{"revoked jti reading", "GET", "/v1/jobs/" + acmeJob, revoked, nil, 401, "token_revoked"},
		{"revoked jti canceling", "DELETE", "/v1/jobs/" + acmeJob, revoked, nil, 401, "token_revoked"},
		{"revoked jti listing models", "GET", "/v1/models", revoked, nil, 401, "token_revoked"},
		{"revoked jti reading a backfill", "GET", "/v1/backfills/" + acmeBackfill, revoked, nil, 401, "token_revoked"},
		{"revoked jti sealing a backfill", "POST", "/v1/backfills/" + acmeBackfill + "/seal", revoked, nil, 401, "token_revoked"},
		{"revoked jti reading results", "GET", "/v1/backfills/" + acmeBackfill + "/results", revoked, nil, 401, "token_revoked"},
		{"revoked jti purging results", "DELETE", "/v1/backfills/" + acmeBackfill + "/results?through=1", revoked, nil, 401, "token_revoked"},
		{"revoked jti canceling a backfill", "DELETE", "/v1/backfills/" + acmeBackfill, revoked, nil, 401, "token_revoked"},
		{"revoked jti creating a backfill", "POST", "/v1/backfills", revoked, map[string]any{"task": "sentiment"}, 401, "token_revoked"},
		{"revoked jti listing dead letters", "GET", "/v1/dlq", revoked, nil, 401, "token_revoked"},
		{"revoked jti replaying", "POST", "/v1/dlq/" + acmeJob + "/replay", revoked, nil, 401, "token_revoked"},
		{"disabled tenant listing dead letters", "GET", "/v1/dlq", disabled, nil, 403, "tenant_disabled"},
		{"disabled tenant reading a job", "GET", "/v1/jobs/" + acmeJob, disabled, nil, 403, "tenant_disabled"},
		{"disabled tenant", "POST", "/v1/jobs", disabled, submit, 403, "tenant_disabled"},
		{"unknown tenant", "POST", "/v1/jobs", unknown, submit, 403, "unknown_tenant"},
		{"missing scope jobs:write", "POST", "/v1/jobs", readOnly, submit, 403, "insufficient_scope"},
		{"missing scope jobs:write on infer", "POST", "/v1/infer/sentiment", readOnly, map[string]any{"text": "x"}, 403, "insufficient_scope"},
		{"missing scope jobs:write on cancel", "DELETE", "/v1/jobs/" + acmeJob, readOnly, nil, 403, "insufficient_scope"},
		{"missing scope jobs:read", "GET", "/v1/jobs/" + acmeJob, writeOnly, nil, 403, "insufficient_scope"},
		{"disallowed task", "POST", "/v1/jobs", nerOnly, submit, 403, "task_not_allowed"},
		{"disallowed task on infer", "POST", "/v1/infer/sentiment", nerOnly, map[string]any{"text": "x"}, 403, "task_not_allowed"},
		{"another tenant's job", "GET", "/v1/jobs/" + acmeJob, globex, nil, 404, "not_found"},
		{"cancel another tenant's job", "DELETE", "/v1/jobs/" + acmeJob, globex, nil, 404, "not_found"},
		{"another tenant's backfill", "GET", "/v1/backfills/" + acmeBackfill, globex, nil, 404, "not_found"},
		{"documents into another tenant's backfill", "POST", "/v1/backfills/" + acmeBackfill + "/documents", globex, `{"id":"x","text":"y"}`, 404, "not_found"},
		{"another tenant's backfill results", "GET", "/v1/backfills/" + acmeBackfill + "/results", globex, nil, 404, "not_found"},
		{"purge another tenant's backfill results", "DELETE", "/v1/backfills/" + acmeBackfill + "/results?through=1", globex, nil, 404, "not_found"},
		{"cancel another tenant's backfill", "DELETE", "/v1/backfills/" + acmeBackfill, globex, nil, 404, "not_found"},
		{"replay another tenant's job", "POST", "/v1/dlq/" + acmeJob + "/replay", globex, nil, 404, "not_found"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := s.do(a.method, a.path, a.token, a.body)
			if r.status != a.status {
				t.Fatalf("status %d, want %d: %s", r.status, a.status, r.body)
			}
			e := errorOf(t, r)
			if e["code"] != a.code || e["message"] == "" {
				t.Fatalf("error %v, want code %q", e, a.code)
			}
			if a.status == http.StatusUnauthorized {
				// RFC 6750 §3.1: no error code when no token was sent.
				ch := r.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, "Bearer ") || strings.Contains(ch, `error="invalid_token"`) != (a.code != "unauthorized") {
					t.Fatalf("WWW-Authenticate %q for %s", ch, a.code)
				}
			}
		})
	}
	if n := queued(); n != before {
		t.Fatalf("the attacks enqueued %d jobs", n-before)
	}
	// acme's job and backfill are untouched by globex's cancels.
	if r := s.do("GET", "/v1/jobs/"+acmeJob, good, nil); r.status != 200 || r.json(t)["status"] != "queued" {
		t.Fatalf("acme's job after the attacks: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/backfills/"+acmeBackfill, all, nil); r.status != 200 || r.json(t)["state"] != "open" {
		t.Fatalf("acme's backfill after the attacks: %d %s", r.status, r.body)
	}
}

// tamper changes the tenant in a token's payload and keeps its signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	p := jwt.NewParser()
	c := jwt.MapClaims{}
	_, parts, err := p.ParseUnverified(tok, c)
	if err != nil {
		t.Fatal(err)
	}
	c["tid"] = "globex"
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(data) + "." + parts[2]
}

// TestQuotaAndRateLimit checks the 429 answers of the tenant limits and
// their headers.
func TestQuotaAndRateLimit(t *testing.T) {
	s := newStack(t)
	s.announce("sentiment")
	s.createTenant(tenant.Tenant{ID: "quota", Enabled: true, DailyQuota: 2})
	s.createTenant(tenant.Tenant{ID: "slow", Enabled: true, RatePerSec: 0.01, Burst: 1})
	s.createTenant(tenant.Tenant{ID: "small", Enabled: true, MaxBodyBytes: 1024, ResultTTL: 90 * time.Second})
	s.startIngest()
	submit := map[string]any{"task": "sentiment", "input": map[string]any{"text": "Shares rose."}}

	tok := s.issue(t, "quota", auth.ScopeJobsWrite)
	// Invalid submissions are refused before admission: they cost no quota.
	for _, bad := range []any{
		map[string]any{"task": "sentiment", "input": map[string]any{"text": ""}},
		map[string]any{"task": "sentiment", "input": map[string]any{"text": "x"}, "extra": 1},
		map[string]any{"task": "nope", "input": map[string]any{"text": "x"}},
	} {
		if r := s.do("POST", "/v1/jobs", tok, bad); r.status != http.StatusBadRequest {
			t.Fatalf("invalid submission: %d %s", r.status, r.body)
		}
	}
	for i := range 2 {
		r := s.do("POST", "/v1/jobs", tok, submit)
		if r.status != http.StatusAccepted {
			t.Fatalf("job %d: %d %s", i, r.status, r.body)
		}
		if got := r.header.Get("RateLimit-Remaining"); got != strconv.Itoa(1-i) || r.header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("job %d: RateLimit-Limit %q Remaining %q", i, r.header.Get("RateLimit-Limit"), got)
		}
	}
	r := s.do("POST", "/v1/jobs", tok, submit)
	checkTooMany(t, r, "quota_exceeded", 24*time.Hour)
	// The refused job's record, made while it was being admitted, is gone.
	if keys := s.jobKeys("quota"); len(keys) != 2 {
		t.Fatalf("after a refusal the tenant has records %v, want the 2 admitted jobs'", keys)
	}

	tok = s.issue(t, "slow", auth.ScopeJobsWrite)
	if r := s.do("POST", "/v1/jobs", tok, submit); r.status != http.StatusAccepted {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/v1/jobs", tok, submit)
	checkTooMany(t, r, "rate_limited", 100*time.Second)

	// The tenant's own body limit and result TTL apply.
	tok = s.issue(t, "small", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	big := map[string]any{"task": "sentiment", "input": map[string]any{"text": string(make([]byte, 2000))}}
	r = s.do("POST", "/v1/jobs", tok, big)
	if r.status != http.StatusRequestEntityTooLarge || errorOf(t, r)["field"] != "body" {
		t.Fatalf("body over the tenant's limit: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/v1/jobs", tok, submit)
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	ttl := s.redis.Client(t).PTTL(context.Background(), "ji:job:{small}:"+r.json(t)["id"].(string)).Val()
	if ttl <= 0 || ttl > 90*time.Second {
		t.Fatalf("record TTL %s, want the tenant's 90s", ttl)
	}
}

func checkTooMany(t *testing.T, r response, code string, maxRetry time.Duration) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("%s: status %d, want 429: %s", code, r.status, r.body)
	}
	e := errorOf(t, r)
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if e["code"] != code || err != nil || ra < 1 || time.Duration(ra)*time.Second > maxRetry {
		t.Fatalf("%s: error %v, Retry-After %q", code, e, r.header.Get("Retry-After"))
	}
	if e["retry_after_s"] != float64(ra) {
		t.Fatalf("retry_after_s %v, Retry-After %d", e["retry_after_s"], ra)
	}
	if r.header.Get("RateLimit-Limit") == "" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" {
		t.Fatalf("RateLimit headers: %v", r.header)
	}
}
