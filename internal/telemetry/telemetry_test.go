package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestHeaderCarrierRoundTrip(t *testing.T) {
	tp, err := NewTracerProvider(TraceConfig{Service: "test", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	h := InjectHeaders(ctx)
	if got := h["traceparent"]; len(got) != 1 || !strings.Contains(got[0], span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent %v does not carry trace %s", got, span.SpanContext().TraceID())
	}
	sc := ExtractHeaders(h)
	if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Fatalf("extracted %+v, want the span's context, remote", sc)
	}
	if InjectHeaders(context.Background()) != nil {
		t.Fatal("headers injected without a span")
	}
}

func TestHeaderCarrierGetIgnoresCase(t *testing.T) {
	for _, key := range []string{"traceparent", "Traceparent", "TRACEPARENT"} {
		sc := ExtractHeaders(map[string][]string{key: {parent}})
		if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("%s: trace id %s", key, sc.TraceID())
		}
	}
	if sc := ExtractHeaders(map[string][]string{"traceparent": {"garbage"}}); sc.IsValid() {
		t.Fatal("garbage traceparent gave a valid context")
	}
}

func TestSampleRatioIsChecked(t *testing.T) {
	if _, err := NewTracerProvider(TraceConfig{SampleRatio: 1.5}); err == nil {
		t.Fatal("ratio 1.5 accepted")
	}
}

// The middleware parents its server span on the request's traceparent,
// names it by route, hands the span's context to the handler, and counts
// the request by route pattern (never by raw path).
func TestHTTPMiddleware(t *testing.T) {
	mux := http.NewServeMux()
	var inner trace.SpanContext
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	h, rec, scrape := newMiddleware(t, 0, mux)
	req := httptest.NewRequest("GET", "/v1/jobs/abc123", nil)
	req.Header.Set("Traceparent", parent)
	h.ServeHTTP(httptest.NewRecorder(), req)

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /v1/jobs/{id}" || s.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("span %q parent %s trace %s", s.Name(), s.Parent().SpanID(), s.SpanContext().TraceID())
	}
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Fatal("handler did not see the server span in its context")
	}

	text := scrape()
	want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="418",http_route="GET /v1/jobs/{id}"} 1`
	if !strings.Contains(text, want) {
		t.Fatalf("scrape lacks %s:\n%s", want, grepLines(text, "http_"))
	}
	if strings.Contains(text, "abc123") {
		t.Fatal("a path id became a label value")
	}
}

// newMiddleware wraps next in HTTPMiddleware, tracing at sampleRatio into
// the recorder it returns. scrape reads the Prometheus exposition of the
// metrics the middleware records.
func newMiddleware(t *testing.T, sampleRatio float64, next http.Handler) (h http.Handler, rec *tracetest.SpanRecorder, scrape func() string) {
	t.Helper()
	rec = tracetest.NewSpanRecorder()
	tp, err := NewTracerProvider(TraceConfig{Service: "test", SampleRatio: sampleRatio}, rec)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	h, err = HTTPMiddleware(next, tp, m.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	scrape = func() string {
		t.Helper()
		srv := httptest.NewServer(m.Handler())
		defer srv.Close()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	return h, rec, scrape
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A root span linked to a sampled span is sampled even at ratio 0: a
// traced job's batch span is always recorded; an unlinked root is not.
func TestLinkedRootIsSampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp, err := NewTracerProvider(TraceConfig{SampleRatio: 0}, rec)
	if err != nil {
		t.Fatal(err)
	}
	sampled := ExtractHeaders(map[string][]string{"traceparent": {parent}})
	tr := tp.Tracer("t")
	_, linked := tr.Start(context.Background(), "batch", trace.WithLinks(trace.Link{SpanContext: sampled}))
	linked.End()
	_, alone := tr.Start(context.Background(), "alone")
	alone.End()
	unsampled := ExtractHeaders(map[string][]string{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}})
	_, linkedOff := tr.Start(context.Background(), "batch-off", trace.WithLinks(trace.Link{SpanContext: unsampled}))
	linkedOff.End()
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	if len(names) != 1 || names[0] != "batch" {
		t.Fatalf("recorded %v, want only the span linked to a sampled one", names)
	}
}

// Log lines written inside a span name its trace; others do not.
func TestLoggerAddsTraceContext(t *testing.T) {
	var buf strings.Builder
	log := NewLogger(&buf, "info", "json")
	sc := ExtractHeaders(map[string][]string{"traceparent": {parent}})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "in span", "k", 1)
	log.With("service", "x").InfoContext(context.Background(), "outside")
	log.Debug("below level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) || !strings.Contains(lines[0], `"span_id":"00f067aa0ba902b7"`) {
		t.Errorf("line in a span: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") || !strings.Contains(lines[1], `"service":"x"`) {
		t.Errorf("line outside a span: %s", lines[1])
	}
}
