package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// streamSource is what pollStreams needs of the queue.
type streamSource interface {
	StreamUsage(ctx context.Context, name string) (queue.Usage, error)
}

var _ streamSource = (*queue.Client)(nil)

// polledStreams are the streams whose usage ingest exports.
var polledStreams = []string{job.StreamJobs, job.StreamResults, job.StreamDLQ}

// streamGauges export how full the streams are, as last polled:
// jetinfer_stream_bytes{stream}, jetinfer_stream_messages{stream},
// jetinfer_stream_max_bytes{stream} and jetinfer_stream_max_messages{stream}
// (0 where the stream has no such limit), and how old their oldest message
// is against how long they keep one: jetinfer_stream_oldest_seconds{stream}
// and jetinfer_stream_max_age_seconds{stream}. A full JOBS refuses jobs (503
// queue_full), a RESULTS at 90% refuses backfill documents (503
// results_full), and results older than RESULTS' max age are gone, so these
// are what to alert on before users see any of it.
type streamGauges struct {
	mu    sync.Mutex
	usage map[string]queue.Usage
}

func newStreamGauges(meter metric.Meter) (*streamGauges, error) {
	g := &streamGauges{usage: map[string]queue.Usage{}}
	bytes, err := meter.Int64ObservableGauge("jetinfer.stream.bytes", metric.WithUnit("By"),
		metric.WithDescription("bytes a JetStream stream holds (polled)"))
	if err != nil {
		return nil, err
	}
	msgs, err := meter.Int64ObservableGauge("jetinfer.stream.messages",
		metric.WithDescription("messages a JetStream stream holds (polled)"))
	if err != nil {
		return nil, err
	}
	maxBytes, err := meter.Int64ObservableGauge("jetinfer.stream.max_bytes", metric.WithUnit("By"),
		metric.WithDescription("a JetStream stream's byte limit, 0 for none (polled)"))
	if err != nil {
		return nil, err
	}
	maxMsgs, err := meter.Int64ObservableGauge("jetinfer.stream.max_messages",
		metric.WithDescription("a JetStream stream's message limit, 0 for none (polled)"))
	if err != nil {
		return nil, err
	}
	oldest, err := meter.Float64ObservableGauge("jetinfer.stream.oldest", metric.WithUnit("s"),
		metric.WithDescription("age of a JetStream stream's oldest message, 0 when empty (polled)"))
	if err != nil {
		return nil, err
	}
	maxAge, err := meter.Float64ObservableGauge("jetinfer.stream.max_age", metric.WithUnit("s"),
		metric.WithDescription("how long a JetStream stream keeps a message, 0 for no limit (polled)"))
	if err != nil {
		return nil, err
	}
	sets := map[string]metric.ObserveOption{}
	for _, s := range polledStreams {
		sets[s] = metric.WithAttributeSet(attribute.NewSet(attribute.String("stream", s)))
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		for name, u := range g.usage {
			set := sets[name]
			o.ObserveInt64(bytes, int64(u.Bytes), set)
			o.ObserveInt64(msgs, int64(u.Msgs), set)
			o.ObserveInt64(maxBytes, max(u.MaxBytes, 0), set)
			o.ObserveInt64(maxMsgs, max(u.MaxMsgs, 0), set)
			age := 0.0
			if !u.First.IsZero() {
				age = max(time.Since(u.First).Seconds(), 0)
			}
			o.ObserveFloat64(oldest, age, set)
			o.ObserveFloat64(maxAge, u.MaxAge.Seconds(), set)
		}
		return nil
	}, bytes, msgs, maxBytes, maxMsgs, oldest, maxAge)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// pollStreams records the streams' usage in g every interval until ctx
// ends. A stream that cannot be read keeps its last figures.
func pollStreams(ctx context.Context, q streamSource, g *streamGauges, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, name := range polledStreams {
			pctx, cancel := context.WithTimeout(ctx, every)
			u, err := q.StreamUsage(pctx, name)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					log.DebugContext(ctx, "stream usage", slog.String("stream", name), slog.Any("error", err))
				}
				continue
			}
			g.mu.Lock()
			g.usage[name] = u
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
