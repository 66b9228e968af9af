package worker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

const tracerName = "github.com/jetinfer/jetinfer/internal/worker"

// startJobSpan starts the span of one delivery of a job, a child of the
// span context its message carries (ingest's request span), so that the
// job's trace goes on in the worker. The remote parent is kept on the item
// for the batch span's links (invalid when the message carried none).
func (pl *pipeline) startJobSpan(ctx context.Context, it *item) {
	if !pl.w.traced {
		return
	}
	parent := telemetry.ExtractHeaders(it.msg.Header)
	it.parent = parent
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	_, it.span = pl.w.tracer.Start(ctx, pl.spanNames().job, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(it.received))
	if it.span.IsRecording() { // attributes cost allocations: only for sampled jobs
		it.span.SetAttributes(
			attribute.String("jetinfer.job.id", it.msg.Job.ID),
			attribute.String("jetinfer.task", it.msg.Job.Task),
			attribute.String("jetinfer.lane", string(it.msg.Job.Lane)),
			attribute.Int("jetinfer.attempt", it.msg.Attempt))
	}
}

// replyHeader carries the job span's context in the reply, so that the
// caller's side of the trace goes on from it; nil when the job is not
// sampled.
func replyHeader(it *item) map[string][]string {
	if it.span == nil || !it.span.SpanContext().IsSampled() {
		return nil
	}
	return telemetry.InjectHeaders(trace.ContextWithSpanContext(context.Background(), it.span.SpanContext()))
}

// spanNames are a pipeline's span names, built once.
type spanNames struct{ job, batch string }

func (pl *pipeline) spanNames() spanNames {
	pl.namesOnce.Do(func() {
		pl.names = spanNames{job: "job " + pl.model.Task(), batch: "batch " + pl.model.Task()}
	})
	return pl.names
}

// endJobSpan ends a job's span with its outcome.
func endJobSpan(it *item, status job.Status) {
	if it.span == nil {
		return
	}
	if it.span.IsRecording() {
		it.span.SetAttributes(attribute.String("jetinfer.status", string(status)))
		if it.err != nil {
			it.span.SetStatus(codes.Error, it.err.Code)
		}
	}
	it.span.End()
	it.span = nil
}

// startBatchSpan starts the span of one batch, linked to the remote parent
// of every job in it: a batch serves many traces, so it belongs to none and
// points at all of them.
func (pl *pipeline) startBatchSpan(ctx context.Context, batch []*item) (context.Context, trace.Span) {
	if !pl.w.traced {
		return ctx, nil
	}
	var links []trace.Link
	for _, it := range batch {
		if it.parent.IsSampled() { // a link to an unsampled trace leads nowhere
			links = append(links, trace.Link{SpanContext: it.parent})
		}
	}
	ctx, span := pl.w.tracer.Start(ctx, pl.spanNames().batch, trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("jetinfer.task", pl.model.Task()), attribute.Int("jetinfer.batch.size", len(batch)))
	}
	return ctx, span
}

func endSpan(s trace.Span) {
	if s != nil {
		s.End()
	}
}

// doneAt is when the job's work ended: its model call returned, or, for a
// job that never ran, when it was received.
func (it *item) doneAt() time.Time {
	if !it.inferred.IsZero() {
		return it.inferred
	}
	return it.received
}
