package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gopkg.in/yaml.v3"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// observed starts ingest and a sentiment worker that record their spans and
// returns the ingest URL and the worker's HTTP address.
func (s *stack) observed(ingestSpans, workerSpans *tracetest.SpanRecorder) (workerURL string) {
	t := s.t
	// A nil *SpanRecorder in the Spans interface would be a non-nil
	// processor that panics on the first span.
	var ingestProc, workerProc sdktrace.SpanProcessor
	if ingestSpans != nil {
		ingestProc = ingestSpans
	}
	if workerSpans != nil {
		workerProc = workerSpans
	}
	var icfg config.Ingest
	defaults(&icfg)
	icfg.NATS.URL, icfg.Redis.URL = s.nats.URL(), s.redis.URL()
	icfg.Addr, icfg.Auth.HS256SecretFile, icfg.Log.Level = "127.0.0.1:0", s.secret, "warn"
	icfg.MetricsPoll = 50 * time.Millisecond
	icfg.OpsAddr = "127.0.0.1:0"
	addr, opsAddr := make(chan string, 1), make(chan string, 1)
	s.run("ingest", func(ctx context.Context) error {
		return app.RunIngest(ctx, icfg, testLogger(t), app.Hooks{Listening: func(a string) { addr <- a },
			OpsListening: func(a string) { opsAddr <- a }, Spans: ingestProc})
	})
	s.url = "http://" + <-addr
	s.opsURL = "http://" + <-opsAddr

	var wcfg config.Worker
	defaults(&wcfg)
	wcfg.NATS.URL, wcfg.Redis.URL = s.nats.URL(), s.redis.URL()
	wcfg.ORTLib, wcfg.Models = testenv.ORTLib(t), testenv.ModelDir(t, "sentiment")
	wcfg.HTTPAddr, wcfg.IntraOpThreads, wcfg.Log.Level = "127.0.0.1:0", 1, "warn"
	wcfg.MetricsPoll = 50 * time.Millisecond
	waddr := make(chan string, 1)
	ready := make(chan struct{})
	s.run("worker", func(ctx context.Context) error {
		return app.RunWorker(ctx, wcfg, testLogger(t), app.Hooks{Listening: func(a string) { waddr <- a },
			Ready: func() { close(ready) }, Spans: workerProc})
	})
	workerURL = "http://" + <-waddr
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not become ready")
	}
	return workerURL
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// value returns the value of the series whose line starts with prefix
// (metric name and labels), failing when there is none.
func value(t *testing.T, text, prefix string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, prefix)), 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return v
		}
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(strings.SplitN(prefix, "{", 2)[0]) + `.*$`)
	t.Fatalf("no series %s; have:\n%s", prefix, strings.Join(re.FindAllString(text, -1), "\n"))
	return 0
}

