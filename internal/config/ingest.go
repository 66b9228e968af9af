package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// Auth configures how ingest verifies bearer tokens.
type Auth struct {
	// Issuer is the required iss claim. Defaults to jetinfer.
	Issuer string
	// Audience is the required aud claim. Defaults to jetinfer.
	Audience string
	// HS256SecretFile holds a shared secret for HS256 tokens; for local
	// development only. Defaults to none.
	HS256SecretFile string
	// Ed25519KeyFiles are comma-separated PEM files of Ed25519 public keys
	// (EdDSA). Defaults to none.
	Ed25519KeyFiles string
	// RSAKeyFiles are comma-separated PEM files of RSA public keys (RS256).
	// Defaults to none.
	RSAKeyFiles string
	// JWKSURL is a JWKS endpoint for EdDSA/RS256 keys. Defaults to none.
	JWKSURL string
	// Leeway is the clock skew allowed on exp and nbf. Defaults to 30s.
	Leeway time.Duration
}

// RegisterFlags registers the auth flags.
func (c *Auth) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "auth-issuer", "jetinfer", "required JWT issuer (iss)")
	fs.StringVar(&c.Audience, "auth-audience", "jetinfer", "required JWT audience (aud)")
	fs.StringVar(&c.HS256SecretFile, "auth-hs256-secret-file", "", "file holding an HS256 secret (local development only)")
	fs.StringVar(&c.Ed25519KeyFiles, "auth-ed25519-keys", "", "comma-separated Ed25519 public key PEM files (EdDSA)")
	fs.StringVar(&c.RSAKeyFiles, "auth-rsa-keys", "", "comma-separated RSA public key PEM files (RS256)")
	fs.StringVar(&c.JWKSURL, "auth-jwks-url", "", "JWKS URL for EdDSA/RS256 keys")
	fs.DurationVar(&c.Leeway, "auth-leeway", 30*time.Second, "clock skew allowed on exp and nbf")
}

// Validate checks the auth settings.
func (c *Auth) Validate() error {
	if c.HS256SecretFile == "" && c.Ed25519KeyFiles == "" && c.RSAKeyFiles == "" && c.JWKSURL == "" {
		return errors.New("auth-hs256-secret-file, auth-ed25519-keys, auth-rsa-keys, auth-jwks-url: at least one key source must be set")
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		return fmt.Errorf("auth-leeway: %s is outside 0..5m", c.Leeway)
	}
	return nil
}

// DefaultOpsAddr is where a process serves /metrics, /healthz and the
// detailed /readyz for operators: ingest's --ops-addr and the worker's
// --http-addr. It is never the public API port.
const DefaultOpsAddr = ":9090"

