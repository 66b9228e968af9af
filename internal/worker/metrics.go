package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// Metrics counts what a worker did. It is safe for concurrent use and cheap
// to update on the hot path: counters without labels are atomics read when
// metrics are scraped, and labelled instruments use attribute sets built
// once per label combination.
//
// Every series labelled by task also carries model_version, the version of
// the model serving the task (jetinfer.json "version"), so that two versions
// rolled out side by side can be compared.
//
// Exported names (Prometheus): jetinfer_worker_jobs_finished_total{tenant,
// task,model_version,lane,status},
// jetinfer_worker_job_stage_seconds{task,model_version,lane,stage} with
// stage queue (broker wait), batch (batch wait), tokenize, infer, deliver and
// total, jetinfer_worker_batch_size{task,model_version} (documents per
// model call), jetinfer_worker_batch_tokens{task,model_version} (padded
// tokens per call), jetinfer_worker_batch_padding_ratio{task,model_version},
// jetinfer_worker_batches_total,
// jetinfer_worker_rows_total, jetinfer_worker_tokens_total,
// jetinfer_worker_padded_tokens_total, jetinfer_worker_splits_total,
// jetinfer_worker_retries_total, jetinfer_worker_heartbeats_total,
// jetinfer_worker_store_retries_total, jetinfer_worker_results_full_retries_total,
// jetinfer_worker_results_held, jetinfer_worker_results_share_held,
// jetinfer_worker_tenants_held,
// jetinfer_worker_redeliveries_total{task,model_version,lane},
// jetinfer_worker_dead_letters_total{task,model_version,lane},
// jetinfer_worker_tenants{task,lane} (the tenants' consumers a worker pulls
// on a shared lane) and
// jetinfer_consumer_pending{task,lane} / jetinfer_consumer_ack_pending{task,lane}.
type Metrics struct {
	batches, rows, tokens, paddedTokens atomic.Int64
	splits, retries, heartbeats         atomic.Int64
	storeRetries, resultsFullRetries    atomic.Int64
	// resultsHeld is the backfill documents held because RESULTS is full;
	// shareHeld, those held because their tenant holds its share of it.
	resultsHeld, shareHeld atomic.Int64
	// tenantsHeld is the tenants (per task) whose backfill lane consumers
	// are stopped because they hold their share of RESULTS.
	tenantsHeld atomic.Int64

	finishedC   metric.Int64Counter
	stage       metric.Float64Histogram
	batchSize   metric.Int64Histogram
	batchTokens metric.Int64Histogram
	padding     metric.Float64Histogram
	redelivered metric.Int64Counter
	deadC       metric.Int64Counter

	// Attribute sets, built once per label combination; typed maps, not a
	// sync.Map, so that a lookup does not box its key.
	setsMu   sync.RWMutex
	versions map[string]string // task → model version, set by Init
	finSets  map[finishedKey][]metric.AddOption
	laneSets map[laneKey]*laneSets
	taskSets map[string][]metric.RecordOption

	mu      sync.Mutex
	jobs    map[[2]string]int64
	pending map[[2]string][2]int64 // task, lane → pending, ack pending
	tenants map[[2]string]int64    // task, lane → tenants pulled
}

// laneSets are the pre-built attribute sets of one task and lane, as the
// option slices the instruments take (a prebuilt slice passed with ... is
// not copied, so recording allocates nothing).
type laneSets struct {
	queue, batch, tokenize, infer, deliver, total []metric.RecordOption
	lane                                          []metric.AddOption
}

// Init names the version of the model serving task, which the task's
// series carry, and creates its event counters (redeliveries, dead
// letters) at zero for every lane, so that they are scraped, and rate()
// works, before the first event. It is called before the task's first job.
func (m *Metrics) Init(task, version string) {
	m.setsMu.Lock()
	m.versions[task] = version
	m.setsMu.Unlock()
	ctx := context.Background()
	for _, l := range job.Lanes {
		ls := m.lane(task, l)
		m.redelivered.Add(ctx, 0, ls.lane...)
		m.deadC.Add(ctx, 0, ls.lane...)
	}
}

