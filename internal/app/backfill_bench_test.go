package app_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// benchStack is ingest and one worker (default settings) on real NATS and
// Redis, for benchmarks. The worker serves the sentiment model unless
// JETINFER_LANES_MODEL names another model directory.
type benchStack struct {
	url, bfToken, jobToken string
	task                   string // the task the worker serves
	signer                 *auth.Signer
}

func startBenchStack(b *testing.B) *benchStack {
	b.Helper()
	n, r := testenv.StartNATS(b), testenv.StartRedis(b)
	secret := filepath.Join(b.TempDir(), "dev.secret")
	if err := os.WriteFile(secret, []byte(devSecret), 0o600); err != nil {
		b.Fatal(err)
	}
	def := func(cfg interface{ RegisterFlags(*flag.FlagSet) }) {
		fs := flag.NewFlagSet("bench", flag.PanicOnError)
		cfg.RegisterFlags(fs)
		_ = fs.Parse(nil)
	}
	var ing config.Ingest
	def(&ing)
	ing.NATS.URL, ing.Redis.URL, ing.Addr, ing.Auth.HS256SecretFile, ing.Tenants = n.URL(), r.URL(), "127.0.0.1:0", secret, false
	ing.OpsAddr = "127.0.0.1:0"
	var wk config.Worker
	def(&wk)
	wk.NATS.URL, wk.Redis.URL, wk.HTTPAddr = n.URL(), r.URL(), "127.0.0.1:0"
	model := cmp.Or(os.Getenv("JETINFER_LANES_MODEL"), "sentiment")
	wk.ORTLib, wk.Models = testenv.ORTLib(b), testenv.ModelDir(b, model)
	if d, err := time.ParseDuration(os.Getenv("JETINFER_BULK_PAUSE")); err == nil {
		wk.BulkPause = d
	}
	if d, err := time.ParseDuration(os.Getenv("JETINFER_LATENCY_BUDGET")); err == nil {
		wk.LatencyBudget = d
	}
	if d, err := time.ParseDuration(os.Getenv("JETINFER_INFER_WAIT")); err == nil {
		ing.InferWait = d
	}
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	addr := make(chan string, 1)
	go func() { done <- app.RunIngest(ctx, ing, quiet, app.Hooks{Listening: func(a string) { addr <- a }}) }()
	s := &benchStack{task: modelTask(b, wk.Models)}
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-done:
		b.Fatalf("ingest: %v", err)
	}
	ready := make(chan struct{})
	go func() { done <- app.RunWorker(ctx, wk, quiet, app.Hooks{Ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("worker: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		for range 2 {
			<-done
		}
	})
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		b.Fatal(err)
	}
	s.signer = signer
	s.bfToken, s.jobToken = s.token(b, "acme", auth.ScopeBackfillsWrite), s.token(b, "acme", auth.ScopeJobsWrite)
	return s
}

// modelTask reads the task a model directory serves from its jetinfer.json.
func modelTask(b *testing.B, dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "jetinfer.json"))
	if err != nil {
		b.Fatal(err)
	}
	var m struct{ Task string }
	if err := json.Unmarshal(data, &m); err != nil || m.Task == "" {
		b.Fatalf("%s: no task in jetinfer.json (%v)", dir, err)
	}
	return m.Task
}

// token issues a token of tenant with scope.
func (s *benchStack) token(b *testing.B, tenant, scope string) string {
	b.Helper()
	tok, _, err := s.signer.IssueFor(auth.TokenRequest{Tenant: tenant, Scopes: []string{scope}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// as is the stack as tenant's backfill client.
func (s *benchStack) as(b *testing.B, tenant string) *benchStack {
	c := *s
	c.bfToken = s.token(b, tenant, auth.ScopeBackfillsWrite)
	return &c
}

func (s *benchStack) call(b *testing.B, method, path, token, contentType string, body []byte, out any) {
	b.Helper()
	if code := s.try(b, method, path, token, contentType, body, out); code/100 != 2 {
		b.Fatalf("%s %s: status %d", method, path, code) // try fails on the others
	}
}

// try is call that returns a 504 (a sync call's wait ran out) instead of
// failing on it.
func (s *benchStack) try(b *testing.B, method, path, token, contentType string, body []byte, out any) int {
	b.Helper()
	req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusGatewayTimeout {
		return resp.StatusCode
	}
	if resp.StatusCode/100 != 2 {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			b.Fatal(err)
		}
	}
	return resp.StatusCode
}

// benchArchive returns n documents of real news sentences, each text
// distinct except that one in ten repeats an earlier story (as wire
// stories repeat across archives).
func benchArchive(b *testing.B, n int) [][]byte {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "infer", "testdata", "news.txt"))
	if err != nil {
		b.Fatal(err)
	}
	news := strings.Split(strings.TrimSpace(string(data)), "\n")
	lines := make([][]byte, n)
	texts := make([]string, n)
	for i := range n {
		texts[i] = news[i%len(news)] + " " + news[(i/len(news))%len(news)] + " Ref " + strconv.Itoa(i) + "."
		if i%10 == 9 && i >= 1000 {
			texts[i] = texts[i-1000]
		}
		lines[i], _ = json.Marshal(map[string]string{"id": "doc-" + strconv.Itoa(i), "text": texts[i]})
	}
	return lines
}

