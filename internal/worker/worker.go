package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// Msg is one delivery of a job.
type Msg = job.Msg

// Puller hands out the deliveries of one lane and task.
type Puller interface {
	// Next blocks until a message arrives. It returns job.ErrStopped after
	// Stop, or once Drain has handed out every buffered message.
	Next() (*Msg, error)
	// Stop stops pulling at once; buffered messages are left to redelivery.
	Stop()
	// Drain stops pulling but lets Next hand out what is buffered.
	Drain()
}

// Prepared is a document tokenized for its model.
type Prepared interface {
	// Rows is the number of model rows (windows) the document needs.
	Rows() int
	// Tokens is the length of its longest row, special tokens included.
	Tokens() int
}

// Output is the result of one document.
type Output struct {
	Result json.RawMessage
	// Err is a per-document error; a permanent one dead-letters the job.
	Err error
}

// RunStats describes one model call.
type RunStats struct {
	Rows, Tokens, PaddedTokens int
	Infer, Post                time.Duration
}

// Model is what a worker needs of a loaded model.
type Model interface {
	Task() string
	// Prepare tokenizes a job's input (a text, a pair, a rerank's query
	// and documents) with its options.
	Prepare(in job.Input, opts job.Options) (Prepared, error)
	Run(ctx context.Context, in []Prepared) ([]Output, RunStats, error)
}

// Queue is what a worker needs of the job queue.
type Queue interface {
	// Pull starts pulling the jobs of lane and task from their durable
	// consumer, keeping up to prefetch messages buffered.
	Pull(ctx context.Context, l job.Lane, task string, prefetch int) (Puller, error)
	// Reply sends results to waiting callers, fire-and-forget.
	Reply(ctx context.Context, ds []job.Delivery) error
	// PublishResults stores backfill documents' results durably; a full
	// stream refuses with a *job.DeliverError wrapping job.ErrFull.
	PublishResults(ctx context.Context, ds []job.Delivery) error
	// DeadLetter copies m to the dead-letter stream with why it is dead
	// and stops its redelivery.
	DeadLetter(ctx context.Context, m *Msg, code, reason string) error
}

// Store is what a worker needs of the result store.
type Store interface {
	Start(ctx context.Context, jobs []*job.Job, attempts []int, now time.Time) ([]job.Status, error)
	Finish(ctx context.Context, fs []store.Final, now time.Time) ([]job.Status, error)
	Get(ctx context.Context, tenant, id string) (*job.Record, error)
	// Reusable returns the cached result under each key (nil for none) in
	// one round trip; see store.ReuseKey.
	Reusable(ctx context.Context, keys []string) ([]json.RawMessage, error)
}

// Versioned is implemented by models that know their version; results of
// backfill documents are reused only under the same task and version.
type Versioned interface {
	Version() string
}

var _ Store = (*store.Store)(nil)

// DefaultAckWait is the default Config.AckWait, the queue's default.
const DefaultAckWait = 30 * time.Second

// Config tunes a Worker.
type Config struct {
	// BatchSize is the most documents in one model call. Defaults to 32.
	BatchSize int
	// BatchWait is how long the first document of a batch waits for company
	// before the batch is offered to the model; a batch also grows while it
	// waits for a busy model. Defaults to 0.
	BatchWait time.Duration
	// BulkPause is how long a batch of bulk-lane jobs waits before it runs
	// while interactive jobs have arrived within the last second, leaving
	// the CPU to them; an interactive job that arrives meanwhile joins the
	// batch at once. 0 runs bulk batches back to back. Defaults to 0 here
	// (the worker binary's --bulk-pause defaults to 10ms).
	BulkPause time.Duration
	// BatchTokens is the padded token budget of one model call. Defaults to 8192.
	BatchTokens int
	// LatencyBudget caps a bulk or backfill batch at what the model is
	// expected to run in this long, from its learnt cost per padded token
	// and per row, while interactive jobs arrived within InteractiveRecent:
	// an interactive job then waits for about one budget. 0 means no cap
	// (the worker binary's --latency-budget defaults to
	// batch.DefaultLatencyBudget).
	LatencyBudget time.Duration
	// InteractiveRecent is how long after an interactive job the budget
	// applies. Defaults to batch.DefaultRecentFor.
	InteractiveRecent time.Duration
	// AckWait is how long the queue waits for a message's acknowledgement
	// before it redelivers it; messages in hand are kept alive every third
	// of it. Defaults to 30s.
	AckWait time.Duration
	// RetryBase is the first redelivery delay after a transient failure;
	// later ones double. Defaults to 1s.
	RetryBase time.Duration
	// ReuseAcrossTenants lets a backfill document reuse the result of an
	// identical text that another tenant ran. Off by default: each tenant
	// has its own reuse cache, so that a reused result cannot tell a tenant
	// what others have run.
	ReuseAcrossTenants bool
	// Tracer makes a span per job (a child of the trace context its message
	// carries) and per batch (linked to its jobs). Defaults to none: no
	// spans are made.
	Tracer trace.TracerProvider
	// Webhooks queues the webhook events of finished jobs that ask for
	// one. Defaults to none.
	Webhooks Webhooks
	// TenantScan is how often a pipeline asks the queue which tenants have
	// work on the shared lanes (when the queue is a TenantQueue): a
	// tenant's first jobs wait up to this long for a worker to pull them.
	// Defaults to batch.DefaultTenantScan.
	TenantScan time.Duration
	// FairQuantum is the credit, in bytes of job data, a tenant gains per
	// turn in a shared lane's deficit round robin (batch.Fair). Defaults to
	// batch.DefaultQuantum.
	FairQuantum int
	// Weights gives each tenant's weight in the shared lanes' deficit round
	// robin, read when the worker starts pulling the tenant's consumer.
	// Defaults to weight 1 for every tenant.
	Weights Weights
	// ResultShares tells a tenant's use of the RESULTS stream against its
	// share: a tenant that holds its share has its backfill documents held
	// and its backfill consumer stopped (park.go) until its exports purge.
	// Nil holds only when RESULTS as a whole is full.
	ResultShares ResultShares
}