type finishedKey struct {
	tenant, task string
	lane         job.Lane
	status       job.Status
}

type laneKey struct {
	task string
	lane job.Lane
}

// NewMetrics returns metrics that are counted but not exported.
func NewMetrics() *Metrics {
	m, _ := NewExportedMetrics(noop.NewMeterProvider().Meter(""))
	return m
}

// NewExportedMetrics returns metrics whose instruments are created on meter.
func NewExportedMetrics(meter metric.Meter) (*Metrics, error) {
	m := &Metrics{jobs: map[[2]string]int64{}, pending: map[[2]string][2]int64{}, tenants: map[[2]string]int64{},
		versions: map[string]string{}, finSets: map[finishedKey][]metric.AddOption{}, laneSets: map[laneKey]*laneSets{},
		taskSets: map[string][]metric.RecordOption{}}
	var err error
	must := func(e error) {
		if err == nil {
			err = e
		}
	}
	m.finishedC, err = meter.Int64Counter("jetinfer.worker.jobs.finished",
		metric.WithDescription("jobs settled by a worker, by tenant, task, lane and final status"))
	var e error
	m.stage, e = meter.Float64Histogram("jetinfer.worker.job.stage", metric.WithUnit("s"),
		metric.WithDescription("per-job time in each stage: queue (broker wait), batch (batch wait), tokenize, infer, deliver, total"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	must(e)
	m.batchSize, e = meter.Int64Histogram("jetinfer.worker.batch.size",
		metric.WithDescription("documents per model call"), metric.WithExplicitBucketBoundaries(telemetry.SizeBuckets...))
	must(e)
	m.batchTokens, e = meter.Int64Histogram("jetinfer.worker.batch.tokens",
		metric.WithDescription("padded tokens per model call (rows × longest row)"),
		metric.WithExplicitBucketBoundaries(telemetry.TokenBuckets...))
	must(e)
	m.padding, e = meter.Float64Histogram("jetinfer.worker.batch.padding_ratio",
		metric.WithDescription("share of a model call's tokens that are padding"),
		metric.WithExplicitBucketBoundaries(telemetry.RatioBuckets...))
	must(e)
	m.redelivered, e = meter.Int64Counter("jetinfer.worker.redeliveries",
		metric.WithDescription("job deliveries after the first (attempt > 1), by task and lane"))
	must(e)
	m.deadC, e = meter.Int64Counter("jetinfer.worker.dead_letters",
		metric.WithDescription("jobs dead-lettered by a worker, by task and lane (the error code is in the DLQ message and the log)"))
	must(e)
	// The worker's own tallies, read when metrics are collected: counters
	// only grow, gauges go up and down.
	observed := []struct {
		name, desc string
		v          *atomic.Int64
		gauge      bool
	}{
		{"jetinfer.worker.batches", "model calls", &m.batches, false},
		{"jetinfer.worker.rows", "model rows (windows) run", &m.rows, false},
		{"jetinfer.worker.tokens", "real tokens run, special tokens included", &m.tokens, false},
		{"jetinfer.worker.padded_tokens", "tokens computed, padding included", &m.paddedTokens, false},
		{"jetinfer.worker.splits", "failed model calls split in halves and retried", &m.splits, false},
		{"jetinfer.worker.retries", "jobs nak'ed for a later retry", &m.retries, false},
		{"jetinfer.worker.heartbeats", "InProgress heartbeats sent while a long batch ran", &m.heartbeats, false},
		{"jetinfer.worker.store_retries", "result-store operations retried while the store was away (the batch is held, not nak'ed)", &m.storeRetries, false},
		{"jetinfer.worker.results_full_retries", "backfill results offered again while the RESULTS stream was full or their tenant held its share of it (the documents are held, not nak'ed)", &m.resultsFullRetries, false},
		{"jetinfer.worker.results_held", "backfill documents held because the RESULTS stream is full (their backfill lanes are paused)", &m.resultsHeld, true},
		{"jetinfer.worker.results_share_held", "backfill documents held because their tenant holds its share of the RESULTS stream (only its backfill consumer is paused)", &m.shareHeld, true},
		{"jetinfer.worker.tenants_held", "tenants (counted per task) whose backfill documents this worker holds, and whose backfill consumers it stopped pulling, because they hold their share of the RESULTS stream", &m.tenantsHeld, true},
	}
	for _, c := range observed {
		v := c.v
		observe := metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(v.Load())
			return nil
		})
		if c.gauge {
			_, e = meter.Int64ObservableGauge(c.name, metric.WithDescription(c.desc), observe)
		} else {
			_, e = meter.Int64ObservableCounter(c.name, metric.WithDescription(c.desc), observe)
		}
		must(e)
	}
	pending, e := meter.Int64ObservableGauge("jetinfer.consumer.pending",
		metric.WithDescription("jobs waiting in the durable consumer of a task and lane (polled)"))
	must(e)
	ackPending, e := meter.Int64ObservableGauge("jetinfer.consumer.ack_pending",
		metric.WithDescription("jobs handed out and not yet acknowledged, per task and lane (polled)"))
	must(e)
	tenants, e := meter.Int64ObservableGauge("jetinfer.worker.tenants",
		metric.WithDescription("tenants whose consumers of a shared lane (bulk, backfill) this worker pulls in fair shares"))
	must(e)
	if err != nil {
		return nil, err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for k, v := range m.pending {
			set := metric.WithAttributes(attribute.String("task", k[0]), attribute.String("lane", k[1]))
			o.ObserveInt64(pending, v[0], set)
			o.ObserveInt64(ackPending, v[1], set)
		}
		for k, v := range m.tenants {
			o.ObserveInt64(tenants, v, metric.WithAttributes(attribute.String("task", k[0]), attribute.String("lane", k[1])))
		}
		return nil
	}, pending, ackPending, tenants)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// SetPending records a consumer's backlog, as polled from its consumer info.