// Ingest is the configuration of cmd/ingest.
type Ingest struct {
	NATS  NATS
	Redis Redis
	// RedisWait makes the writes ingest acknowledges wait for replicas.
	RedisWait RedisWait
	Log       Log
	Auth      Auth
	Trace     Trace
	// Webhooks says which webhook endpoints tenants may register.
	Webhooks WebhookTargets
	// HTTP bounds how long clients may hold connections.
	HTTP HTTPTimeouts
	// Edge is the public listener's audit log, trusted proxies and TLS.
	Edge HTTPEdge
	// Addr is the HTTP listen address. Defaults to :8080.
	Addr string
	// OpsAddr serves /metrics and the detailed /readyz for operators and
	// Prometheus, apart from the public API. Defaults to DefaultOpsAddr.
	OpsAddr string
	// MaxBodyBytes bounds every request body; a tenant's own limit can only
	// lower it.
	// Defaults to 1 MiB.
	MaxBodyBytes int64
	// MaxTextBytes bounds the text of one job or document. Defaults to 256 KiB.
	MaxTextBytes int
	// MaxWait caps ?wait= and Prefer: wait. Defaults to 60s.
	MaxWait time.Duration
	// MaxUploadBytes bounds the decompressed body of one backfill
	// documents upload; a tenant's body limit can only lower it.
	MaxUploadBytes int64
	// InferWait is how long POST /v1/infer/{task} waits. Defaults to 30s.
	InferWait time.Duration
	// MaxExportsPerTenant is the most result exports one tenant streams
	// from an instance at once; a tenant's max_exports can only lower it.
	// Defaults to ingest.DefaultMaxExportsPerTenant.
	MaxExportsPerTenant int
	// ResultTTL is how long a job record is kept when the tenant sets no TTL.
	// Defaults to 24h.
	ResultTTL time.Duration
	// ShutdownTimeout bounds the drain on SIGTERM. Defaults to 20s.
	ShutdownTimeout time.Duration
	// EnsureStreams makes ingest create or update the streams at start.
	// Defaults to true.
	EnsureStreams bool
	// Tenants makes ingest admit every request against its tenant in Redis
	// (enabled, daily quota, rate limit, revoked tokens, body limit, result
	// TTL). Turned off, any holder of a valid token is admitted with the
	// server's limits. Defaults to true.
	Tenants bool
	// JobsMaxMsgs bounds the JOBS stream by count when EnsureStreams creates
	// or updates it; a full stream answers 503 with Retry-After. Defaults to
	// 1,000,000.
	JobsMaxMsgs int64
	// JobsMaxBytes bounds the JOBS stream by size when EnsureStreams creates
	// or updates it. Defaults to 1 GiB.
	JobsMaxBytes int64
	// ResultsMaxBytes bounds the RESULTS stream (backfill results) when
	// EnsureStreams creates or updates it. A full stream refuses new
	// results and workers hold their documents until exports purge what
	// they wrote: size it for the results exports lag behind (or, with
	// --keep-results exports, for every backfill not yet exported).
	// Defaults to 4 GiB.
	ResultsMaxBytes int64
	// ResultsMaxAge is how long backfill results are kept in RESULTS.
	// Defaults to 7 days.
	ResultsMaxAge time.Duration
	// MetricsPoll is how often the streams' usage is polled for
	// jetinfer_stream_*. Defaults to 5s.
	MetricsPoll time.Duration
	// WaitForWorkers makes a synchronous call of a task no live worker
	// serves wait, within its timeout, for one to start (for fleets that
	// scale from zero) instead of answering 503 no_workers at once.
	// Defaults to false.
	WaitForWorkers bool
	// BreakerFailures is how many synchronous calls of a task must fail in
	// a row (model errors, timeouts) to open its circuit breaker; 0 turns
	// the breakers off. Defaults to ingest.DefaultBreakerFailures.
	BreakerFailures int
	// BreakerOpenFor is how long an open breaker answers 503
	// task_unavailable before it lets a probe through. Defaults to
	// ingest.DefaultBreakerOpenFor.
	BreakerOpenFor time.Duration
	// BackfillStallAfter is how long a backfill may have pending documents
	// and none finish before its progress says it is stalled; 0 never
	// does. Defaults to backfill.DefaultStallAfter.
	BackfillStallAfter time.Duration
	// StreamReplicas is how many NATS servers hold a copy of every stream
	// and of the models bucket when EnsureStreams creates or updates them:
	// 3 on a 3-node cluster, so that nothing accepted is lost and jobs are
	// still accepted while one node is down. Defaults to
	// queue.DefaultReplicas (one server).
	StreamReplicas int
	// PublishRetry is how long a job's publish is retried while JetStream
	// does not answer (a restart, a stream leader election) before ingest
	// answers 503 with Retry-After. 0 picks it from the JOBS stream's
	// replicas (queue.PublishRetryFor). Defaults to 0.
	PublishRetry time.Duration
}

// MaxStreamReplicas is the most replicas JetStream allows a stream.
const MaxStreamReplicas = 5

// RegisterFlags registers every ingest flag.
func (c *Ingest) RegisterFlags(fs *flag.FlagSet) {
	c.NATS.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.RedisWait.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
	c.Auth.RegisterFlags(fs)
	c.Trace.RegisterFlags(fs)
	c.Webhooks.RegisterFlags(fs)
	c.HTTP.RegisterFlags(fs)
	c.Edge.RegisterFlags(fs)
	fs.StringVar(&c.Addr, "addr", ":8080", "HTTP listen address")
	fs.StringVar(&c.OpsAddr, "ops-addr", DefaultOpsAddr, "operations listen address: /metrics, detailed /readyz, /healthz (keep it off the public network)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest request body; a tenant's own limit can only lower it")
	fs.Int64Var(&c.MaxUploadBytes, "max-upload-bytes", ingest.DefaultMaxUploadBytes, "largest decompressed body of one backfill documents upload; a tenant's body limit can only lower it")
	fs.IntVar(&c.MaxTextBytes, "max-text-bytes", 256<<10, "largest text of one job or document")
	fs.DurationVar(&c.MaxWait, "max-wait", 60*time.Second, "cap on ?wait= and Prefer: wait")
	fs.IntVar(&c.MaxExportsPerTenant, "max-exports-per-tenant", ingest.DefaultMaxExportsPerTenant, "most result exports (backfill results, batch output files) one tenant streams from this instance at once; a tenant's max_exports can only lower it")
	fs.DurationVar(&c.InferWait, "infer-wait", 30*time.Second, "how long POST /v1/infer/{task} waits for the result")
	fs.DurationVar(&c.ResultTTL, "result-ttl", 24*time.Hour, "how long job records are kept when the tenant sets no TTL")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long to drain on SIGTERM")
	fs.BoolVar(&c.EnsureStreams, "ensure-streams", true, "create or update the JetStream streams at start")
	fs.BoolVar(&c.Tenants, "tenants", true, "admit requests against their tenant in Redis (quota, rate limit, revocation)")
	fs.Int64Var(&c.JobsMaxMsgs, "jobs-max-msgs", 1_000_000, "most messages the JOBS stream holds (with -ensure-streams)")
	fs.Int64Var(&c.JobsMaxBytes, "jobs-max-bytes", 1<<30, "most bytes the JOBS stream holds (with -ensure-streams)")
	fs.Int64Var(&c.ResultsMaxBytes, "results-max-bytes", 4<<30, "most bytes of backfill results the RESULTS stream holds; when full, workers hold backfill documents until exports purge results (with -ensure-streams)")
	fs.DurationVar(&c.ResultsMaxAge, "results-max-age", 7*24*time.Hour, "how long backfill results are kept (with -ensure-streams)")
	fs.DurationVar(&c.MetricsPoll, "metrics-poll", 5*time.Second, "how often the streams' usage is polled for metrics")
	fs.BoolVar(&c.WaitForWorkers, "wait-for-workers", false, "make synchronous calls of a task no live worker serves wait for one to start (scale from zero) instead of answering 503 no_workers")
	fs.IntVar(&c.BreakerFailures, "breaker-failures", ingest.DefaultBreakerFailures, "synchronous calls of a task failing in a row (model errors, timeouts) that open its circuit breaker (0: no breaker)")
	fs.DurationVar(&c.BreakerOpenFor, "breaker-open-for", ingest.DefaultBreakerOpenFor, "how long an open circuit breaker answers 503 task_unavailable before it lets a probe call through")
	fs.DurationVar(&c.BackfillStallAfter, "backfill-stall-after", backfill.DefaultStallAfter, "quiet time after which a backfill with pending documents and none finishing is reported stalled (0: never)")
	fs.DurationVar(&c.PublishRetry, "publish-retry", 0, "how long a job's publish is retried while JetStream does not answer before 503; 0: 5s on one server, 15s on replicated streams (a leader election)")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", queue.DefaultReplicas, "servers holding a copy of every stream and bucket: 3 on a 3-node NATS cluster (with -ensure-streams)")
}

