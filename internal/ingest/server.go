package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetinfer/jetinfer/internal/auth"
)

// Config tunes the API.
type Config struct {
	// MaxBodyBytes bounds every request body; a tenant's own limit can only
	// lower it.
	// Defaults to 1 MiB.
	MaxBodyBytes int64
	// MaxTextBytes bounds the text of one job. Defaults to 256 KiB.
	MaxTextBytes int
	// MaxWait caps ?wait= and Prefer: wait. Defaults to 60s.
	MaxWait time.Duration
	// InferWait is how long POST /v1/infer/{task} waits. Defaults to 30s.
	InferWait time.Duration
	// StoreTimeout bounds one call to the result store, so that an outage
	// answers 503 quickly instead of hanging. Defaults to 2s.
	StoreTimeout time.Duration
	// ReadTimeout and WriteTimeout are the HTTP server's; a streaming
	// upload or export pushes its connection's deadline this far ahead
	// while it makes progress, so that they bound a stall rather than the
	// stream. Zero leaves the deadlines alone.
	ReadTimeout, WriteTimeout time.Duration
	// MaxUploadBytes bounds the decompressed body of one backfill
	// documents upload; the tenant's body limit, when set, lowers it.
	// Defaults to DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// WaitForWorkers makes a synchronous call of a task no live worker
	// serves wait, within its own timeout, for a worker to start (a fleet
	// that scales from zero on its backlog) instead of answering
	// 503 no_workers at once. Off by default.
	WaitForWorkers bool
	// Breaker is the policy of each task's circuit breaker on synchronous
	// calls; its zero value turns the breakers off.
	Breaker BreakerPolicy
	// StallAfter is how long a backfill with pending documents may go
	// without one finishing before its progress says it is stalled; 0
	// never says so (the ingest binary's --backfill-stall-after defaults to
	// backfill.DefaultStallAfter).
	StallAfter time.Duration
	// MaxExportsPerTenant is the most result exports (backfill results,
	// OpenAI batch output files) one tenant streams from this instance at
	// once; a tenant's own cap can only lower it. Each export holds a
	// connection, a goroutine and a JetStream consumer for as long as it
	// follows. Defaults to DefaultMaxExportsPerTenant.
	MaxExportsPerTenant int
}

// DefaultMaxExportsPerTenant is the default server ceiling on one tenant's
// concurrent exports.
const DefaultMaxExportsPerTenant = 8

// DefaultMaxUploadBytes is the default bound on the decompressed body of
// one backfill documents upload: large archives are sent in several
// requests, each resuming where the last stopped.
const DefaultMaxUploadBytes int64 = 256 << 20

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = 256 << 10
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.InferWait <= 0 {
		c.InferWait = 30 * time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 2 * time.Second
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.MaxExportsPerTenant <= 0 {
		c.MaxExportsPerTenant = DefaultMaxExportsPerTenant
	}
	return c
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	pub      Publisher
	recs     Records
	replies  Replies
	catalog  Catalog
	admit    Admitter
	verifier *auth.Verifier
	ready    func(context.Context) error
	log      *slog.Logger
	ins      *instruments
	draining atomic.Bool
	handler  http.Handler
	bf       BackfillDeps
	dlq      DeadLetters
	deadRecs DeadRecords
	webhooks WebhookEndpoints
	// tenantTTL remembers each tenant's result TTL in seconds (int64) from
	// its last admission, so that the next job's record can be made while
	// that job is being admitted.
	tenantTTL sync.Map
	// tenantWindows remembers each tenant's cap on windows per document
	// (int) from its last admission, for the same reason as tenantTTL.
	tenantWindows sync.Map
	// outages spaces out the logs of failing dependencies (outageLog by name).
	outages sync.Map
	// resultsRoom caches whether RESULTS takes more backfill documents.
	resultsRoom resultsRoom

	// usage and fleet serve GET /v1/me and /v1/fleet; backlogCache keeps
	// the fleet's backlogs for a second.
	usage        TenantUsage
	fleet        Backlogs
	backlogCache backlogCache
	// table is the route table mount registered (see Routes).
	table []Route

	// members is the fleet's membership registry, nil when unknown (no
	// call is then refused for want of workers); breakers are the tasks'
	// circuit breakers on synchronous calls.
	members  Members
	breakers breakers
	// console serves the web console's files at /ui/.
	console http.Handler
	// exports counts each tenant's running exports.
	exports exportSlots
}

