package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/infer"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/telemetry"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/webhook"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// Hooks let a caller (a test, or main) observe a process's life.
type Hooks struct {
	// Listening is called with the HTTP address once it is bound.
	Listening func(addr string)
	// OpsListening is called with ingest's operations address (metrics,
	// detailed readiness) once it is bound.
	OpsListening func(addr string)
	// Ready is called once the process serves.
	Ready func()
	// Spans, when set, receives every span the process makes (a test's
	// tracetest.SpanRecorder, or an exporter's batch processor).
	Spans sdktrace.SpanProcessor
}

// The ONNX Runtime environment is the process's, and a process may run
// several workers (tests do): the first to start creates it and the last
// to stop destroys it, so that no worker's models outlive it.
var (
	ortMu    sync.Mutex
	ortUsers int
)

func acquireORT(lib string) error {
	ortMu.Lock()
	defer ortMu.Unlock()
	if err := infer.Init(lib); err != nil {
		return err
	}
	ortUsers++
	return nil
}

func releaseORT() {
	ortMu.Lock()
	defer ortMu.Unlock()
	if ortUsers--; ortUsers == 0 {
		_ = infer.Shutdown()
	}
}

// RunWorker runs a worker until ctx ends, then drains: it stops pulling,
// finishes the batch in hand within cfg.ShutdownTimeout, delivers and acks.
func RunWorker(ctx context.Context, cfg config.Worker, log *slog.Logger, hooks Hooks) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := acquireORT(cfg.ORTLib); err != nil {
		return err
	}
	defer releaseORT()
	cudaOpts, _ := cfg.CUDAOptionMap() // checked by Validate
	var models []worker.Model
	var infos []job.ModelInfo
	for _, dir := range cfg.ModelDirs() {
		m, err := infer.LoadModel(dir, infer.SessionOptions{Device: cfg.Device, IntraOpThreads: cfg.IntraOpThreads, CUDAOptions: cudaOpts})
		if err != nil {
			return err
		}
		defer m.Close()
		info := m.Info()
		log.InfoContext(ctx, "model loaded", slog.String("task", info.Task), slog.String("kind", string(info.Kind)),
			slog.String("version", info.Version), slog.String("dir", dir), slog.String("device", cfg.Device))
		models = append(models, modelAdapter{m})
		infos = append(infos, modelInfo(info))
	}

	nc, q, err := openQueue(cfg.NATS, "jetinfer-worker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	rdb, st, err := openStore(ctx, cfg.Redis, cfg.RedisWait, cfg.ResultTTL, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := q.CheckStreams(startCtx); err != nil {
		return err
	}
	for _, info := range infos {
		if err := q.Announce(startCtx, info); err != nil {
			return err
		}
	}
	members, member, err := joinFleet(startCtx, q, cfg, infos)
	if err != nil {
		return err
	}

	prom, tp, err := newTelemetry("jetinfer-worker", cfg.Trace, hooks)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(prom, tp)
	metrics, err := worker.NewExportedMetrics(prom.Meter("github.com/jetinfer/jetinfer/internal/worker"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, m := range models {
		version := ""
		if v, ok := m.(worker.Versioned); ok {
			version = v.Version()
		}
		metrics.Init(m.Task(), version)
	}
	hookPub := webhook.NewPublisher(q, log, prom.Meter("github.com/jetinfer/jetinfer/internal/webhook"))
	w := worker.New(worker.Config{
		BatchSize:   cfg.BatchSize,
		BatchWait:   cfg.BatchWait,
		BulkPause:   cfg.BulkPause,
		BatchTokens: cfg.BatchTokens,
		AckWait:     cfg.AckWait,
		// The latency budget's flags: see config.Worker.
		LatencyBudget:     cfg.LatencyBudget,
		InteractiveRecent: cfg.InteractiveRecent,
		Tracer:            tp,
		Webhooks:          hookPub,
		// Off unless the deployment shares results among tenants.
		ReuseAcrossTenants: cfg.ReuseAcrossTenants,
		TenantScan:         cfg.TenantScan,
		FairQuantum:        cfg.FairQuantum,
		Weights:            tenantWeights{tenant.NewStore(rdb)},
		// A tenant without a record has the default share.
		ResultShares: resultShares(rdb, st, q),
	}, workerQueue{q, queue.ConsumerConfig{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending}},
		st, models, log, metrics)

	health := &http.Server{
		Addr: cfg.HTTPAddr,
		Handler: telemetry.HealthHandler(map[string]telemetry.Check{
			"nats":  func(ctx context.Context) error { return q.Ready(ctx) },
			"redis": st.Ping,
			"worker": func(context.Context) error {
				if !w.Ready() {
					return errors.New("not pulling")
				}
				return nil
			},
		}, map[string]http.Handler{"GET /metrics": prom.Handler()}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	if hooks.Listening != nil {
		hooks.Listening(ln.Addr().String())
	}

	// A soft stop (SIGTERM) lets the batch in hand finish; ShutdownTimeout
	// later the hard context cancels it, and unacknowledged jobs are
	// redelivered to another worker.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stopHard := context.AfterFunc(ctx, func() {
		log.Info("stopping: finishing the batch in hand", slog.Duration("timeout", cfg.ShutdownTimeout))
		time.AfterFunc(cfg.ShutdownTimeout, cancelHard)
	})
	defer stopHard()

	g, gctx := errgroup.WithContext(hard)
	g.Go(func() error {
		if err := health.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = health.Shutdown(sctx)
		}()
		log.InfoContext(ctx, "worker ready", slog.Int("models", len(models)), slog.String("http_addr", ln.Addr().String()))
		if hooks.Ready != nil {
			go func() {
				for !w.Ready() && gctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				hooks.Ready()
			}()
		}
		return w.Run(ctx, gctx)
	})
	g.Go(func() error { return w.KeepMembership(ctx, gctx, members, member, cfg.Heartbeat) })
	// Every worker runs a DLQ mover; they share one durable consumer, so
	// each MAX_DELIVERIES advisory is handled once. It stops with the soft
	// stop: an advisory in hand is finished, or redelivered.
	g.Go(func() error {
		mctx, cancel := context.WithCancel(gctx)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		return q.RunMover(mctx, deadStore{st, hookPub}, queue.MoverConfig{}, log)
	})
	if cfg.Webhooks.Deliver {
		// Webhook deliverers share one durable consumer; each stops pulling
		// with the soft stop and waits for its attempts in flight.
		d := webhook.NewDeliverer(cfg.Webhooks.Config(), q, webhook.NewRegistry(rdb, cfg.Webhooks.Targets()), log,
			prom.Meter("github.com/jetinfer/jetinfer/internal/webhook"))
		g.Go(func() error {
			dctx, cancel := context.WithCancel(gctx)
			defer cancel()
			defer context.AfterFunc(ctx, cancel)()
			return d.Run(dctx)
		})
	}
	g.Go(func() error {
		pctx, cancel := context.WithCancel(gctx)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		tasks := make([]string, len(models))
		for i, m := range models {
			tasks[i] = m.Task()
		}
		pollBacklog(pctx, q, tasks, metrics, cfg.MetricsPoll, log)
		return nil
	})
	err = g.Wait()
	// Make sure acks and naks reach the server before the connection closes.
	_ = nc.Flush()
	log.Info("worker stopped")
	return err
}

