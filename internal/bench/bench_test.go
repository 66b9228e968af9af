package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/infer"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

var (
	enabled       = flag.Bool("jetinfer.bench", false, "run the whole-system benchmark (make bench)")
	threads       = flag.Int("jetinfer.threads", runtime.NumCPU(), "ONNX Runtime intra-op threads, raw and end to end")
	device        = flag.String("jetinfer.device", "cpu", "execution device of the model, raw and end to end: cpu or cuda:N")
	e2eDocs       = flag.Int("jetinfer.e2e-docs", 960, "documents run end to end (and raw), over all rounds")
	e2eBatch      = flag.Int("jetinfer.e2e-batch", 1, "jobs a request in the end-to-end run: 1 posts each to /v1/jobs, more posts them to /v1/jobs/batch (a GPU worker outruns one job a request)")
	rounds        = flag.Int("jetinfer.rounds", 5, "alternating raw and end-to-end rounds")
	syncCalls     = flag.Int("jetinfer.sync-calls", 300, "synchronous calls measured")
	ingestFor     = flag.Duration("jetinfer.ingest-for", 5*time.Second, "how long ingest is loaded")
	ingestClients = flag.Int("jetinfer.ingest-clients", 64, "concurrent HTTP clients loading ingest one job a request (a sixteenth of them send batches)")
	ingestBatch   = flag.Int("jetinfer.ingest-batch", 100, "jobs in each POST /v1/jobs/batch of the batched ingest load")
	only          = flag.String("jetinfer.only", "", "run only this phase (ingest), for profiling with -test.cpuprofile")
	goroutines    = flag.String("jetinfer.goroutines", "", "write a goroutine profile half-way through the ingest load to this file")
	writeDoc      = flag.String("jetinfer.write", "", "file to write the results table to (BENCHMARKS.md)")
	tenants       = flag.Bool("jetinfer.tenants", true, "admit every request against its tenant in Redis, as production does; false measures what admission costs")
)

const (
	bulkModel = "minilm-l6-random-classifier"
	syncModel = "sentiment"
	secret    = "0123456789abcdef0123456789abcdef-bench-secret"
)

// summary is printed after the test run, so that its last lines are the
// last lines the binary prints.
var summary []string

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, l := range summary {
		fmt.Println(l)
	}
	os.Exit(code)
}

type row struct{ measure, value, goal, note string }