// After real jobs, ingest and worker expose the series the dashboard and
// autoscaler read, with values that match what happened.
func TestMetricsAfterRealJobs(t *testing.T) {
	s := newStack(t)
	workerURL := s.observed(nil, nil)
	const n = 6
	for i := range n {
		lane := "interactive"
		if i%2 == 1 {
			lane = "bulk"
		}
		r := s.do("POST", "/v1/jobs?wait=10s", s.token, map[string]any{"task": "sentiment", "lane": lane,
			"input": map[string]any{"text": "Shares surged after record profit, number " + strconv.Itoa(i)}})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		tm := m["timings_ms"].(map[string]any)
		if tm["delivery"] == nil || tm["total"] == nil {
			t.Fatalf("record has no delivery or total timing: %v", m)
		}
		for stage, v := range tm { // whole microseconds, not float sums
			if f := v.(float64) * 1000; math.Abs(f-math.Round(f)) > 1e-6 {
				t.Errorf("timing %s is %v ms", stage, v)
			}
		}
	}
	in := scrape(t, s.opsURL)
	for _, lane := range []string{"interactive", "bulk"} {
		if v := value(t, in, `jetinfer_ingest_jobs_submitted_total{lane="`+lane+`",status="queued",task="sentiment",tenant="acme"}`); v != n/2 {
			t.Errorf("%s submitted %v, want %d", lane, v, n/2)
		}
	}
	if v := value(t, in, `jetinfer_ingest_publish_seconds_count{lane="interactive"}`); v != n/2 {
		t.Errorf("publish count %v", v)
	}
	if v := value(t, in, `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="200",http_route="POST /v1/jobs"}`); v != n {
		t.Errorf("requests %v, want %d", v, n)
	}

	// The worker acks after the reply is sent: wait until it counted all.
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = scrape(t, workerURL)
		if strings.Contains(out, `jetinfer_worker_jobs_finished_total{lane="bulk",model_version="afinn-165-fin-1",status="succeeded",task="sentiment",tenant="acme"} 3`) &&
			strings.Contains(out, `jetinfer_consumer_pending{lane="bulk",task="sentiment"} 0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker never counted its jobs:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := value(t, out, `jetinfer_worker_jobs_finished_total{lane="interactive",model_version="afinn-165-fin-1",status="succeeded",task="sentiment",tenant="acme"}`); v != n/2 {
		t.Errorf("interactive finished %v", v)
	}
	for _, stage := range []string{"queue", "batch", "tokenize", "infer", "deliver", "total"} {
		if v := value(t, out, `jetinfer_worker_job_stage_seconds_count{lane="interactive",model_version="afinn-165-fin-1",stage="`+stage+`",task="sentiment"}`); v != n/2 {
			t.Errorf("stage %s count %v, want %d", stage, v, n/2)
		}
	}
	total := value(t, out, `jetinfer_worker_job_stage_seconds_sum{lane="interactive",model_version="afinn-165-fin-1",stage="total",task="sentiment"}`)
	infer := value(t, out, `jetinfer_worker_job_stage_seconds_sum{lane="interactive",model_version="afinn-165-fin-1",stage="infer",task="sentiment"}`)
	if !(infer > 0 && total >= infer && total < 30) {
		t.Errorf("total %vs, infer %vs: want 0 < infer ≤ total", total, infer)
	}
	batches := value(t, out, `jetinfer_worker_batches_total`)
	docs := value(t, out, `jetinfer_worker_batch_size_sum{model_version="afinn-165-fin-1",task="sentiment"}`)
	if batches < 1 || docs != n || value(t, out, `jetinfer_worker_batch_size_count{model_version="afinn-165-fin-1",task="sentiment"}`) != batches {
		t.Errorf("batches %v, documents in batches %v (want %d)", batches, docs, n)
	}
	tokens, padded := value(t, out, `jetinfer_worker_tokens_total`), value(t, out, `jetinfer_worker_padded_tokens_total`)
	if tokens < n || padded < tokens {
		t.Errorf("tokens %v padded %v", tokens, padded)
	}
	if v := value(t, out, `jetinfer_worker_batch_padding_ratio_count{model_version="afinn-165-fin-1",task="sentiment"}`); v != batches {
		t.Errorf("padding ratio observations %v, want %v", v, batches)
	}
	value(t, out, `jetinfer_consumer_ack_pending{lane="interactive",task="sentiment"}`)
	for _, lane := range []string{"interactive", "bulk"} {
		if v := value(t, out, `jetinfer_worker_redeliveries_total{lane="`+lane+`",model_version="afinn-165-fin-1",task="sentiment"}`); v != 0 {
			t.Errorf("%s redeliveries %v where there were none", lane, v)
		}
		if v := value(t, out, `jetinfer_worker_dead_letters_total{lane="`+lane+`",model_version="afinn-165-fin-1",task="sentiment"}`); v != 0 {
			t.Errorf("%s dead letters %v where there were none", lane, v)
		}
	}

	// Ingest exports how full the streams are: a job no worker serves stays
	// in JOBS and shows up within a poll.
	q := s.announce("unserved")
	if _, err := q.Publish(context.Background(), &job.Job{ID: "waiting", Tenant: "acme", Task: "unserved", Lane: job.LaneBulk,
		Input: job.Input{Text: "Nobody reads this yet."}, Created: time.Now().UTC()}, "", nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		in = scrape(t, s.opsURL)
		// The autoscaler's signal, polled after the streams, counts the job
		// on its tenant's subject, whose consumer no worker has created.
		if strings.Contains(in, `jetinfer_stream_messages{stream="JOBS"} 1`+"\n") &&
			strings.Contains(in, `jetinfer_queue_pending{lane="bulk",task="unserved"} 1`+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JOBS holds one job, ingest does not say so:\n%s", in)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := value(t, in, `jetinfer_stream_bytes{stream="JOBS"}`); v < 20 {
		t.Errorf("JOBS bytes %v for one job", v)
	}
	if v := value(t, in, `jetinfer_stream_max_messages{stream="JOBS"}`); v != float64(1_000_000) {
		t.Errorf("JOBS max messages %v, want the default --jobs-max-msgs", v)
	}
	if v := value(t, in, `jetinfer_stream_max_bytes{stream="RESULTS"}`); v != float64(4<<30) {
		t.Errorf("RESULTS max bytes %v, want the default --results-max-bytes", v)
	}
	if v := value(t, in, `jetinfer_stream_max_age_seconds{stream="RESULTS"}`); v != (7 * 24 * time.Hour).Seconds() {
		t.Errorf("RESULTS max age %vs, want the default --results-max-age", v)
	}
	if v := value(t, in, `jetinfer_stream_oldest_seconds{stream="JOBS"}`); v <= 0 || v > 60 {
		t.Errorf("JOBS oldest message %vs old, want the job published above", v)
	}
	if v := value(t, in, `jetinfer_stream_oldest_seconds{stream="DLQ"}`); v != 0 {
		t.Errorf("empty DLQ's oldest message %vs old, want 0", v)
	}
	for _, st := range []string{"RESULTS", "DLQ"} {
		if v := value(t, in, `jetinfer_stream_messages{stream="`+st+`"}`); v != 0 {
			t.Errorf("%s messages %v, want 0", st, v)
		}
	}
	checkDashboard(t, in+out)
}

// The trace id of a request's traceparent reaches the worker: its job span
// is a child of ingest's publish span in the same trace, the batch span
// links to it, and the result comes back into the trace: ingest's reply span
// is a child of the worker's job span.
func TestTraceFollowsJobIntoWorkerBatch(t *testing.T) {
	s := newStack(t)
	ingestSpans, workerSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	s.observed(ingestSpans, workerSpans)
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest("POST", s.url+"/v1/jobs?wait=10s",
		strings.NewReader(`{"task":"sentiment","input":{"text":"Profits rose sharply."}}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}

	var publishID string
	for _, sp := range ingestSpans.Ended() {
		if sp.Name() == "publish" {
			if sp.SpanContext().TraceID().String() != traceID {
				t.Fatalf("publish span in trace %s", sp.SpanContext().TraceID())
			}
			publishID = sp.SpanContext().SpanID().String()
		}
	}
	if publishID == "" {
		t.Fatal("ingest made no publish span")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var jobOK, batchOK, replyOK bool
		for _, sp := range workerSpans.Ended() {
			switch {
			case sp.Name() == "job sentiment":
				jobOK = sp.SpanContext().TraceID().String() == traceID && sp.Parent().SpanID().String() == publishID
				for _, in := range ingestSpans.Ended() {
					if in.Name() == "reply" && in.SpanContext().TraceID() == sp.SpanContext().TraceID() &&
						in.Parent().SpanID() == sp.SpanContext().SpanID() && in.SpanKind() == trace.SpanKindConsumer {
						replyOK = true
					}
				}
			case sp.Name() == "batch sentiment":
				for _, l := range sp.Links() {
					if l.SpanContext.TraceID().String() == traceID && l.SpanContext.SpanID().String() == publishID {
						batchOK = true
					}
				}
			}
		}
		if jobOK && batchOK && replyOK {
			return
		}
		if time.Now().After(deadline) {
			for _, sp := range workerSpans.Ended() {
				t.Logf("span %q trace %s parent %s links %v", sp.Name(), sp.SpanContext().TraceID(), sp.Parent().SpanID(), sp.Links())
			}
			t.Fatalf("job span in the trace under publish: %v; batch span linked to it: %v; ingest's reply span under the job span: %v", jobOK, batchOK, replyOK)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkDashboard fails when the Grafana dashboard or an alerting rule
// queries a jetinfer metric that ingest and worker do not export.
func checkDashboard(t *testing.T, scraped string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "grafana", "jetinfer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	data, err = os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(scraped, "\n") {
		if name, _, ok := strings.Cut(l, "{"); ok && !strings.HasPrefix(l, "#") {
			have[name] = true
		} else if f := strings.Fields(l); len(f) == 2 && !strings.HasPrefix(l, "#") {
			have[f[0]] = true
		}
	}
	metricRE := regexp.MustCompile(`jetinfer_[a-z_]+|http_server_[a-z_]+`)
	check := func(what, expr string) int {
		n := 0
		for _, m := range metricRE.FindAllString(expr, -1) {
			n++
			// Webhook series have tenant and endpoint labels, so they
			// exist only once a delivery was tried; no job here has one.
			if strings.HasPrefix(m, "jetinfer_webhook_") {
				continue
			}
			if !have[m] {
				t.Errorf("%s queries %s, which is not exported", what, m)
			}
		}
		return n
	}
	queries, alerts := 0, 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries += check(fmt.Sprintf("panel %q", p.Title), tg.Expr)
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts += check("alert "+r.Alert, r.Expr)
		}
	}
	if queries < 10 || alerts < 5 {
		t.Fatalf("dashboard queries only %d jetinfer series, alerting rules %d", queries, alerts)
	}
}