// natsOptions are the connection options every process uses: reconnect
// forever, buffer while reconnecting, log state changes.
func natsOptions(c config.NATS, name string, log *slog.Logger) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", slog.Any("error", err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", slog.String("url", nc.ConnectedUrl())) }),
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	return opts
}

// deadStore is the store as the DLQ mover uses it: a backfill document it
// marks dead may be the one whose count ends its backfill (or crosses a
// progress multiple), and that event is queued here, as a worker would.
type deadStore struct {
	*store.Store
	hooks *webhook.Publisher
}

// MarkDead writes j's dead state and queues the backfill event it made due.
func (d deadStore) MarkDead(ctx context.Context, j *job.Job, e *job.Error, attempts int, now time.Time) (job.Status, error) {
	fs := []store.Final{{Job: j, Status: job.StatusDead, Error: e, Attempts: attempts}}
	sts, err := d.Finish(ctx, fs, now)
	if err != nil {
		return "", err
	}
	if fs[0].Due != nil {
		if err := d.hooks.PublishBackfill(ctx, []store.BackfillEvent{*fs[0].Due}); err != nil {
			return "", fmt.Errorf("queue backfill %s event: %w", j.Backfill, err)
		}
	}
	return sts[0], nil
}

var _ worker.Weights = tenantWeights{}

// tenantWeights reads each tenant's weight in the shared lanes from its
// record; a tenant it cannot read, or one with no weight set, weighs 1.
type tenantWeights struct{ st *tenant.Store }

func (w tenantWeights) Weight(ctx context.Context, id string) int {
	t, err := w.st.Get(ctx, id)
	if err != nil || t.Weight < 1 {
		return 1
	}
	return t.Weight
}