func TestBench(t *testing.T) {
	if !*enabled {
		t.Skip("the whole-system benchmark runs with -jetinfer.bench (make bench)")
	}
	startLoad := loadAvg()
	docs := newsDocs(t)
	ortLib := testenv.ORTLib(t)
	bulkDir, syncDir := testenv.ModelDir(t, bulkModel), testenv.ModelDir(t, syncModel)
	bulkTask, syncTask := taskOf(t, bulkDir), taskOf(t, syncDir)
	var rows []row
	add := func(r row) {
		rows = append(rows, r)
		fmt.Printf("  %-44s %14s  %s\n", r.measure, r.value, r.note)
	}
	if *only == "ingest" {
		env := startEnv(t)
		env.startWorker(t, bulkDir, 1, 0).stop() // announces the task
		rate, refused := env.ingestRate(t, bulkTask, *ingestClients, *ingestBatch, *ingestFor)
		add(row{"ingest acceptance", fmt.Sprintf("%.0f jobs/s", rate), "", fmt.Sprintf("%d a request, %d not accepted", *ingestBatch, refused)})
		return
	}

	// 1. The model's own batch-1 time, before any worker runs.
	b1p50, b1p99 := batchOneLatency(t, ortLib, syncDir, docs, *syncCalls)

	// 2. Raw in-process throughput and end-to-end bulk throughput (HTTP →
	// JetStream → worker → results) in alternating rounds, so that noise
	// from other work on the machine falls on both alike. The raw model is
	// idle while the worker runs, and the worker idle while the raw model
	// runs.
	env := startEnv(t)
	w := env.startWorker(t, bulkDir, *threads, 0)
	rawModel := loadModel(t, ortLib, bulkDir)
	var rawDocs, e2eDocsDone int
	var rawTime, e2eTime time.Duration
	per := max(*e2eDocs / *rounds / 32 * 32, 32)
	var ratios []float64
	for range *rounds {
		rt := rawRun(t, rawModel, docs, 32, per)
		et := env.bulkRun(t, w, bulkTask, docs, per)
		rawDocs, rawTime = rawDocs+per, rawTime+rt
		e2eDocsDone, e2eTime = e2eDocsDone+per, e2eTime+et
		ratios = append(ratios, rt.Seconds()/et.Seconds())
	}
	closeModel(t, rawModel) // before the worker's exit shuts ONNX Runtime down
	calls := metricSum(t, env.client, w.url, "jetinfer_worker_batch_size_count", bulkTask)
	callDocs := metricSum(t, env.client, w.url, "jetinfer_worker_batch_size_sum", bulkTask)
	padding := metricSum(t, env.client, w.url, "jetinfer_worker_batch_padding_ratio_sum", bulkTask) / calls
	w.stop()
	raw := float64(rawDocs) / rawTime.Seconds()
	e2e := float64(e2eDocsDone) / e2eTime.Seconds()
	// Each round pairs a raw and an end-to-end run close in time; the
	// median of the rounds' ratios shrugs off a round that other work on
	// the machine slowed on one side only.
	ratio := percentile(ratios, 50)
	add(row{"raw model throughput (" + bulkTask + ", batch 32)", fmt.Sprintf("%.1f docs/s", raw), "",
		fmt.Sprintf("in-process Prepare+Run as BenchmarkModel (make bench-model), %d intra-op threads, %d docs", *threads, rawDocs)})
	add(row{"model batch-1 time (" + syncTask + ")", fmt.Sprintf("p50 %.3f ms", b1p50), "",
		fmt.Sprintf("p99 %.3f ms; in-process Prepare+Run", b1p99)})
	add(row{"end-to-end bulk throughput (" + bulkTask + ")", fmt.Sprintf("%.1f docs/s", e2e), "",
		fmt.Sprintf("HTTP (%s) → JetStream → worker (batch 32) → Redis, same threads; %.1f docs per model call, padding %.0f%%",
			submission(), callDocs/calls, 100*padding)})
	add(row{"e2e/raw throughput ratio", fmt.Sprintf("%.3f", ratio), "≥ 0.95",
		fmt.Sprintf("median of %d alternating rounds of %d docs (%s); overall %.3f", *rounds, per, fmtRatios(ratios), e2e/raw)})

	// 3. Synchronous calls, one at a time, minus the model's own time.
	w = env.startWorker(t, syncDir, *threads, 0)
	p50, p99, stages := env.syncLatency(t, syncTask, docs, *syncCalls)
	w.stop()
	add(row{"sync POST /v1/infer latency (" + syncTask + ")", fmt.Sprintf("p50 %.3f ms", p50), "",
		fmt.Sprintf("p99 %.3f ms; worker with the default --batch-wait 0", p99)})
	add(row{"sync p50 overhead over model batch-1", fmt.Sprintf("%.3f ms", p50-b1p50), "≤ 1 ms",
		fmt.Sprintf("p99 overhead %.3f ms", p99-b1p99)})
	add(row{"sync call breakdown (p50 of each, from timings_ms)", fmt.Sprintf("%.3f ms", stages["total"]), "",
		fmt.Sprintf("in the worker: broker wait %.3f, batch wait %.3f, tokenize %.3f, infer %.3f, to final write %.3f ms; the rest of the call (HTTP, auth, admission, record, publish, store writes, reply) %.3f ms",
			stages["queue"], stages["batch"], stages["tokenize"], stages["infer"], stages["delivery"], p50-stages["total"])})

	// 4. Ingest alone: no worker consumes, so only acceptance is measured:
	// one job a request, then batches of -jetinfer.ingest-batch.
	ingestRow := func(perRequest, clients int, what string) float64 {
		cpu0, load0 := cpuTime(), loadAvg()
		t0 := time.Now()
		rate, refused := env.ingestRate(t, bulkTask, clients, perRequest, *ingestFor)
		cores := (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
		goal := ""
		if perRequest > 1 {
			goal = "≥ 20,000"
		}
		add(row{what, fmt.Sprintf("%.0f jobs/s", rate), goal,
			fmt.Sprintf("%d in-process HTTP clients for %s, %d not accepted; this process used %.2f cores (load generator, ingest, NATS; Redis is another process); load average %s before",
				clients, *ingestFor, refused, cores, load0)})
		return rate
	}
	ingestRow(1, *ingestClients, "ingest acceptance, POST /v1/jobs (one job a request)")
	rate := ingestRow(*ingestBatch, max(*ingestClients/16, 2), fmt.Sprintf("ingest acceptance, POST /v1/jobs/batch (%d jobs a request)", *ingestBatch))

	machine := machineLine() + ", load average " + startLoad + " at start (the machine is shared)"
	table := renderTable(rows, machine)
	fmt.Print("\n" + table)
	if *writeDoc != "" {
		if err := writeBenchmarks(*writeDoc, table); err != nil {
			t.Fatal(err)
		}
	}
	summary = []string{
		fmt.Sprintf("e2e/raw throughput ratio: %.2f", ratio),
		fmt.Sprintf("sync p50 overhead ms: %.2f", p50-b1p50),
		fmt.Sprintf("ingest jobs/s: %.0f", rate),
	}
}

func newsDocs(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "infer", "testdata", "news.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func taskOf(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "jetinfer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Task string `json:"task"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Task == "" {
		t.Fatalf("%s/jetinfer.json: no task (%v)", dir, err)
	}
	return v.Task
}

// rawRun runs n documents through the model in-process, batch by batch,
// the way BenchmarkModel in internal/infer does: Prepare every document,
// one Run per batch. It returns the time taken.
func rawRun(t *testing.T, m *infer.Model, docs []string, batch, n int) time.Duration {
	opts := job.Options{Truncate: true}
	t0 := time.Now()
	ins := make([]*infer.Input, batch)
	for done := 0; done < n; done += batch {
		for i := range ins {
			in, err := m.Prepare(docs[(done+i)%len(docs)], opts)
			if err != nil {
				t.Fatal(err)
			}
			ins[i] = in
		}
		if _, _, err := m.Run(context.Background(), ins); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(t0)
}

// batchOneLatency is the model's own time for one document (Prepare + Run).
func batchOneLatency(t *testing.T, lib, dir string, docs []string, n int) (p50, p99 float64) {
	m := loadModel(t, lib, dir)
	defer closeModel(t, m)
	lat := make([]float64, 0, n)
	for i := range n + 20 {
		t0 := time.Now()
		in, err := m.Prepare(docs[i%len(docs)], job.Options{Truncate: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Run(context.Background(), []*infer.Input{in}); err != nil {
			t.Fatal(err)
		}
		if i >= 20 {
			lat = append(lat, ms(time.Since(t0)))
		}
	}
	return percentile(lat, 50), percentile(lat, 99)
}

func loadModel(t *testing.T, lib, dir string) *infer.Model {
	if err := infer.Init(lib); err != nil {
		t.Fatal(err)
	}
	m, err := infer.LoadModel(dir, infer.SessionOptions{Device: *device, IntraOpThreads: *threads})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func closeModel(t *testing.T, m *infer.Model) {
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

// env is NATS, Redis and ingest, running for the whole benchmark.
type env struct {
	nats   *testenv.NATS
	redis  *testenv.Redis
	secret string
	url    string
	token  string
	client *http.Client
}

func startEnv(t *testing.T) *env {
	e := &env{nats: testenv.StartNATS(t), redis: testenv.StartRedis(t)}
	e.secret, e.token = benchTenant(t, e.redis.Client(t), auth.ScopeJobsWrite, auth.ScopeJobsRead)
	e.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}}

	var cfg config.Ingest
	defaults(&cfg)
	cfg.NATS.URL, cfg.Redis.URL = e.nats.URL(), e.redis.URL()
	cfg.Addr, cfg.Auth.HS256SecretFile, cfg.Log.Level = "127.0.0.1:0", e.secret, "error"
	cfg.OpsAddr = "127.0.0.1:0"
	cfg.Tenants = *tenants
	addr := make(chan string, 1)
	run(t, "ingest", func(ctx context.Context) error {
		return app.RunIngest(ctx, cfg, quietLogger(), app.Hooks{Listening: func(a string) { addr <- a }})
	})
	select {
	case a := <-addr:
		e.url = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatal("ingest did not start")
	}
	return e
}

// benchTenant creates the tenant "bench" with a quota and a rate limit far
// above what is offered, so that both are checked on every request and
// neither refuses, and returns a development secret file and a token of the
// tenant with scopes.
func benchTenant(t *testing.T, rc redis.UniversalClient, scopes ...string) (secretFile, token string) {
	secretFile = filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.NewStore(rc).Create(context.Background(), tenant.Tenant{
		ID: "bench", Name: "bench", Enabled: true, DailyQuota: 1 << 40, RatePerSec: 1e6, Burst: 1e6,
	}); err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = signer.IssueFor(auth.TokenRequest{Tenant: "bench", Scopes: scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return secretFile, token
}

type runningWorker struct {
	url  string
	stop func()
}

func (e *env) startWorker(t *testing.T, dir string, threads int, batchWait time.Duration) runningWorker {
	var cfg config.Worker
	defaults(&cfg)
	cfg.NATS.URL, cfg.Redis.URL = e.nats.URL(), e.redis.URL()
	cfg.ORTLib, cfg.Models = testenv.ORTLib(t), dir
	cfg.HTTPAddr, cfg.IntraOpThreads, cfg.Log.Level = "127.0.0.1:0", threads, "error"
	cfg.BatchWait, cfg.Device = batchWait, *device
	addr := make(chan string, 1)
	ready := make(chan struct{})
	stop := run(t, "worker", func(ctx context.Context) error {
		return app.RunWorker(ctx, cfg, quietLogger(), app.Hooks{Listening: func(a string) { addr <- a }, Ready: func() { close(ready) }})
	})
	w := runningWorker{url: "http://" + <-addr, stop: stop}
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not become ready")
	}
	// Ingest learns the worker's task from the model catalog it watches.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := e.client.Do(e.request(t, "GET", "/v1/models", nil))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"`+taskOfDir(t, dir)+`"`)) {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("ingest never saw the worker's model")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func taskOfDir(t *testing.T, dir string) string { return taskOf(t, dir) }

func (e *env) request(t *testing.T, method, path string, body []byte) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// bulkRun submits n bulk jobs as fast as ingest takes them and returns the
// time from the first submission to the last job finished, as the worker
// counts them.
func (e *env) bulkRun(t *testing.T, w runningWorker, task string, docs []string, n int) time.Duration {
	before := finished(t, e.client, w.url, task)
	jobs := make([]any, len(docs))
	for i, d := range docs {
		jobs[i] = map[string]any{"task": task, "lane": "bulk", "input": map[string]any{"text": d},
			"options": map[string]any{"truncate": true}}
	}
	// Request i carries jobs per*i .. per*i+per-1 (documents taken in turn).
	per := max(*e2eBatch, 1)
	path, body := "/v1/jobs", func(i int) []byte { return mustJSON(t, jobs[i%len(jobs)]) }
	if per > 1 {
		path, body = "/v1/jobs/batch", func(i int) []byte {
			b := make([]any, 0, per)
			for k := i * per; k < min((i+1)*per, n); k++ {
				b = append(b, jobs[k%len(jobs)])
			}
			return mustJSON(t, map[string]any{"jobs": b})
		}
	}
	requests := (n + per - 1) / per
	bodies := make([][]byte, requests)
	for i := range bodies {
		bodies[i] = body(i)
	}
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(requests) {
					return
				}
				resp, err := e.client.Do(e.request(t, "POST", path, bodies[i]))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("submit: status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	for {
		done := finished(t, e.client, w.url, task) - before
		elapsed := time.Since(t0)
		if done >= float64(n) {
			return elapsed
		}
		if elapsed > 10*time.Minute {
			t.Fatalf("only %v of %d jobs finished", done, n)
		}
		// A scrape costs CPU the model would use, so look rarely, but not
		// so rarely that a fast run (a GPU's) ends long before it is seen:
		// sleep half the time the rate so far says is left, between 1 and
		// 50 ms.
		left := 50 * time.Millisecond
		if done > 0 {
			left = time.Duration(float64(elapsed) * (float64(n) - done) / done)
		}
		time.Sleep(min(max(left/2, time.Millisecond), 50*time.Millisecond))
	}
}

// finished is the worker's count of jobs of task that finished.
func finished(t *testing.T, c *http.Client, url, task string) float64 {
	return metricSum(t, c, url, "jetinfer_worker_jobs_finished_total", task)
}

// metricSum adds up the worker's series of name for task ("": every task).
func metricSum(t *testing.T, c *http.Client, url, name, task string) float64 {
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") && (task == "" || strings.Contains(l, `task="`+task+`"`)) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

// syncLatency makes n synchronous calls one after another.
func (e *env) syncLatency(t *testing.T, task string, docs []string, n int) (p50, p99 float64, stages map[string]float64) {
	lat := make([]float64, 0, n)
	byStage := map[string][]float64{}
	for i := range n + 20 {
		body, _ := json.Marshal(map[string]any{"text": docs[i%len(docs)], "options": map[string]any{"truncate": true}})
		req := e.request(t, "POST", "/v1/infer/"+task, body)
		t0 := time.Now()
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sync call: status %d", resp.StatusCode)
		}
		var rec struct {
			Timings map[string]float64 `json:"timings_ms"`
		}
		_ = json.Unmarshal(data, &rec)
		if i >= 20 {
			lat = append(lat, ms(d))
			for k, v := range rec.Timings {
				byStage[k] = append(byStage[k], v)
			}
		}
	}
	stages = map[string]float64{}
	for k, v := range byStage {
		stages[k] = percentile(v, 50)
	}
	return percentile(lat, 50), percentile(lat, 99), stages
}

// ingestRate loads ingest with clients concurrent connections for d while
// no worker consumes, and returns accepted jobs per second. perRequest 1
// sends one POST /v1/jobs per job; more sends POST /v1/jobs/batch with that
// many jobs each.
func (e *env) ingestRate(t *testing.T, task string, clients, perRequest int, d time.Duration) (rate float64, refused int64) {
	one := map[string]any{"task": task, "lane": "bulk",
		"input": map[string]any{"text": "Oil prices rose on Tuesday after the cartel agreed to extend its output cuts into next year."}}
	path, body := "/v1/jobs", mustJSON(t, one)
	if perRequest > 1 {
		jobs := make([]any, perRequest)
		for i := range jobs {
			jobs[i] = one
		}
		path, body = "/v1/jobs/batch", mustJSON(t, map[string]any{"jobs": jobs})
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var accepted, other atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				resp, err := e.client.Do(e.request(t, "POST", path, body).WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						other.Add(int64(perRequest))
					}
					continue
				}
				buf.Reset()
				_, _ = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				n := int64(0)
				switch {
				case resp.StatusCode != http.StatusAccepted:
				case perRequest == 1:
					n = 1
				default:
					var br struct {
						Accepted int64 `json:"accepted"`
					}
					if json.Unmarshal(buf.Bytes(), &br) == nil {
						n = br.Accepted
					}
				}
				accepted.Add(n)
				other.Add(int64(perRequest) - n)
			}
		})
	}
	if *goroutines != "" {
		time.Sleep(d / 2)
		if f, err := os.Create(*goroutines); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 1)
			f.Close()
		}
	}
	wg.Wait()
	return float64(accepted.Load()) / time.Since(t0).Seconds(), other.Load()
}