// Validate checks the configuration; errors name the field.
func (c *Ingest) Validate() error {
	errs := []error{c.NATS.Validate(), c.Redis.Validate(), c.RedisWait.Validate(c.Redis), c.Log.Validate(), c.Auth.Validate(), c.Trace.Validate()}
	if c.Addr == "" {
		errs = append(errs, errors.New("addr: must be set"))
	}
	if c.OpsAddr == "" {
		errs = append(errs, errors.New("ops-addr: must be set"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max-body-bytes: %d is below 1024", c.MaxBodyBytes))
	}
	if c.MaxUploadBytes < 1024 {
		errs = append(errs, fmt.Errorf("max-upload-bytes: %d is below 1024", c.MaxUploadBytes))
	}
	if c.MaxTextBytes < 1 || int64(c.MaxTextBytes) > c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max-text-bytes: %d must be between 1 and max-body-bytes", c.MaxTextBytes))
	}
	errs = append(errs, positive("max-wait", c.MaxWait), positive("infer-wait", c.InferWait),
		positive("result-ttl", c.ResultTTL), positive("shutdown-timeout", c.ShutdownTimeout))
	if c.MaxExportsPerTenant < 1 {
		errs = append(errs, fmt.Errorf("max-exports-per-tenant: %d must be at least 1", c.MaxExportsPerTenant))
	}
	if c.JobsMaxMsgs < 1 {
		errs = append(errs, fmt.Errorf("jobs-max-msgs: %d must be at least 1", c.JobsMaxMsgs))
	}
	if c.JobsMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("jobs-max-bytes: %d is below 1 MiB", c.JobsMaxBytes))
	}
	if c.ResultsMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("results-max-bytes: %d is below 1 MiB", c.ResultsMaxBytes))
	}
	errs = append(errs, positive("results-max-age", c.ResultsMaxAge), positive("metrics-poll", c.MetricsPoll))
	if c.PublishRetry < 0 {
		errs = append(errs, fmt.Errorf("publish-retry: must not be negative, got %s (0 picks it from the streams' replicas)", c.PublishRetry))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > MaxStreamReplicas {
		errs = append(errs, fmt.Errorf("stream-replicas: %d must be between 1 and %d (3 on a 3-node cluster)", c.StreamReplicas, MaxStreamReplicas))
	}
	if c.BreakerFailures < 0 {
		errs = append(errs, fmt.Errorf("breaker-failures: %d is negative; 0 turns the breakers off", c.BreakerFailures))
	}
	if c.BreakerFailures > 0 {
		errs = append(errs, positive("breaker-open-for", c.BreakerOpenFor))
	}
	if c.BackfillStallAfter < 0 {
		errs = append(errs, fmt.Errorf("backfill-stall-after: %s is negative; 0 never reports a stall", c.BackfillStallAfter))
	}
	errs = append(errs, c.HTTP.Validate(max(c.MaxWait, c.InferWait)), c.Edge.Validate())
	return errors.Join(errs...)
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
