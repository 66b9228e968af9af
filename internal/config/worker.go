package config

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// Worker is the configuration of cmd/worker.
type Worker struct {
	NATS  NATS
	Redis Redis
	// RedisWait makes final states wait for replicas.
	RedisWait RedisWait
	Log       Log
	Trace     Trace
	// Webhooks configures webhook delivery.
	Webhooks Webhooks
	// Models are comma-separated model directories, one task each.
	// Defaults to .jetinfer/models/sentiment.
	Models string
	// ORTLib is the path of libonnxruntime.so. Defaults to .jetinfer/lib/libonnxruntime.so.1.
	ORTLib string
	// Device is cpu or cuda:N. Defaults to cpu.
	Device string
	// CUDAOptions are comma-separated key=value CUDA execution provider
	// options (use_tf32=0, gpu_mem_limit=..., ...), used with a cuda device.
	CUDAOptions string
	// IntraOpThreads is ONNX Runtime's intra-op thread count. Defaults to the number of CPUs.
	IntraOpThreads int
	// BatchSize is the most documents in one model call. Defaults to 32.
	BatchSize int
	// BatchWait is how long the first job of a batch waits for company before
	// the batch is offered to the model; a batch also grows while the model
	// is busy, so 0 batches under load without delaying a lone job. Defaults to 0.
	BatchWait time.Duration
	// BulkPause is how long a batch of bulk-lane (backfill) jobs waits
	// before it runs while interactive jobs are arriving, leaving the CPU to
	// them. Defaults to 10ms.
	BulkPause time.Duration
	// BatchTokens is the padded token budget of one model call. Defaults to 8192.
	BatchTokens int
	// LatencyBudget caps a bulk or backfill batch at what the model is
	// expected to run in this long (from its learnt cost) while interactive
	// jobs arrived within InteractiveRecent; 0 turns the cap off. Defaults
	// to batch.DefaultLatencyBudget (250ms, for CPUs; about 1s suits GPUs).
	LatencyBudget time.Duration
	// InteractiveRecent is how long after an interactive job LatencyBudget
	// applies. Defaults to batch.DefaultRecentFor (5m).
	InteractiveRecent time.Duration
	// AckWait must cover one batch. Defaults to 30s.
	AckWait time.Duration
	// MaxDeliver is how often a job is tried before it is dead-lettered. Defaults to 5.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged jobs per consumer across workers. Defaults to 1024.
	MaxAckPending int
	// ResultTTL is how long a record lives when its job names no TTL. Defaults to 24h.
	ResultTTL time.Duration
	// HTTPAddr serves /healthz, /readyz and /metrics. Defaults to
	// DefaultOpsAddr.
	HTTPAddr string
	// MetricsPoll is how often consumer backlogs are polled for
	// jetinfer_consumer_pending. Defaults to 5s.
	MetricsPoll time.Duration
	// ReuseAcrossTenants shares the backfill result reuse cache among all
	// tenants (an identical text one tenant ran is reused for another).
	// Defaults to false: each tenant reuses only its own results, since a
	// shared cache tells a tenant that some tenant ran a given text.
	ReuseAcrossTenants bool
	// TenantScan is how often a worker lists the tenants with work in the
	// shared lanes (bulk, backfill). Defaults to batch.DefaultTenantScan.
	TenantScan time.Duration
	// FairQuantum is the credit in bytes of job data a tenant gains per turn
	// of a shared lane. Defaults to batch.DefaultQuantum.
	FairQuantum int
	// ShutdownTimeout is how long a worker may finish its batch on SIGTERM
	// before it cancels it (unacknowledged jobs are redelivered). Defaults to 30s.
	ShutdownTimeout time.Duration
	// Heartbeat is how often the worker rewrites its entry in the fleet's
	// membership registry. Defaults to worker.DefaultHeartbeat.
	Heartbeat time.Duration
	// MemberTTL is how long the entry outlives the worker's last heartbeat
	// (a crash; a graceful stop removes it at once): ingest answers
	// 503 no_workers for a task this long after its last worker died.
	// Whole seconds, at least one heartbeat more than Heartbeat. Defaults
	// to worker.DefaultMemberTTL.
	MemberTTL time.Duration
}

