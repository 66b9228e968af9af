package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

const testSecret = "0123456789abcdef0123456789abcdef-ctl-secret"

func defaultsOf[T interface{ RegisterFlags(*flag.FlagSet) }](cfg T) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(nil)
}

// startStack runs ingest and a sentiment worker on real NATS and Redis and
// returns ingest's URL and a token with the backfills:write and jobs:write
// scopes.
func startStack(t *testing.T) (string, string) {
	s := startStackWith(t, nil, nil)
	return s.url, s.token
}

// ctlStack is ingest and a worker for the CLI's tests.
type ctlStack struct {
	redis      *testenv.Redis
	url, token string
	natsURL    string // the stack's NATS, for tests that write to RESULTS
	// restartWorker stops the worker softly, checks that it stopped within
	// its shutdown timeout, and starts a fresh one.
	restartWorker func()
}

// startStackWith is startStack with edit, when given, changing the
// configurations, and workerLog receiving the workers' logs.
func startStackWith(t *testing.T, edit func(*config.Ingest, *config.Worker), workerLog io.Writer) *ctlStack {
	t.Helper()
	n, r := testenv.StartNATS(t), testenv.StartRedis(t)
	secret := filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(secret, []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	var ing config.Ingest
	defaultsOf(&ing)
	ing.NATS.URL, ing.Redis.URL, ing.Addr, ing.Auth.HS256SecretFile = n.URL(), r.URL(), "127.0.0.1:0", secret
	ing.OpsAddr = "127.0.0.1:0"
	ing.Tenants = false
	var wk config.Worker
	defaultsOf(&wk)
	wk.NATS.URL, wk.Redis.URL, wk.HTTPAddr = n.URL(), r.URL(), "127.0.0.1:0"
	wk.ORTLib, wk.Models, wk.IntraOpThreads = testenv.ORTLib(t), testenv.ModelDir(t, "sentiment"), 1
	if edit != nil {
		edit(&ing, &wk)
	}
	quiet := slog.New(slog.DiscardHandler)
	wlog := quiet
	if workerLog != nil {
		wlog = slog.New(slog.NewTextHandler(workerLog, nil))
	}
	// serve runs f until the test ends or the returned stop is called.
	serve := func(f func(ctx context.Context) error) (stop func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f(ctx) }()
		var once sync.Once
		var err error
		stop = func() error {
			once.Do(func() { cancel(); err = <-done })
			return err
		}
		t.Cleanup(func() { _ = stop() })
		return stop
	}
	addr := make(chan string, 1)
	stopIngest := serve(func(ctx context.Context) error {
		return app.RunIngest(ctx, ing, quiet, app.Hooks{Listening: func(a string) { addr <- a }})
	})
	s := &ctlStack{natsURL: n.URL(), redis: r}
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("ingest did not start: %v", stopIngest())
	}
	startWorker := func() (stop func() error) {
		ready := make(chan struct{})
		stop = serve(func(ctx context.Context) error {
			return app.RunWorker(ctx, wk, wlog, app.Hooks{Ready: func() { close(ready) }})
		})
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("worker did not start: %v", stop())
		}
		return stop
	}
	stopWorker := startWorker()
	s.restartWorker = func() {
		t0 := time.Now()
		if err := stopWorker(); err != nil {
			t.Fatalf("worker stop: %v", err)
		}
		if d := time.Since(t0); d > wk.ShutdownTimeout+5*time.Second {
			t.Fatalf("the worker took %s to stop (shutdown timeout %s)", d, wk.ShutdownTimeout)
		}
		stopWorker = startWorker()
	}
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	s.token, _, err = signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeBackfillsWrite, auth.ScopeJobsWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBackfillRunResumes interrupts a run after the server has documents
// the run's state file does not know about, and checks that the resumed run
// sends only what lies after its last confirmed line, that the server's
// duplicates absorb the overlap, and that the results file holds one line
// per document.
func TestBackfillRunResumes(t *testing.T) {
	url, tok := startStack(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "archive.ndjson")
	var b bytes.Buffer
	const n = 1200
	for i := range n {
		fmt.Fprintf(&b, `{"id":"doc-%d","text":"Company %d shares rose after strong earnings."}`+"\n", i, i%40)
		if i == 100 {
			b.WriteString("{broken\n")
		}
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := &apiClient{url: url, token: tok}
	api.hc = &http.Client{}
	// An interrupted run: the server has the first 900 documents, the state
	// file was last saved after line 600.
	created := newBackfill(t, api)
	first := bytes.SplitAfterN(b.Bytes(), []byte("\n"), 902)
	if err := api.do(ctx, "POST", "/v1/backfills/"+created+"/documents", "application/x-ndjson",
		bytes.NewReader(bytes.Join(first[:901], nil)), nil); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "archive.ndjson.backfill.json")
	st := &runState{URL: url, Task: "sentiment", In: in, Backfill: created, DoneLine: 600}
	if err := st.save(state); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	err := run(ctx, []string{"backfill", "run", "--url", url, "--token", tok, "--task", "sentiment", "--in", in,
		"--chunk", "250", "--poll", "100ms"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	log := errOut.String()
	if !strings.Contains(log, "resuming backfill "+created+" after line 600") {
		t.Fatalf("no resume in:\n%s", log)
	}
	// Line 102 is broken, so line L > 102 holds doc-(L-2): lines 601..1201
	// hold docs 599..1199, and the server had 599..899 of them.
	if !strings.Contains(log, "sent 601, duplicates 301, rejected 0") {
		t.Fatalf("resumed run sent the wrong documents:\n%s", log)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d submitted, %d succeeded", n, n)) {
		t.Fatalf("summary: %s", out.String())
	}
	checkResults(t, in+".results.ndjson", n, nil)
	// Running again finds the backfill sealed and only exports.
	out.Reset()
	errOut.Reset()
	if err := run(ctx, []string{"backfill", "run", "--url", url, "--token", tok, "--task", "sentiment", "--in", in}, &out, &errOut); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(errOut.String(), "sent 0, duplicates 0") {
		t.Fatalf("second run sent documents:\n%s", errOut.String())
	}
}

// syncBuffer is a bytes.Buffer that a logger and a test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBackfillOutgrowsResults runs a backfill whose results are three times
// what the RESULTS stream holds, with nobody exporting at first. The full
// stream refuses results and the worker holds its documents rather than
// drop older results or dead-letter the documents, while synchronous calls
// go on; a worker stopped meanwhile hands its documents back. Then
// `backfill run` resumes the backfill; its export steps purge what they
// have written, the held documents finish, and every result is in the file
// once.
func TestBackfillOutgrowsResults(t *testing.T) {
	var wlog syncBuffer
	stack := startStackWith(t, func(ing *config.Ingest, wk *config.Worker) {
		ing.ResultsMaxBytes = 1 << 20 // the least ingest takes
		wk.ShutdownTimeout = 5 * time.Second
	}, &wlog)
	url, tok := stack.url, stack.token
	// acme's share of RESULTS is the whole stream: this is the stream-wide
	// limit at work, not the tenant's (TestResultsShareRefusesOnlyTheTenantOver
	// in internal/app is).
	if _, err := tenant.NewStore(stack.redis.Client(t)).Create(context.Background(), tenant.Tenant{ID: "acme", ResultsMaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "archive.ndjson")
	var b bytes.Buffer
	const n = 6000 // about 500 bytes of result each
	for i := range n {
		fmt.Fprintf(&b, `{"id":"doc-%d","text":"Company %d shares fell after weak earnings.","meta":{"source":"wire"}}`+"\n", i, i%50)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := &apiClient{url: url, token: tok, hc: &http.Client{}}
	created := newBackfill(t, api)
	// One request, so that every document is queued before RESULTS fills.
	if err := api.do(ctx, "POST", "/v1/backfills/"+created+"/documents", "application/x-ndjson", bytes.NewReader(b.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(wlog.String(), "RESULTS stream is full") {
		if time.Now().After(deadline) {
			t.Fatalf("the worker never found RESULTS full; its log:\n%s", wlog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Ingest now refuses more documents (once its one-second view of
	// RESULTS is fresh), lest they fill JOBS, which every tenant shares,
	// with work that cannot finish. The document resent is a duplicate.
	var err error
	for {
		err = api.do(ctx, "POST", "/v1/backfills/"+created+"/documents", "application/x-ndjson", bytes.NewReader(bytes.SplitAfter(b.Bytes(), []byte("\n"))[0]), nil)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusServiceUnavailable || ae.code != "results_full" || ae.retryAfter == 0 {
		t.Fatalf("documents while RESULTS is full: %v, want 503 results_full with Retry-After", err)
	}
	if err := api.do(ctx, "POST", "/v1/backfills/"+created+"/seal", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := api.progress(ctx, created); err != nil || p.State == "completed" || p.Dead != 0 {
		t.Fatalf("with RESULTS full the backfill is %+v (%v), want it waiting with nothing dead", p, err)
	}
	// Interactive and bulk work on the same model goes on meanwhile: only
	// the backfill lane waits for RESULTS.
	for i := range 3 {
		var rec struct{ Status string }
		body := fmt.Sprintf(`{"text":"Profits %d soared to a record."}`, i)
		if err := api.do(ctx, "POST", "/v1/infer/sentiment", "application/json", strings.NewReader(body), &rec); err != nil || rec.Status != "succeeded" {
			t.Fatalf("a synchronous call while RESULTS is full: %+v %v", rec, err)
		}
		body = fmt.Sprintf(`{"task":"sentiment","lane":"bulk","input":{"text":"Losses %d widened again."}}`, i)
		if err := api.do(ctx, "POST", "/v1/jobs?wait=20s", "application/json", strings.NewReader(body), &rec); err != nil || rec.Status != "succeeded" {
			t.Fatalf("a bulk job while RESULTS is full: %+v %v", rec, err)
		}
	}
	// A worker stopped while it holds documents hands them back (nak) and
	// stops within its shutdown timeout; the next worker gets them and
	// finds RESULTS full in its turn.
	stack.restartWorker()
	for strings.Count(wlog.String(), "RESULTS stream is full") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted worker never found RESULTS full; the log:\n%s", wlog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := &runState{URL: url, Task: "sentiment", In: in, Backfill: created, DoneLine: n, Sealed: true}
	if err := st.save(in + ".backfill.json"); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(ctx, []string{"backfill", "run", "--url", url, "--token", tok, "--task", "sentiment", "--in", in,
		"--poll", "50ms", "--export-step", "500"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d submitted, %d succeeded", n, n)) {
		t.Fatalf("summary: %s", out.String())
	}
	if !strings.Contains(errOut.String(), fmt.Sprintf("; exported %d", n)) {
		t.Fatalf("the progress line does not count the exported results:\n%s", errOut.String())
	}
	if !strings.Contains(wlog.String(), "resuming the backfill lane") {
		t.Fatalf("the worker never resumed its backfill lane; its log:\n%s", wlog.String())
	}
	data := checkResults(t, in+".results.ndjson", n, func(l resultLine) bool { return l.Meta["source"] == "wire" })
	st, err = loadState(in + ".backfill.json")
	if err != nil || !st.Exported || st.ResultsLines != n || st.ResultsBytes != int64(len(data)) {
		t.Fatalf("state after the run: %+v %v", st, err)
	}
}

// TestExporterReopens checks what a resumed export starts from: the results
// file cut back to the length the state file vouches for (lines written by
// a step whose state was never saved are written again by the next step),
// the ids it holds known, and a file that disagrees with the state refused.
func TestExporterReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.part")
	lines := []string{`{"id":"a","status":"succeeded"}`, `{"id":"b.c","status":"failed"}`, `{"id":"d","status":"succeeded"}`}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saved := int64(len(lines[0]) + len(lines[1]) + 2)
	x := &exporter{path: path, st: &runState{ResultsBytes: saved, ResultsLines: 2}}
	if err := x.open(); err != nil {
		t.Fatal(err)
	}
	defer x.f.Close()
	if off, _ := x.f.Seek(0, io.SeekCurrent); off != saved {
		t.Fatalf("writing resumes at %d, want %d", off, saved)
	}
	if fi, _ := os.Stat(path); fi.Size() != saved {
		t.Fatalf("file is %d bytes, want %d", fi.Size(), saved)
	}
	for id, want := range map[string]bool{"a": true, "b.c": true, "d": false} {
		if _, ok := x.seen[backfill.Fingerprint(id)]; ok != want {
			t.Errorf("id %q known: %v, want %v", id, ok, want)
		}
	}
	x.f.Close()
	bad := &exporter{path: path, st: &runState{ResultsBytes: saved, ResultsLines: 3}}
	if err := bad.open(); err == nil || !strings.Contains(err.Error(), "holds 2 results where the run's state file says 3") {
		t.Fatalf("a file that disagrees with the state: %v", err)
	}
}

// TestExportStepRewinds gives the exporter an export that ends without its
// sequence trailer (as when ingest stops mid-stream), then a whole one: the
// first step leaves neither lines nor ids behind, so the second writes each
// result once. The server stands in for ingest only to cut the stream.
func TestExportStepRewinds(t *testing.T) {
	body := `{"id":"a","status":"succeeded"}` + "\n" + `{"id":"b","status":"succeeded"}` + "\n"
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Method == "DELETE" {
			if r.URL.Query().Get("through") != "7" {
				t.Errorf("purge %s", r.URL)
			}
			w.Write([]byte(`{}`))
			return
		}
		if calls > 1 {
			w.Header().Set("Trailer", resultsSeqTrailer+", "+resultsReadTrailer)
		}
		w.Write([]byte(body))
		if calls > 1 {
			w.Header().Set(resultsSeqTrailer, "7")
			w.Header().Set(resultsReadTrailer, "2")
		}
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "out.part")
	st := &runState{Backfill: "bf1"}
	x := &exporter{api: &apiClient{url: srv.URL, token: "t"}, st: st, path: path, step: 10,
		save: func(edit func(*runState)) error { edit(st); return nil }, warnf: t.Logf}
	if err := x.open(); err != nil {
		t.Fatal(err)
	}
	defer x.f.Close()
	if _, err := x.stepOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "no sequence trailer") {
		t.Fatalf("a cut export: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 || len(x.seen) != 0 || st.ResultsSeq != 0 {
		t.Fatalf("after the cut: %d bytes, %d ids, seq %d", fi.Size(), len(x.seen), st.ResultsSeq)
	}
	if read, err := x.stepOnce(context.Background()); err != nil || read != 2 {
		t.Fatalf("the whole export: %d read, %v", read, err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != body || st.ResultsSeq != 7 || st.ResultsLines != 2 || st.ResultsBytes != int64(len(body)) || x.purged != 7 {
		t.Fatalf("file %q, state %+v, purged %d", data, st, x.purged)
	}
}

// TestBackfillResultsPurge exports a backfill made through the API with
// `backfill results --purge`: every result once in the file, nothing left
// in RESULTS, and a second call that finds the export done.
func TestBackfillResultsPurge(t *testing.T) {
	url, tok := startStack(t)
	ctx := context.Background()
	api := &apiClient{url: url, token: tok, hc: &http.Client{}}
	created := newBackfill(t, api)
	var b bytes.Buffer
	const n = 500
	for i := range n {
		fmt.Fprintf(&b, `{"id":"doc-%d","text":"Company %d shares rose after strong earnings."}`+"\n", i, i%40)
	}
	if err := api.do(ctx, "POST", "/v1/backfills/"+created+"/documents", "application/x-ndjson", &b, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.do(ctx, "POST", "/v1/backfills/"+created+"/seal", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results.ndjson")
	args := []string{"backfill", "results", "--url", url, "--token", tok, "--id", created, "--out", out, "--purge", "--export-step", "120", "--poll", "50ms"}
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("results --purge: %v\n%s", err, stderr.String())
	}
	checkResults(t, out, n, nil)
	resp, err := api.send(ctx, "GET", "/v1/backfills/"+created+"/results?follow=false", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(left) != 0 {
		t.Fatalf("RESULTS still holds %d bytes of the exported backfill", len(left))
	}
	stderr.Reset()
	if err := run(ctx, args, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), fmt.Sprintf("%d results written", n)) {
		t.Fatalf("a second export: %v\n%s", err, stderr.String())
	}
	if err := run(ctx, []string{"backfill", "results", "--url", url, "--token", tok, "--id", created, "--purge"}, &stdout, &stderr); err == nil {
		t.Fatal("--purge without --out was accepted")
	}
}

// newBackfill creates a sentiment backfill through the API and returns its id.
func newBackfill(t *testing.T, api *apiClient) string {
	t.Helper()
	var created struct {
		ID string `json:"id"`
	}
	if err := api.do(context.Background(), "POST", "/v1/backfills", "application/json", strings.NewReader(`{"task":"sentiment"}`), &created); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

// resultLine is what the result-file checks read of a line.
type resultLine struct {
	ID, Status string
	Meta       map[string]string
}

// checkResults reads a results file and fails unless it holds n lines, one
// a document, each succeeded and passing check (when given). It returns the
// file's bytes.
func checkResults(t *testing.T, path string, n int, check func(resultLine) bool) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var l resultLine
		if err := json.Unmarshal(line, &l); err != nil || l.Status != "succeeded" || seen[l.ID] || (check != nil && !check(l)) {
			t.Fatalf("result line %s (err %v, seen %v)", line, err, seen[l.ID])
		}
		seen[l.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d results, want %d", len(seen), n)
	}
	return data
}
