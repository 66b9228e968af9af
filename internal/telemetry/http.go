package telemetry

import (
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPMiddleware starts a server span for every request, parented on the
// request's traceparent, and records http.server.request.duration as the
// OpenTelemetry HTTP semantic conventions name it, with http.route,
// http.request.method and http.response.status_code (Prometheus:
// http_server_request_duration_seconds{http_route,http_request_method,
// http_response_status_code}); its count is the number of requests. The
// route is the ServeMux pattern that served the request, so ids in paths
// never become label values. A method outside the standard set is recorded
// as "_OTHER", as the conventions prescribe, so that a client cannot mint a
// label value (or a span name) per request.
func HTTPMiddleware(next http.Handler, tp trace.TracerProvider, meter metric.Meter) (http.Handler, error) {
	tracer := tp.Tracer("github.com/jetinfer/jetinfer/internal/telemetry")
	duration, err := meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."), metric.WithExplicitBucketBoundaries(LatencyBuckets...))
	if err != nil {
		return nil, err
	}
	var sets sync.Map // routeKey → []metric.RecordOption
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		method := MethodLabel(r.Method)
		ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(rw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if span.IsRecording() {
			span.SetName(route)
			span.SetAttributes(attribute.String("http.request.method", method),
				attribute.String("http.route", route), attribute.Int("http.response.status_code", rw.status))
			if rw.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rw.status))
			}
		}
		span.End()
		key := routeKey{route: route, method: method, status: rw.status}
		v, ok := sets.Load(key)
		if !ok {
			v, _ = sets.LoadOrStore(key, []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("http.route", route), attribute.String("http.request.method", method),
				attribute.Int("http.response.status_code", rw.status)))})
		}
		duration.Record(r.Context(), time.Since(start).Seconds(), v.([]metric.RecordOption)...)
	}), nil
}

// OtherMethod is the value that stands for every method outside the
// standard set in metric attributes and span names (OpenTelemetry HTTP
// semantic conventions, http.request.method).
const OtherMethod = "_OTHER"

// MethodLabel returns method when it is one of the methods of RFC 9110 or
// PATCH (RFC 5789), and OtherMethod for anything else. Methods are case
// sensitive, so "get" is another method.
func MethodLabel(method string) string {
	if KnownMethod(method) {
		return method
	}
	return OtherMethod
}

// KnownMethod reports whether method is one of GET, HEAD, POST, PUT,
// PATCH, DELETE, CONNECT, OPTIONS and TRACE.
func KnownMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

type routeKey struct {
	route, method string
	status        int
}

// statusWriter remembers the status code written. It passes Flush through
// so that streaming responses keep streaming.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
