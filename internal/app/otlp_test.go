package app_test

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP receiver built on the collector's own
// protobufs: it keeps every span and metric exported to it.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []receivedSpan
	metrics []receivedMetric
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

type receivedMetric struct {
	service string
	metric  *metricpb.Metric
}

// resourceService is the service.name among a resource's attributes.
func resourceService(attrs []*commonpb.KeyValue) string {
	for _, kv := range attrs {
		if kv.GetKey() == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// snapshot returns what the receiver holds now.
func (r *otlpReceiver) snapshot() ([]receivedSpan, []receivedMetric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...), append([]receivedMetric(nil), r.metrics...)
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	rcv := &otlpReceiver{}
	read := func(w http.ResponseWriter, r *http.Request, m proto.Message) bool {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return false
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err == nil {
			err = proto.Unmarshal(data, m)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		return true
	}
	reply := func(w http.ResponseWriter, m proto.Message) {
		data, _ := proto.Marshal(m)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(data)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		var req coltracepb.ExportTraceServiceRequest
		if !read(w, r, &req) {
			return
		}
		rcv.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			svc := resourceService(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					rcv.spans = append(rcv.spans, receivedSpan{svc, sp})
				}
			}
		}
		rcv.mu.Unlock()
		reply(w, &coltracepb.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		var req colmetricpb.ExportMetricsServiceRequest
		if !read(w, r, &req) {
			return
		}
		rcv.mu.Lock()
		for _, rm := range req.GetResourceMetrics() {
			svc := resourceService(rm.GetResource().GetAttributes())
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					rcv.metrics = append(rcv.metrics, receivedMetric{svc, m})
				}
			}
		}
		rcv.mu.Unlock()
		reply(w, &colmetricpb.ExportMetricsServiceResponse{})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return rcv, srv.URL
}

// With only the standard OTEL_* variables set, ingest and worker export a
// job's whole trace over OTLP to a real receiver: ingest's server span, its
// publish span under it, the worker's job span under publish (its context
// carried in the NATS message's headers), and ingest's reply span under the
// job span; and HTTP metrics arrive by OTLP too. OTEL_TRACES_SAMPLER is
// followed: the default --trace-sample-ratio would record 1% of new traces.
func TestOTLPExportsJobTrace(t *testing.T) {
	rcv, endpoint := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
	s := newStack(t)
	s.observed(nil, nil)
	r := s.do("POST", "/v1/jobs?wait=10s", s.token, map[string]any{"task": "sentiment", "input": map[string]any{"text": "Profits rose sharply."}})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}

	id := func(b []byte) string { return hex.EncodeToString(b) }
	deadline := time.Now().Add(15 * time.Second)
	for {
		spans, metrics := rcv.snapshot()
		byName := map[string]receivedSpan{}
		for _, sp := range spans {
			byName[sp.span.GetName()] = sp
		}
		server, publish, job, reply := byName["POST /v1/jobs"], byName["publish"], byName["job sentiment"], byName["reply"]
		var problems []string
		check := func(ok bool, what string) {
			if !ok {
				problems = append(problems, what)
			}
		}
		check(server.span != nil && server.service == "jetinfer-ingest" && server.span.GetKind() == tracepb.Span_SPAN_KIND_SERVER,
			"ingest's server span POST /v1/jobs")
		check(publish.span != nil && server.span != nil && publish.service == "jetinfer-ingest" &&
			id(publish.span.GetTraceId()) == id(server.span.GetTraceId()) && id(publish.span.GetParentSpanId()) == id(server.span.GetSpanId()),
			"publish under the server span")
		check(job.span != nil && publish.span != nil && job.service == "jetinfer-worker" &&
			id(job.span.GetTraceId()) == id(publish.span.GetTraceId()) && id(job.span.GetParentSpanId()) == id(publish.span.GetSpanId()),
			"the worker's job span under publish, across NATS")
		check(reply.span != nil && job.span != nil && reply.service == "jetinfer-ingest" &&
			id(reply.span.GetParentSpanId()) == id(job.span.GetSpanId()),
			"ingest's reply span under the job span")
		var httpMetric bool
		for _, m := range metrics {
			if m.service == "jetinfer-ingest" && m.metric.GetName() == "http.server.request.duration" {
				httpMetric = true
			}
		}
		check(httpMetric, "metric http.server.request.duration from ingest")
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, sp := range spans {
				t.Logf("%s: span %q trace %s id %s parent %s", sp.service, sp.span.GetName(), id(sp.span.GetTraceId()),
					id(sp.span.GetSpanId()), id(sp.span.GetParentSpanId()))
			}
			t.Fatalf("the receiver lacks: %s", strings.Join(problems, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