// ResultShares is where a worker reads a tenant's use of RESULTS against
// its share (tenant.ResultShares).
type ResultShares interface {
	Use(ctx context.Context, tenant string) (tenant.ResultsUse, error)
}

// Weights is where a worker reads a tenant's weight in the shared lanes
// (tenant.Tenant.Weight); a tenant it cannot read gets weight 1.
type Weights interface {
	Weight(ctx context.Context, tenant string) int
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.BatchWait < 0 {
		c.BatchWait = 0
	}
	if c.BatchTokens <= 0 {
		c.BatchTokens = 8192
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.FairQuantum <= 0 {
		c.FairQuantum = batch.DefaultQuantum
	}
	if c.TenantScan <= 0 {
		c.TenantScan = batch.DefaultTenantScan
	}
	return c
}

// Worker serves a set of models.
type Worker struct {
	cfg    Config
	q      Queue
	st     Store
	models []Model
	log    *slog.Logger
	m      *Metrics
	tracer trace.Tracer
	traced bool

	mu      sync.Mutex
	pullers []Puller
	ready   bool
	hands   sync.Map // task → the *inHand of its pipeline, for KeepMembership
}

// New returns a worker for models.
func New(cfg Config, q Queue, st Store, models []Model, log *slog.Logger, m *Metrics) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics()
	}
	w := &Worker{cfg: cfg.withDefaults(), q: q, st: st, models: models, log: log, m: m}
	if cfg.Tracer != nil {
		w.tracer, w.traced = cfg.Tracer.Tracer(tracerName), true
	}
	return w
}

// Ready reports whether the worker is pulling.
func (w *Worker) Ready() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ready
}

// Run pulls and processes jobs until ctx is canceled (a soft stop: the worker
// stops pulling, finishes and delivers what it holds, and returns) or hard
// is canceled (the batch in flight is abandoned and redelivered later). Pass
// the same context twice for a worker without a soft stop.
func (w *Worker) Run(ctx, hard context.Context) error {
	g, gctx := errgroup.WithContext(hard)
	var ps []map[job.Lane]Puller
	for _, m := range w.models {
		lanes := map[job.Lane]Puller{}
		for _, l := range job.Lanes {
			p, err := w.pull(gctx, l, m.Task())
			if err != nil {
				w.stopPullers()
				return err
			}
			w.mu.Lock()
			w.pullers = append(w.pullers, p)
			w.mu.Unlock()
			lanes[l] = p
		}
		ps = append(ps, lanes)
	}
	w.mu.Lock()
	w.ready = true
	w.mu.Unlock()
	// A soft stop drains the pullers: Next hands out what is buffered and
	// then reports ErrStopped, which ends the pipelines in order.
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.ready = false
		for _, p := range w.pullers {
			p.Drain()
		}
		w.mu.Unlock()
	})
	defer stop()
	for i, m := range w.models {
		planner, err := batch.NewPlanner(batch.Policy{MaxSize: w.cfg.BatchSize, MaxTokens: w.cfg.BatchTokens})
		if err != nil {
			w.stopPullers()
			return fmt.Errorf("batch policy: %w", err)
		}
		pl := &pipeline{w: w, model: m, inter: ps[i][job.LaneInteractive], bulk: ps[i][job.LaneBulk],
			backfill: ps[i][job.LaneBackfill], planner: planner, soft: ctx,
			lanes: w.lanes()}
		g.Go(func() error { return pl.run(gctx) })
	}
	err := g.Wait()
	w.stopPullers()
	if errors.Is(err, context.Canceled) && hard.Err() != nil {
		return nil
	}
	return err
}

// pull starts pulling lane l of task: from the lane's consumer, and on a
// shared lane of a TenantQueue from each tenant's too, in fair shares.
func (w *Worker) pull(ctx context.Context, l job.Lane, task string) (Puller, error) {
	p, err := w.q.Pull(ctx, l, task, w.cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	if tq, ok := w.q.(TenantQueue); ok && l.Shared() {
		return newFairPuller(ctx, w, tq, l, task, p), nil
	}
	return p, nil
}

// addPuller registers a puller started after Run began, so that a soft
// stop drains it and the end of Run stops it. It reports whether the soft
// stop has come already: the caller then drains it itself.
func (w *Worker) addPuller(p Puller, soft context.Context) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pullers = append(w.pullers, p)
	return soft.Err() != nil
}

func (w *Worker) stopPullers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pullers {
		p.Stop()
	}
	w.ready = false
}

// lanes is a pipeline's lane policy.
func (w *Worker) lanes() *batch.Lanes {
	l := batch.NewLanes(w.cfg.BatchSize, w.cfg.BatchTokens, w.cfg.BulkPause)
	if w.cfg.InteractiveRecent > 0 {
		l.RecentFor = w.cfg.InteractiveRecent
	}
	return l
}

// retryDelay is the redelivery delay before attempt+1 (job.Backoff).
func (w *Worker) retryDelay(attempt int) time.Duration {
	return job.Backoff(w.cfg.RetryBase, attempt)
}

func errorOf(code string, err error) *job.Error {
	return &job.Error{Code: code, Message: err.Error()}
}