// RegisterFlags registers every worker flag.
func (c *Worker) RegisterFlags(fs *flag.FlagSet) {
	c.NATS.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.RedisWait.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
	c.Trace.RegisterFlags(fs)
	c.Webhooks.RegisterFlags(fs)
	fs.StringVar(&c.Models, "models", ".jetinfer/models/sentiment", "comma-separated model directories")
	fs.StringVar(&c.ORTLib, "ort-lib", ".jetinfer/lib/libonnxruntime.so.1", "path of the ONNX Runtime shared library")
	fs.StringVar(&c.Device, "device", "cpu", "execution device: cpu or cuda:N")
	fs.StringVar(&c.CUDAOptions, "cuda-options", "", "comma-separated key=value ONNX Runtime CUDA provider options, e.g. use_tf32=0")
	fs.IntVar(&c.IntraOpThreads, "intra-op-threads", runtime.NumCPU(), "ONNX Runtime intra-op threads")
	fs.IntVar(&c.BatchSize, "batch-size", 32, "most documents in one model call")
	fs.DurationVar(&c.BatchWait, "batch-wait", 0, "how long the first job of a batch waits for company (batches also grow while the model is busy)")
	fs.DurationVar(&c.BulkPause, "bulk-pause", 10*time.Millisecond, "pause before each bulk-lane batch while interactive jobs are arriving (0: none)")
	fs.IntVar(&c.BatchTokens, "batch-tokens", 8192, "padded token budget of one model call")
	fs.DurationVar(&c.LatencyBudget, "latency-budget", batch.DefaultLatencyBudget, "while interactive jobs are recent, bulk batches are sized to run in about this long by the model's learnt cost (0: no cap; about 1s suits GPUs)")
	fs.DurationVar(&c.InteractiveRecent, "interactive-recent", batch.DefaultRecentFor, "how long after an interactive job --latency-budget applies")
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "JetStream ack wait; must cover one batch")
	fs.IntVar(&c.MaxDeliver, "max-deliver", 5, "deliveries before a job is dead-lettered")
	fs.IntVar(&c.MaxAckPending, "max-ack-pending", 1024, "unacknowledged jobs per consumer across workers")
	fs.DurationVar(&c.ResultTTL, "result-ttl", 24*time.Hour, "record TTL when the job names none")
	fs.StringVar(&c.HTTPAddr, "http-addr", DefaultOpsAddr, "address of /healthz, /readyz and /metrics")
	fs.DurationVar(&c.MetricsPoll, "metrics-poll", 5*time.Second, "how often consumer backlogs are polled for metrics")
	fs.BoolVar(&c.ReuseAcrossTenants, "reuse-across-tenants", false, "share the backfill result reuse cache among tenants (leaks to a tenant that another ran the same text; for deployments whose tenants trust one another)")
	fs.DurationVar(&c.TenantScan, "tenant-scan", batch.DefaultTenantScan, "how often the tenants with bulk or backfill work are listed (publishers' hints bring new ones at once)")
	fs.IntVar(&c.FairQuantum, "fair-quantum", batch.DefaultQuantum, "bytes of job data a tenant may send per turn when tenants share the bulk or backfill lane")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "soft-stop time on SIGTERM before the batch is canceled")
	fs.DurationVar(&c.Heartbeat, "heartbeat", worker.DefaultHeartbeat, "how often the worker rewrites its entry in the membership registry")
	fs.DurationVar(&c.MemberTTL, "member-ttl", worker.DefaultMemberTTL, "how long the membership entry outlives the last heartbeat (whole seconds, above --heartbeat)")
}

// ModelDirs splits Models.
func (c *Worker) ModelDirs() []string { return SplitList(c.Models) }

// CUDAOptionMap parses CUDAOptions.
func (c *Worker) CUDAOptionMap() (map[string]string, error) {
	items := SplitList(c.CUDAOptions)
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, kv := range items {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("cuda-options: %q is not key=value", kv)
		}
		if k == "device_id" {
			return nil, errors.New("cuda-options: device_id comes from --device cuda:N")
		}
		m[k] = v
	}
	return m, nil
}

// Validate checks the configuration; errors name the field.
func (c *Worker) Validate() error {
	errs := []error{c.NATS.Validate(), c.Redis.Validate(), c.RedisWait.Validate(c.Redis), c.Log.Validate(), c.Trace.Validate(), c.Webhooks.Validate()}
	if len(c.ModelDirs()) == 0 {
		errs = append(errs, errors.New("models: at least one model directory is needed"))
	}
	if c.ORTLib == "" {
		errs = append(errs, errors.New("ort-lib: must be set"))
	}
	if c.Device != "cpu" && !strings.HasPrefix(c.Device, "cuda:") {
		errs = append(errs, fmt.Errorf("device: %q is not cpu or cuda:N", c.Device))
	}
	if _, err := c.CUDAOptionMap(); err != nil {
		errs = append(errs, err)
	}
	if c.IntraOpThreads < 1 {
		errs = append(errs, fmt.Errorf("intra-op-threads: %d is below 1", c.IntraOpThreads))
	}
	if c.BatchSize < 1 || c.BatchSize > 1024 {
		errs = append(errs, fmt.Errorf("batch-size: %d is outside 1..1024", c.BatchSize))
	}
	if c.BulkPause < 0 || c.BulkPause > time.Second {
		errs = append(errs, fmt.Errorf("bulk-pause: %s is outside 0..1s", c.BulkPause))
	}
	if c.LatencyBudget < 0 {
		errs = append(errs, fmt.Errorf("latency-budget: %s is negative; 0 turns the cap off", c.LatencyBudget))
	}
	if c.InteractiveRecent < 0 {
		errs = append(errs, fmt.Errorf("interactive-recent: %s is negative", c.InteractiveRecent))
	}
	if c.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("batch-wait: %s is negative", c.BatchWait))
	}
	if c.BatchTokens < 1 {
		errs = append(errs, fmt.Errorf("batch-tokens: %d is below 1", c.BatchTokens))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("max-deliver: %d is below 1", c.MaxDeliver))
	}
	if c.FairQuantum < 1 {
		errs = append(errs, fmt.Errorf("fair-quantum: %d is below 1", c.FairQuantum))
	}
	if c.MaxAckPending < c.BatchSize {
		errs = append(errs, fmt.Errorf("max-ack-pending: %d is below batch-size %d", c.MaxAckPending, c.BatchSize))
	}
	if c.MemberTTL < time.Second || c.MemberTTL%time.Second != 0 || c.MemberTTL <= c.Heartbeat {
		errs = append(errs, fmt.Errorf("member-ttl: %s must be whole seconds, at least 1s and above heartbeat %s", c.MemberTTL, c.Heartbeat))
	}
	errs = append(errs, positive("ack-wait", c.AckWait), positive("heartbeat", c.Heartbeat), positive("metrics-poll", c.MetricsPoll), positive("result-ttl", c.ResultTTL),
		positive("shutdown-timeout", c.ShutdownTimeout), positive("tenant-scan", c.TenantScan))
	return errors.Join(errs...)
}