func (m *Metrics) SetPending(task string, lane job.Lane, pending, ackPending int64) {
	m.mu.Lock()
	m.pending[[2]string{task, string(lane)}] = [2]int64{pending, ackPending}
	m.mu.Unlock()
}

// SetTenants records how many tenants' consumers of a shared lane the
// worker pulls.
func (m *Metrics) SetTenants(task string, lane job.Lane, n int64) {
	m.mu.Lock()
	m.tenants[[2]string{task, string(lane)}] = n
	m.mu.Unlock()
}

func (m *Metrics) lane(task string, lane job.Lane) *laneSets {
	k := laneKey{task, lane}
	m.setsMu.RLock()
	ls, ok := m.laneSets[k]
	m.setsMu.RUnlock()
	if ok {
		return ls
	}
	version := m.version(task)
	st := func(stage string) []metric.RecordOption {
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("task", task), version,
			attribute.String("lane", string(lane)), attribute.String("stage", stage)))}
	}
	ls = &laneSets{queue: st("queue"), batch: st("batch"), tokenize: st("tokenize"), infer: st("infer"),
		deliver: st("deliver"), total: st("total"),
		lane: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("task", task), version, attribute.String("lane", string(lane))))}}
	m.setsMu.Lock()
	defer m.setsMu.Unlock()
	if prev, ok := m.laneSets[k]; ok {
		return prev
	}
	m.laneSets[k] = ls
	return ls
}

// version is the model_version attribute of task's series.
func (m *Metrics) version(task string) attribute.KeyValue {
	m.setsMu.RLock()
	defer m.setsMu.RUnlock()
	return attribute.String("model_version", m.versions[task])
}