type benchProgress struct {
	ID, State                                           string
	Submitted, Succeeded, Failed, Dead, Reused, Pending int64
}

// upload sends the documents in chunks of 5,000 and returns the time it took.
func (s *benchStack) upload(b *testing.B, id string, docs [][]byte) time.Duration {
	t0 := time.Now()
	for start := 0; start < len(docs); start += 5000 {
		chunk := bytes.Join(docs[start:min(start+5000, len(docs))], []byte("\n"))
		var a struct{ Accepted int64 }
		s.call(b, "POST", "/v1/backfills/"+id+"/documents", s.bfToken, "application/x-ndjson", chunk, &a)
		if a.Accepted != int64(min(5000, len(docs)-start)) {
			b.Fatalf("chunk at %d: %d accepted", start, a.Accepted)
		}
	}
	return time.Since(t0)
}

func (s *benchStack) create(b *testing.B) string {
	var p benchProgress
	s.call(b, "POST", "/v1/backfills", s.bfToken, "application/json", []byte(`{"task":"`+s.task+`","name":"bench"}`), &p)
	return p.ID
}

func (s *benchStack) progress(b *testing.B, id string) benchProgress {
	var p benchProgress
	s.call(b, "GET", "/v1/backfills/"+id, s.bfToken, "", nil, &p)
	return p
}

// BenchmarkBackfill runs a backfill of JETINFER_BACKFILL_DOCS documents
// (default 100,000) through the real stack: upload, seal, completion,
// export. It fails unless every document is accounted for
// (succeeded + failed + dead = submitted) and the export holds exactly one
// line per document. Run it with `make backfill-bench`.
func BenchmarkBackfill(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("JETINFER_BACKFILL_DOCS")); err == nil && v > 0 {
		n = v
	}
	s := startBenchStack(b)
	docs := benchArchive(b, n)
	for b.Loop() {
		t0 := time.Now()
		id := s.create(b)
		up := s.upload(b, id, docs)
		s.call(b, "POST", "/v1/backfills/"+id+"/seal", s.bfToken, "", nil, nil)
		var p benchProgress
		for {
			if p = s.progress(b, id); p.State == "completed" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		total := time.Since(t0)
		if p.Submitted != int64(n) || p.Succeeded+p.Failed+p.Dead != p.Submitted || p.Pending != 0 {
			b.Fatalf("not accounted for: %+v", p)
		}
		t1 := time.Now()
		req, _ := http.NewRequest("GET", s.url+"/v1/backfills/"+id+"/results", nil)
		req.Header.Set("Authorization", "Bearer "+s.bfToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		ids := make(map[string]struct{}, n)
		lines := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				b.Fatal(err)
			}
			ids[l.ID] = struct{}{}
			lines++
		}
		resp.Body.Close()
		export := time.Since(t1)
		if lines != n || len(ids) != n {
			b.Fatalf("export: %d lines, %d distinct ids, want %d", lines, len(ids), n)
		}
		// The same results again as jetinferctl backfill run exports them:
		// steps of 10,000 after the last step's sequence, each purged once
		// read (the client's file write and sync are not in it).
		t2 := time.Now()
		stepped := s.steppedExport(b, id, 10_000)
		steppedTime := time.Since(t2)
		if stepped != n {
			b.Fatalf("stepped export: %d lines, want %d", stepped, n)
		}
		if again := s.steppedExport(b, id, 10_000); again != 0 {
			b.Fatalf("after the purges the results hold %d lines", again)
		}
		b.ReportMetric(float64(n)/up.Seconds(), "upload_docs/s")
		b.ReportMetric(float64(n)/total.Seconds(), "end_to_end_docs/s")
		b.ReportMetric(float64(n)/export.Seconds(), "export_lines/s")
		b.ReportMetric(float64(n)/steppedTime.Seconds(), "stepped_export_lines/s")
		b.ReportMetric(float64(p.Reused), "reused")
		b.ReportMetric(float64(p.Failed+p.Dead), "failed+dead")
		b.Logf("%d docs: upload %s, completed after %s, export %s, stepped export with purges %s; %+v", n, up.Round(time.Millisecond),
			total.Round(time.Millisecond), export.Round(time.Millisecond), steppedTime.Round(time.Millisecond), p)
	}
}

