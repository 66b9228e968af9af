package app

import (
	"context"
	"log/slog"
	"os"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/telemetry"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// newTelemetry builds a process's meter provider (served at /metrics) and
// tracer provider. Spans go to hooks.Spans when set, and both spans and
// metrics go over OTLP when the standard OTEL_* variables ask for it
// (telemetry.ExportWanted); otherwise spans are made (and propagate) but
// not exported.
func newTelemetry(service string, c config.Trace, hooks Hooks) (*telemetry.Metrics, *sdktrace.TracerProvider, error) {
	ctx := context.Background()
	exp, err := telemetry.NewExport(ctx, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	res := telemetry.Resource(ctx, service)
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	if exp.Metrics != nil {
		mopts = append(mopts, sdkmetric.WithReader(exp.Metrics))
	}
	metrics, err := telemetry.NewMetrics(mopts...)
	if err != nil {
		if exp.Spans != nil {
			_ = exp.Spans.Shutdown(ctx)
		}
		return nil, nil, err
	}
	var procs []sdktrace.SpanProcessor
	if hooks.Spans != nil {
		procs = append(procs, hooks.Spans)
	}
	if exp.Spans != nil {
		procs = append(procs, exp.Spans)
	}
	tp, err := telemetry.NewTracerProvider(telemetry.TraceConfig{Service: service, SampleRatio: c.SampleRatio,
		SamplerFromEnv: telemetry.SamplerFromEnv(os.Getenv), Resource: res}, procs...)
	if err != nil {
		_ = metrics.Shutdown(ctx)
		return nil, nil, err
	}
	return metrics, tp, nil
}

// shutdownTelemetry flushes the providers.
func shutdownTelemetry(m *telemetry.Metrics, tp *sdktrace.TracerProvider) {
	// Long enough for a last OTLP export of the spans and metrics in hand.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tp.Shutdown(ctx)
	_ = m.Shutdown(ctx)
}

// backlogSource is what pollBacklog needs of the queue.
type backlogSource interface {
	ConsumerBacklog(ctx context.Context, l job.Lane, task string) (queue.Backlog, error)
}

var _ backlogSource = (*queue.Client)(nil)

// pollBacklog records every served consumer's backlog in m every interval
// until ctx ends: the consumer lag that autoscaling (KEDA) and dashboards
// watch, seen from the worker.
func pollBacklog(ctx context.Context, q backlogSource, tasks []string, m *worker.Metrics, every time.Duration, log *slog.Logger) {
	poll(ctx, every, func() {
		for _, task := range tasks {
			for _, l := range job.Lanes {
				pctx, cancel := context.WithTimeout(ctx, every)
				b, err := q.ConsumerBacklog(pctx, l, task)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						log.DebugContext(ctx, "consumer backlog", slog.String("task", task), slog.String("lane", string(l)), slog.Any("error", err))
					}
					continue
				}
				m.SetPending(task, l, int64(b.Pending), int64(b.AckPending))
			}
		}
	})
}

// poll runs fn at once and then every interval until ctx ends; a slow fn
// delays the next run rather than stacking runs up.
func poll(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