// Deps are the parts a Server is built from.
type Deps struct {
	Publisher Publisher
	Records   Records
	Replies   Replies
	Catalog   Catalog
	// Admitter may be nil: every authenticated request is then admitted
	// with the server's default limits.
	Admitter Admitter
	Verifier *auth.Verifier
	// Ready checks the queue; Records.Ping checks the store.
	Ready  func(context.Context) error
	Logger *slog.Logger
	// Backfills serves /v1/backfills; its zero value answers 501.
	Backfills BackfillDeps
	// DLQ and DeadRecords serve GET /v1/dlq and POST /v1/dlq/{id}/replay;
	// nil answers 501.
	DLQ         DeadLetters
	DeadRecords DeadRecords
	// Webhooks serves /v1/webhooks and resolves callback_url; nil answers
	// 501.
	Webhooks WebhookEndpoints
	// Meter and Tracer instrument the API (jobs submitted, publish time,
	// producer spans whose context travels with each job); nil means none.
	Meter  metric.Meter
	Tracer trace.TracerProvider
	// Usage serves the quota part of GET /v1/me; nil leaves it out.
	Usage TenantUsage
	// Fleet serves the backlogs of GET /v1/fleet; nil leaves them out.
	Fleet Backlogs
	// Members is the fleet's membership registry: GET /v1/models and
	// /v1/fleet list the live workers, and a synchronous call of a task
	// none serves answers 503 no_workers. nil leaves workers out and
	// refuses nothing on their account.
	Members Members
	// Console serves the web console's files at /ui/, without
	// authentication (every call the console makes carries the user's
	// token); nil serves none.
	Console http.Handler
}

// New builds the API.
func New(cfg Config, d Deps) *Server {
	s := &Server{cfg: cfg.withDefaults(), pub: d.Publisher, recs: d.Records, replies: d.Replies,
		catalog: d.Catalog, admit: d.Admitter, verifier: d.Verifier, ready: d.Ready, log: d.Logger,
		dlq: d.DLQ, deadRecs: d.DeadRecords, usage: d.Usage, fleet: d.Fleet, webhooks: d.Webhooks,
		members: d.Members}
	s.breakers.p = s.cfg.Breaker
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.bf = d.Backfills.withDefaults()
	s.ins = newInstruments(d.Meter, d.Tracer)
	s.observeFleet(d.Meter)
	s.console = d.Console
	if s.console == nil {
		s.console = http.NotFoundHandler()
	}
	s.handler = s.routes()
	return s
}

// Handler is the API's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Drain makes readiness fail and new jobs answer 503, so that a load
// balancer moves traffic away while in-flight requests finish.
func (s *Server) Drain() { s.draining.Store(true) }

// routes registers the route table, and answers everything else 404. No
// route is registered outside the table, whose tests prove every entry
// gated.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.mount(mux)
	mux.HandleFunc(OpenAIPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeOpenAIError(w, errorf(http.StatusNotFound, "not_found", "no route for %s %s; this surface serves /embeddings, /models, /files and /batches",
			r.Method, strings.TrimPrefix(r.URL.Path, OpenAIPrefix)))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Checks are the readiness checks of the API by name (ingest draining,
// NATS, Redis). The operations listener serves them in detail; the public
// /readyz says only whether all pass, since dependency errors name hosts,
// addresses and internals that are nobody's business outside the fleet.
func (s *Server) Checks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"ingest": func(context.Context) error {
			if s.draining.Load() {
				return errDraining
			}
			return nil
		},
		"nats":  s.ready,
		"redis": s.recs.Ping,
	}
}

var errDraining = errors.New("draining")

// readyz answers the public readiness probe with a bare status: the
// failing check and its error go to the log and the operations listener,
// never to the caller.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	for name, check := range s.Checks() {
		if err := check(ctx); err != nil {
			if err != errDraining {
				_ = s.unavailable(r, name, err) // logs, at most once a second
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
