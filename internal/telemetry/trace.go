package telemetry

import (
	"context"
	"fmt"
	"net/textproto"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator carries W3C trace context (traceparent, tracestate) and
// baggage across HTTP requests and NATS messages.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// TraceConfig configures tracing.
type TraceConfig struct {
	// Service names the process in its spans (service.name).
	Service string
	// SampleRatio is the share of new traces (those without a sampled
	// parent) that are recorded; a parent's decision is always followed.
	// 0 records only traces whose caller sampled them.
	SampleRatio float64
	// SamplerFromEnv leaves the sampler to OTEL_TRACES_SAMPLER (and
	// OTEL_TRACES_SAMPLER_ARG), as the SDK reads them, instead of
	// SampleRatio.
	SamplerFromEnv bool
	// Resource describes the process; nil means service.name = Service.
	Resource *resource.Resource
}

// NewTracerProvider returns a tracer provider that makes real spans (with
// trace and span ids that travel in headers and logs) and hands them to
// procs. With no processor, spans are built and dropped: trace context still
// propagates end to end, and an exporter can be added by the caller.
func NewTracerProvider(cfg TraceConfig, procs ...sdktrace.SpanProcessor) (*sdktrace.TracerProvider, error) {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("trace sample ratio %g is outside 0..1", cfg.SampleRatio)
	}
	res := cfg.Resource
	if res == nil {
		res = resource.NewSchemaless(attribute.String("service.name", cfg.Service))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if !cfg.SamplerFromEnv {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(linkSampler{sdktrace.TraceIDRatioBased(cfg.SampleRatio)})))
	}
	for _, p := range procs {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// linkSampler samples a root span that links to a sampled span (a batch
// span linked to the jobs it holds) and leaves other roots to ratio: a
// traced job's batch is always recorded.
type linkSampler struct{ ratio sdktrace.Sampler }

func (s linkSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	for _, l := range p.Links {
		if l.SpanContext.IsSampled() {
			return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample,
				Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
		}
	}
	return s.ratio.ShouldSample(p)
}

func (s linkSampler) Description() string { return "LinkSampler{" + s.ratio.Description() + "}" }

// HeaderCarrier adapts NATS message headers (map[string][]string, keys as
// sent) to propagation.TextMapCarrier. Get matches the key exactly first,
// then in its canonical MIME form and case-insensitively, because HTTP
// clients canonicalise "traceparent" to "Traceparent".
type HeaderCarrier map[string][]string

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key.
func (h HeaderCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	if v := h[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && len(k) == len(key) && equalFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces the values of key.
func (h HeaderCarrier) Set(key, value string) { h[key] = []string{value} }

// Keys lists the keys present.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

func equalFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// InjectHeaders returns message headers holding the trace context of ctx,
// or nil when ctx carries no valid span context.
func InjectHeaders(ctx context.Context) map[string][]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := HeaderCarrier{}
	Propagator.Inject(ctx, h)
	return h
}

// ExtractHeaders returns the remote span context carried by message headers
// (invalid when there is none).
func ExtractHeaders(h map[string][]string) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), HeaderCarrier(h)))
}
