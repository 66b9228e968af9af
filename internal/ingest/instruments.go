package ingest

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// instruments are ingest's metrics and tracer. Exported (Prometheus):
// jetinfer_ingest_jobs_submitted_total{tenant,task,lane,status} with status
// queued (accepted and enqueued), duplicate (JetStream already had it) or
// rejected (the queue refused it), jetinfer_ingest_publish_seconds{lane},
// jetinfer_ingest_dlq_kept_total (replays whose job was queued again but
// whose dead letter could not be deleted), jetinfer_ingest_exports_active
// (result exports streaming now) and jetinfer_ingest_exports_refused_total
// (exports refused for their tenant's cap) and
// jetinfer_ingest_results_refused_total{tenant,scope} (backfill uploads
// refused for want of RESULTS room).
type instruments struct {
	tracer    trace.Tracer
	submitted metric.Int64Counter
	publish   metric.Float64Histogram
	// refusedSync counts synchronous calls refused before they were
	// queued, by task and code (no_workers, task_unavailable).
	refusedSync metric.Int64Counter
	dlqKept     metric.Int64Counter
	// exportsActive and exportsRefused carry no tenant label: a refusal's
	// tenant is in the audit log, and the label set stays bounded.
	exportsActive  metric.Int64UpDownCounter
	exportsRefused metric.Int64Counter
	// resultsRefusedN counts backfill uploads refused for want of RESULTS
	// room, by tenant and scope (tenant: its own share; stream: the
	// whole stream).
	resultsRefusedN metric.Int64Counter
	sets            sync.Map // submitKey → []metric.AddOption; job.Lane → []metric.RecordOption
}

type submitKey struct {
	tenant, task string
	lane         job.Lane
	status       string
}

func newInstruments(meter metric.Meter, tp trace.TracerProvider) *instruments {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	in := &instruments{tracer: tp.Tracer("github.com/jetinfer/jetinfer/internal/ingest")}
	var err error
	in.submitted = counter(meter, "jetinfer.ingest.jobs.submitted",
		"jobs submitted, by tenant, task, lane and status (queued, duplicate, rejected)")
	in.publish, err = meter.Float64Histogram("jetinfer.ingest.publish", metric.WithUnit("s"),
		metric.WithDescription("time for JetStream to confirm a job's publish, by lane"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	if err != nil {
		in.publish, _ = noop.Meter{}.Float64Histogram("")
	}
	in.refusedSync = counter(meter, "jetinfer.ingest.sync_refused",
		"synchronous calls refused before they were queued, by task and code (no_workers, task_unavailable)")
	in.dlqKept = counter(meter, "jetinfer.ingest.dlq.kept",
		"dead-letter replays whose job was queued again but whose dead letter could not be deleted")
	in.exportsActive, err = meter.Int64UpDownCounter("jetinfer.ingest.exports.active",
		metric.WithDescription("result exports streaming from this instance now"))
	if err != nil {
		in.exportsActive, _ = noop.Meter{}.Int64UpDownCounter("")
	}
	in.exportsRefused = counter(meter, "jetinfer.ingest.exports.refused",
		"result exports refused because their tenant ran its limit of concurrent exports")
	in.resultsRefusedN = counter(meter, "jetinfer.ingest.results_refused",
		"backfill uploads refused for want of RESULTS room, by tenant and scope (tenant: over its share, 429 results_share_full; stream: RESULTS 90% full, 503 results_full)")
	return in
}

// resultsRefused counts a backfill upload of tenant refused for want of
// RESULTS room; scope is "tenant" (its share) or "stream".
func (in *instruments) resultsRefused(ctx context.Context, tenant, scope string) {
	in.resultsRefusedN.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("tenant", tenant), attribute.String("scope", scope))))
}

// counter is meter's counter name, or one that records nothing where the
// meter refuses it (an invalid name): metrics never stop ingest.
func counter(meter metric.Meter, name, description string) metric.Int64Counter {
	c, err := meter.Int64Counter(name, metric.WithDescription(description))
	if err != nil {
		c, _ = noop.Meter{}.Int64Counter("")
	}
	return c
}

// refused counts a synchronous call of task refused with code.
func (in *instruments) refused(ctx context.Context, task, code string) {
	in.refusedSync.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("task", task), attribute.String("code", code))))
}

func (in *instruments) set(k submitKey) []metric.AddOption {
	if v, ok := in.sets.Load(k); ok {
		return v.([]metric.AddOption)
	}
	v, _ := in.sets.LoadOrStore(k, []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("tenant", k.tenant),
		attribute.String("task", k.task), attribute.String("lane", string(k.lane)), attribute.String("status", k.status)))})
	return v.([]metric.AddOption)
}

func (in *instruments) laneSet(l job.Lane) []metric.RecordOption {
	if v, ok := in.sets.Load(l); ok {
		return v.([]metric.RecordOption)
	}
	v, _ := in.sets.LoadOrStore(l, []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("lane", string(l))))})
	return v.([]metric.RecordOption)
}

// traceReply records the result's arrival as a span under the worker's job
// span, whose context the reply carries: the trace goes from the request
// through the worker and back to this instance.
func (s *Server) traceReply(ctx context.Context, rep job.Reply) {
	parent := telemetry.ExtractHeaders(rep.Header)
	if !parent.IsValid() {
		return
	}
	_, span := s.ins.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "reply",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(rep.Arrived))
	span.End()
}

// publish enqueues j inside a producer span whose context travels in the
// message's headers (W3C traceparent), times the publish and counts the job.
// Without a span in the request's context, the request's own traceparent
// is passed through.
func (s *Server) publish(r *http.Request, j *job.Job, reply string) (bool, error) {
	ctx, span := s.ins.tracer.Start(r.Context(), "publish", trace.WithSpanKind(trace.SpanKindProducer))
	hdr := telemetry.InjectHeaders(ctx)
	if hdr == nil {
		hdr = traceHeaders(r)
	}
	t0 := time.Now()
	dup, err := s.pub.Publish(ctx, j, reply, hdr)
	s.ins.publish.Record(ctx, time.Since(t0).Seconds(), s.ins.laneSet(j.Lane)...)
	status := "queued"
	switch {
	case err != nil:
		status = "rejected"
		span.SetStatus(codes.Error, err.Error())
	case dup:
		status = "duplicate"
	}
	s.ins.submitted.Add(ctx, 1, s.ins.set(submitKey{tenant: j.Tenant, task: j.Task, lane: j.Lane, status: status})...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.destination.name", job.SubjectOf(j)),
			attribute.String("jetinfer.job.id", j.ID), attribute.String("jetinfer.status", status))
	}
	span.End()
	return dup, err
}