// steppedExport reads a backfill's results in steps of step, each after the
// sequence the previous one's trailer named, and purges each step once read.
// It returns the lines read.
func (s *benchStack) steppedExport(b *testing.B, id string, step int) int {
	lines := 0
	after := "0"
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/backfills/%s/results?follow=false&after=%s&limit=%d", s.url, id, after, step), nil)
		req.Header.Set("Authorization", "Bearer "+s.bfToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			n++
		}
		resp.Body.Close()
		seq := resp.Trailer.Get(ingest.ResultsSeqTrailer)
		if sc.Err() != nil || seq == "" {
			b.Fatalf("export step after %s: %v, trailer %q", after, sc.Err(), seq)
		}
		lines += n
		if seq != after {
			s.call(b, "DELETE", "/v1/backfills/"+id+"/results?through="+seq, s.bfToken, "", nil, nil)
		}
		after = seq
		if n < step {
			return lines
		}
	}
}

// BenchmarkLanesP99 measures the p99 latency of synchronous calls
// (POST /v1/infer/sentiment, one at a time) with the worker idle and while
// it runs a backfill at full speed on the backfill lane, and the backfill's rate
// meanwhile. The goal is a ratio of at most 2. The idle and busy phases
// alternate over several rounds (each busy phase a fresh backfill, canceled
// and drained after it), so that a noisy machine weighs on both alike.
// JETINFER_BULK_PAUSE overrides the worker's --bulk-pause (0 turns the
// pause off), JETINFER_LATENCY_BUDGET its --latency-budget (0 turns the cap
// off), JETINFER_LANES_MODEL the model (a directory under the models dir,
// default sentiment), JETINFER_LANES_ROUNDS the rounds (default 5),
// JETINFER_LANES_CALLS the calls a phase (default 200), JETINFER_LANES_EVERY
// the time from one call's start to the next's (default 0: back to back, as
// a user who waits for each answer) and JETINFER_INFER_WAIT ingest's
// --infer-wait: a call that gets 504 counts at the time it took, and the
// timeouts are reported. `make lanes-bench` runs it with the cap on and off,
// alternately.
func BenchmarkLanesP99(b *testing.B) {
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	rounds, calls := envInt("JETINFER_LANES_ROUNDS", 5), envInt("JETINFER_LANES_CALLS", 200)
	every, _ := time.ParseDuration(os.Getenv("JETINFER_LANES_EVERY"))
	var timeouts int
	s := startBenchStack(b)
	docs := benchArchive(b, 40_000)
	body := []byte(`{"text":"Shares of the refiner jumped after it raised its dividend and reported record profit."}`)
	measure := func(lat []time.Duration, while func() bool) []time.Duration {
		for n := 0; n < calls && while(); n++ {
			t0 := time.Now()
			var rec struct {
				Timings map[string]float64 `json:"timings_ms"`
			}
			if s.try(b, "POST", "/v1/infer/"+s.task, s.jobToken, "application/json", body, &rec) == http.StatusGatewayTimeout {
				timeouts++
			}
			d := time.Since(t0)
			lat = append(lat, d)
			if os.Getenv("JETINFER_LANES_TRACE") != "" && d > 50*time.Millisecond {
				b.Logf("slow call %s: %v", d.Round(time.Millisecond), rec.Timings)
			}
			time.Sleep(time.Until(t0.Add(every)))
		}
		return lat
	}
	p := func(lat []time.Duration, q float64) float64 {
		lat = slices.Clone(lat)
		slices.Sort(lat)
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	for b.Loop() {
		var idle, busy []time.Duration
		var bulkDocs int64
		var busyFor time.Duration
		for range rounds {
			idle = measure(idle, func() bool { return true })
			id := s.create(b)
			s.upload(b, id, docs)
			start := s.progress(b, id)
			t0 := time.Now()
			i, before := 0, len(busy)
			busy = measure(busy, func() bool {
				i++
				return i%20 != 0 || s.progress(b, id).Pending > 0
			})
			end := s.progress(b, id)
			busyFor += time.Since(t0)
			bulkDocs += end.Succeeded - start.Succeeded
			if end.Pending == 0 || len(busy)-before < calls {
				b.Fatalf("the backfill ran out during the measurement (%d calls): start %+v end %+v", len(busy)-before, start, end)
			}
			s.call(b, "DELETE", "/v1/backfills/"+id, s.bfToken, "", nil, nil)
			for s.progress(b, id).Pending > 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		b.ReportMetric(p(idle, 0.5), "p50_idle_ms")
		b.ReportMetric(p(idle, 0.99), "p99_idle_ms")
		b.ReportMetric(p(busy, 0.5), "p50_backfill_ms")
		b.ReportMetric(p(busy, 0.99), "p99_backfill_ms")
		b.ReportMetric(p(busy, 0.99)/p(idle, 0.99), "p99_ratio")
		b.ReportMetric(float64(bulkDocs)/busyFor.Seconds(), "backfill_docs/s_meanwhile")
		b.ReportMetric(float64(timeouts), "sync_timeouts")
	}
}
