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
	QueuedByLane(ctx context.Context) ([]queue.LaneQueued, error)
}

var _ streamSource = (*queue.Client)(nil)

// polledStreams are the streams whose usage ingest exports.
var polledStreams = []string{job.StreamJobs, job.StreamResults, job.StreamDLQ, job.StreamWebhooks}

// streamGauges export how full the streams are, as last polled:
// jetinfer_stream_bytes{stream}, jetinfer_stream_messages{stream},
// jetinfer_stream_max_bytes{stream} and jetinfer_stream_max_messages{stream}
// (0 where the stream has no such limit), and how old their oldest message
// is against how long they keep one: jetinfer_stream_oldest_seconds{stream}
// and jetinfer_stream_max_age_seconds{stream}. A full JOBS refuses jobs (503
// queue_full), a RESULTS at 90% refuses backfill documents (503
// results_full), and results older than RESULTS' max age are gone, so these
// are what to alert on before users see any of it.
//
// jetinfer_queue_pending{lane,task} is the jobs JOBS holds per lane and
// task, waiting or in a worker's hands, summed over the tenants of a shared
// lane: what an autoscaler scales workers on (a lane × task seen once stays
// exported, at 0 once empty). It is read from the stream's subjects, so it
// counts while no worker runs and no tenant's consumer exists yet.
type streamGauges struct {
	mu     sync.Mutex
	usage  map[string]queue.Usage
	queued map[[2]string]int64 // lane, task → jobs held
}

// streamGauge is one of the gauges streamGauges export.
type streamGauge struct {
	name, unit, desc string
	value            func(u queue.Usage) float64
}

var streamGaugeDefs = []streamGauge{
	{"jetinfer.stream.bytes", "By", "bytes a JetStream stream holds (polled)",
		func(u queue.Usage) float64 { return float64(u.Bytes) }},
	{"jetinfer.stream.messages", "", "messages a JetStream stream holds (polled)",
		func(u queue.Usage) float64 { return float64(u.Msgs) }},
	{"jetinfer.stream.max_bytes", "By", "a JetStream stream's byte limit, 0 for none (polled)",
		func(u queue.Usage) float64 { return float64(max(u.MaxBytes, 0)) }},
	{"jetinfer.stream.max_messages", "", "a JetStream stream's message limit, 0 for none (polled)",
		func(u queue.Usage) float64 { return float64(max(u.MaxMsgs, 0)) }},
	{"jetinfer.stream.oldest", "s", "age of a JetStream stream's oldest message, 0 when empty (polled)",
		func(u queue.Usage) float64 {
			if u.First.IsZero() {
				return 0
			}
			return max(time.Since(u.First).Seconds(), 0)
		}},
	{"jetinfer.stream.max_age", "s", "how long a JetStream stream keeps a message, 0 for no limit (polled)",
		func(u queue.Usage) float64 { return u.MaxAge.Seconds() }},
}

func newStreamGauges(meter metric.Meter) (*streamGauges, error) {
	g := &streamGauges{usage: map[string]queue.Usage{}, queued: map[[2]string]int64{}}
	gauges := make([]metric.Float64ObservableGauge, len(streamGaugeDefs))
	observables := make([]metric.Observable, len(streamGaugeDefs), len(streamGaugeDefs)+1)
	queued, err := meter.Int64ObservableGauge("jetinfer.queue.pending",
		metric.WithDescription("jobs JOBS holds for a lane and task, waiting or in a worker's hands, across tenants (polled)"))
	if err != nil {
		return nil, err
	}
	for i, d := range streamGaugeDefs {
		opts := []metric.Float64ObservableGaugeOption{metric.WithDescription(d.desc)}
		if d.unit != "" {
			opts = append(opts, metric.WithUnit(d.unit))
		}
		gauge, err := meter.Float64ObservableGauge(d.name, opts...)
		if err != nil {
			return nil, err
		}
		gauges[i], observables[i] = gauge, gauge
	}
	sets := map[string]metric.ObserveOption{}
	for _, s := range polledStreams {
		sets[s] = metric.WithAttributeSet(attribute.NewSet(attribute.String("stream", s)))
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		for name, u := range g.usage {
			for i, d := range streamGaugeDefs {
				o.ObserveFloat64(gauges[i], d.value(u), sets[name])
			}
		}
		for k, n := range g.queued {
			o.ObserveInt64(queued, n, metric.WithAttributes(attribute.String("lane", k[0]), attribute.String("task", k[1])))
		}
		return nil
	}, append(observables, queued)...)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// pollStreams records the streams' usage in g every interval until ctx
// ends. A stream that cannot be read keeps its last figures.
func pollStreams(ctx context.Context, q streamSource, g *streamGauges, every time.Duration, log *slog.Logger) {
	poll(ctx, every, func() {
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
		pctx, cancel := context.WithTimeout(ctx, every)
		qs, err := q.QueuedByLane(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.DebugContext(ctx, "jobs queued by lane", slog.Any("error", err))
			}
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for k := range g.queued {
			g.queued[k] = 0
		}
		for _, lq := range qs {
			g.queued[[2]string{string(lq.Lane), lq.Task}] = int64(lq.Msgs)
		}
	})
}