func (m *Metrics) taskSet(task string) []metric.RecordOption {
	m.setsMu.RLock()
	set, ok := m.taskSets[task]
	m.setsMu.RUnlock()
	if ok {
		return set
	}
	version := m.version(task)
	m.setsMu.Lock()
	defer m.setsMu.Unlock()
	if set, ok := m.taskSets[task]; ok {
		return set
	}
	set = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("task", task), version))}
	m.taskSets[task] = set
	return set
}

// received counts a delivery; attempts after the first are redeliveries.
func (m *Metrics) received(ctx context.Context, j *job.Job, attempt int) {
	if attempt > 1 {
		m.redelivered.Add(ctx, 1, m.lane(j.Task, j.Lane).lane...)
	}
}

func (m *Metrics) observeRun(ctx context.Context, task string, st RunStats, docs int) {
	m.batches.Add(1)
	m.rows.Add(int64(st.Rows))
	m.tokens.Add(int64(st.Tokens))
	m.paddedTokens.Add(int64(st.PaddedTokens))
	set := m.taskSet(task)
	m.batchSize.Record(ctx, int64(docs), set...)
	m.batchTokens.Record(ctx, int64(st.PaddedTokens), set...)
	if st.PaddedTokens > 0 {
		m.padding.Record(ctx, float64(st.PaddedTokens-st.Tokens)/float64(st.PaddedTokens), set...)
	}
}

// finished counts a settled job and records its latency breakdown; deliver
// is the time from the end of its inference (or of its preparation, for a
// job that never ran) to its acknowledgement.
func (m *Metrics) finished(ctx context.Context, j *job.Job, s job.Status, t *job.Timings, deliver time.Duration) {
	k := finishedKey{tenant: j.Tenant, task: j.Task, lane: j.Lane, status: s}
	m.setsMu.RLock()
	set, ok := m.finSets[k]
	m.setsMu.RUnlock()
	if !ok {
		set = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("tenant", j.Tenant),
			attribute.String("task", j.Task), m.version(j.Task), attribute.String("lane", string(j.Lane)), attribute.String("status", string(s))))}
		m.setsMu.Lock()
		m.finSets[k] = set
		m.setsMu.Unlock()
	}
	m.finishedC.Add(ctx, 1, set...)
	m.mu.Lock()
	m.jobs[[2]string{j.Task, string(s)}]++
	m.mu.Unlock()
	if t == nil {
		return
	}
	ls := m.lane(j.Task, j.Lane)
	m.stage.Record(ctx, t.Queue/1000, ls.queue...)
	m.stage.Record(ctx, t.Batch/1000, ls.batch...)
	m.stage.Record(ctx, t.Tokenize/1000, ls.tokenize...)
	m.stage.Record(ctx, t.Infer/1000, ls.infer...)
	m.stage.Record(ctx, deliver.Seconds(), ls.deliver...)
	m.stage.Record(ctx, t.Total/1000+deliver.Seconds()-t.Delivery/1000, ls.total...)
}

// deadLettered counts a job sent to the DLQ by this worker.
func (m *Metrics) deadLettered(ctx context.Context, j *job.Job) {
	m.deadC.Add(ctx, 1, m.lane(j.Task, j.Lane).lane...)
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Batches, Rows, Tokens, PaddedTokens int64
	Splits, Retries, Heartbeats         int64
	StoreRetries, ResultsFullRetries    int64
	// Jobs counts finished jobs by task and status.
	Jobs map[[2]string]int64
}

// Snapshot returns the current counters.
func (m *Metrics) Snapshot() Snapshot {
	s := Snapshot{Batches: m.batches.Load(), Rows: m.rows.Load(), Tokens: m.tokens.Load(),
		PaddedTokens: m.paddedTokens.Load(), Splits: m.splits.Load(), Retries: m.retries.Load(),
		Heartbeats: m.heartbeats.Load(), StoreRetries: m.storeRetries.Load(),
		ResultsFullRetries: m.resultsFullRetries.Load(), Jobs: map[[2]string]int64{}}
	m.mu.Lock()
	for k, v := range m.jobs {
		s.Jobs[k] = v
	}
	m.mu.Unlock()
	return s
}