// submission says how the end-to-end run submits its jobs.
func submission() string {
	if *e2eBatch > 1 {
		return fmt.Sprintf("POST /v1/jobs/batch, %d jobs a request", *e2eBatch)
	}
	return "POST /v1/jobs, one job a request"
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, name string, f func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				// Not what the benchmark measures: say it, do not fail it.
				if err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s stopped with: %v\n", name, err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("%s did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func defaults[T interface{ RegisterFlags(*flag.FlagSet) }](cfg T) {
	fs := flag.NewFlagSet("bench", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(nil)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// machineLine names the machine: cores, CPU model, Go and the date.
func machineLine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	nproc := strconv.Itoa(runtime.NumCPU())
	if out, err := exec.Command("nproc").Output(); err == nil {
		nproc = strings.TrimSpace(string(out))
	}
	dev := "model on the CPU"
	if *device != "cpu" {
		dev = "model on " + *device
		if out, err := exec.Command("nvidia-smi", "--query-gpu=name", "--format=csv,noheader").Output(); err == nil {
			dev += " (" + strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]) + ")"
		}
	}
	return fmt.Sprintf("%s cores (nproc), %s, %s, %s %s/%s, %s", nproc, cpu, dev, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
}

func renderTable(rows []row, machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machine)
	b.WriteString("| measure | value | goal | notes |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.measure, r.value, r.goal, r.note)
	}
	return b.String()
}

// writeBenchmarks replaces the results section of path (everything after
// the "## Latest run" heading), keeping what comes before it.
func writeBenchmarks(path, table string) error {
	const marker = "## Latest run"
	head := "# Benchmarks\n\nProduced by `make bench` (internal/bench); see docs/operations.md for what each line measures.\n\n"
	if b, err := os.ReadFile(path); err == nil {
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			head = string(b[:i])
		}
	}
	return os.WriteFile(path, []byte(head+marker+"\n\n"+table), 0o644)
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(parts, ", ")
}
