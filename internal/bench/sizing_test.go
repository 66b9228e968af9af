package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

var (
	sizing     = flag.Bool("jetinfer.sizing", false, "measure each process's cost per job for docs/scaling.md (make bench-sizing)")
	sizingJobs = flag.Int("jetinfer.sizing-jobs", 20_000, "jobs (and backfill documents) of each sizing phase")
)

// TestSizing measures what one job costs each process of a deployment: CPU
// time in ingest, the worker (apart from the model), nats-server and
// redis-server, and bytes held in JetStream and Redis, for each way jobs
// arrive. Every process is a real, separate process (ingest and worker
// built from cmd/, the nats-server `make deps` installs, Debian's
// redis-server), so that each one's CPU is its own: /proc/PID/stat for
// ingest, the worker and NATS, and Redis's own INFO cpu. CPU seconds per job
// hardly depend on how loaded the machine is, unlike wall time, which is
// why docs/scaling.md sizes from them. The worker serves the lexicon
// sentiment model, whose inference costs microseconds, so its CPU is the
// pipeline's own; add a model's cost from make bench-model.
func TestSizing(t *testing.T) {
	if !*sizing {
		t.Skip("the sizing benchmark runs with -jetinfer.sizing (make bench-sizing)")
	}
	n := *sizingJobs
	d := startSizingDeployment(t)
	docs := newsDocs(t)
	text := func(i int) string { return docs[i%len(docs)] + " Ref " + strconv.Itoa(i) + "." }

	var rows []row
	add := func(r row) {
		rows = append(rows, r)
		fmt.Printf("  %-58s %-22s %s\n", r.measure, r.value, r.note)
	}
	perJob := func(phase string, c costs, jobs int) {
		for _, p := range c.order {
			add(row{phase + ": " + p, fmt.Sprintf("%.1f µs CPU/job", c.cpu[p].Seconds()*1e6/float64(jobs)), "",
				fmt.Sprintf("%.2f cores over %.1f s for %d jobs", c.cpu[p].Seconds()/c.wall.Seconds(), c.wall.Seconds(), jobs)})
		}
	}

	// 1. Acceptance alone, no worker running: what ingest, NATS and Redis
	// spend to take a job, and what a queued job holds in JOBS and Redis.
	mem0 := d.redisMemory(t)
	c := d.measure(t, func() { d.submit(t, n, 1, text) })
	perJob("accept, POST /v1/jobs", c, n)
	jobsBytes, jobsMsgs := d.streamBytes(t, "JOBS")
	add(row{"queued job in JOBS (file store)", fmt.Sprintf("%.0f bytes/job", float64(jobsBytes)/float64(jobsMsgs)), "",
		fmt.Sprintf("%d messages; until a worker acks it", jobsMsgs)})
	add(row{"queued job's record in Redis", fmt.Sprintf("%.0f bytes/job", float64(d.redisMemory(t)-mem0)/float64(n)), "",
		"INFO used_memory delta; kept for --result-ttl (24 h) or the tenant's TTL"})

	// 2. Running them: the worker and what it adds to NATS and Redis.
	w := d.startWorker(t)
	c = d.measure(t, func() { d.awaitFinished(t, w, n) })
	perJob("run queued jobs", c, n)
	add(row{"finished job's record in Redis", fmt.Sprintf("%.0f bytes/job", float64(d.redisMemory(t)-mem0)/float64(n)), "",
		"INFO used_memory delta with result and timings; kept for --result-ttl"})

	// 3. Both at once, one job a request and then a hundred a request.
	for _, per := range []int{1, 100} {
		done := w.finished(t)
		c = d.measure(t, func() {
			d.submit(t, n, per, text)
			d.awaitFinished(t, w, int(done)+n)
		})
		perJob(fmt.Sprintf("submit and run, %d a request", per), c, n)
	}

	// 4. A backfill of n documents: upload, seal, completed, then export.
	mem0 = d.redisMemory(t)
	var id string
	c = d.measure(t, func() { id = d.backfill(t, n, text) })
	perJob("backfill, upload to completed", c, n)
	resBytes, resMsgs := d.streamBytes(t, "RESULTS")
	add(row{"backfill result in RESULTS (file store)", fmt.Sprintf("%.0f bytes/doc", float64(resBytes)/float64(max(resMsgs, 1))), "",
		fmt.Sprintf("%d messages; until exported and purged, or --results-max-age (7 d)", resMsgs)})
	add(row{"backfill document in Redis", fmt.Sprintf("%.0f bytes/doc", float64(d.redisMemory(t)-mem0)/float64(n)), "",
		"INFO used_memory delta: marks and reuse cache entries; kept for the backfill's TTL"})
	c = d.measure(t, func() { d.export(t, id, n) })
	perJob("backfill, export and purge", c, n)

	// 5. Synchronous calls, 16 at a time.
	calls := max(n/10, 100)
	c = d.measure(t, func() { d.syncCalls(t, calls, text) })
	perJob("sync POST /v1/infer, 16 clients", c, calls)

	fmt.Print("\n" + renderTable(rows, machineLine()+", load average "+loadAvg()+" at the end (the machine is shared)"))
}

// sizingDeployment is nats-server, redis-server and ingest as processes of
// their own, and a worker process started when a phase needs one.
type sizingDeployment struct {
	bins, natsURL, redisURL, secret, token, url, task, model string
	procs                                                    map[string]*exec.Cmd
	redis                                                    *redis.Client
	js                                                       jetstream.JetStream
	client                                                   *http.Client
}

type sizingWorker struct {
	cmd *exec.Cmd
	url string
}

func startSizingDeployment(t *testing.T) *sizingDeployment {
	d := &sizingDeployment{procs: map[string]*exec.Cmd{}, model: testenv.ModelDir(t, syncModel)}
	d.task = taskOf(t, d.model)
	d.bins = t.TempDir()
	build := exec.Command("go", "build", "-o", d.bins+string(os.PathSeparator), "./cmd/ingest", "./cmd/worker")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	natsPort := testenv.FreePort(t)
	natsBin := filepath.Join(os.Getenv("JETINFER_HOME"), "bin", "nats-server")
	d.start(t, "nats-server", natsBin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-sd", t.TempDir())
	d.natsURL = "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	awaitPort(t, "127.0.0.1:"+strconv.Itoa(natsPort))
	nc, err := nats.Connect(d.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if d.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}

	r := testenv.StartRedis(t)
	d.redisURL, d.redis = r.URL(), r.Client(t)
	d.secret, d.token = benchTenant(t, d.redis, auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeBackfillsWrite)
	d.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	d.start(t, "ingest", filepath.Join(d.bins, "ingest"), "-addr", addr, "-ops-addr", "127.0.0.1:0",
		"-nats-url", d.natsURL, "-redis-url", d.redisURL, "-auth-hs256-secret-file", d.secret, "-log-level", "error")
	d.url = "http://" + addr
	awaitPort(t, addr)
	// Ingest accepts jobs for the tasks workers announced: a worker started
	// and stopped once announces the task, as a scaled-to-zero fleet has.
	w := d.startWorker(t)
	d.stopWorker(t, w)
	return d
}

// start runs a process for the rest of the test; its output goes to a log
// under the test's temporary directory.
func (d *sizingDeployment) start(t *testing.T, name, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
	})
	d.procs[name] = cmd
	return cmd
}

func (d *sizingDeployment) startWorker(t *testing.T) sizingWorker {
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cmd := d.start(t, "worker", filepath.Join(d.bins, "worker"), "-models", d.model, "-ort-lib", testenv.ORTLib(t),
		"-nats-url", d.natsURL, "-redis-url", d.redisURL, "-http-addr", addr, "-log-level", "error")
	w := sizingWorker{cmd: cmd, url: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := d.client.Get(w.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *sizingDeployment) stopWorker(t *testing.T, w sizingWorker) {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	delete(d.procs, "worker")
}

func (w sizingWorker) finished(t *testing.T) float64 {
	return metricSum(t, http.DefaultClient, w.url, "jetinfer_worker_jobs_finished_total", "")
}

// costs is what each process spent over one phase.
type costs struct {
	order []string
	cpu   map[string]time.Duration
	wall  time.Duration
}

// measure runs f and returns each process's CPU time over it.
func (d *sizingDeployment) measure(t *testing.T, f func()) costs {
	before := d.cpu(t)
	t0 := time.Now()
	f()
	c := costs{cpu: d.cpu(t), wall: time.Since(t0)}
	for _, p := range []string{"ingest", "worker", "nats-server", "redis-server"} {
		if _, ok := c.cpu[p]; !ok {
			continue
		}
		c.cpu[p] -= before[p]
		c.order = append(c.order, p)
	}
	return c
}

func (d *sizingDeployment) cpu(t *testing.T) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, cmd := range d.procs {
		out[name] = procCPU(t, cmd.Process.Pid)
	}
	info, err := d.redis.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	out["redis-server"] = time.Duration((infoField(t, info, "used_cpu_user") + infoField(t, info, "used_cpu_sys")) * float64(time.Second))
	return out
}

// procCPU is a process's user and system time from /proc/PID/stat, in
// clock ticks of 1/100 s (USER_HZ on Linux).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func infoField(t *testing.T, info, key string) float64 {
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in INFO", key)
	return 0
}

func (d *sizingDeployment) redisMemory(t *testing.T) int64 {
	info, err := d.redis.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	return int64(infoField(t, info, "used_memory"))
}

func (d *sizingDeployment) streamBytes(t *testing.T, name string) (bytes, msgs uint64) {
	s, err := d.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Bytes, info.State.Msgs
}

func (d *sizingDeployment) do(t *testing.T, method, path string, body []byte, want int, out any) {
	req, err := http.NewRequest(method, d.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatal(err)
		}
	}
}

// submit posts n bulk jobs from 16 clients, per jobs a request.
func (d *sizingDeployment) submit(t *testing.T, n, per int, text func(int) string) {
	job := func(i int) map[string]any {
		return map[string]any{"task": d.task, "lane": "bulk", "input": map[string]any{"text": text(i)}}
	}
	requests := (n + per - 1) / per
	bodies := make([][]byte, requests)
	for r := range bodies {
		if per == 1 {
			bodies[r] = mustJSON(t, job(r))
			continue
		}
		jobs := make([]any, 0, per)
		for i := r * per; i < min((r+1)*per, n); i++ {
			jobs = append(jobs, job(i))
		}
		bodies[r] = mustJSON(t, map[string]any{"jobs": jobs})
	}
	path := "/v1/jobs"
	if per > 1 {
		path = "/v1/jobs/batch"
	}
	parallel(t, requests, func(r int) { d.do(t, "POST", path, bodies[r], http.StatusAccepted, nil) })
}

// parallel calls f(0) .. f(n-1) from 16 goroutines, as 16 clients would.
func parallel(t *testing.T, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || t.Failed() {
					return
				}
				f(int(i))
			}
		})
	}
	wg.Wait()
}

func (d *sizingDeployment) awaitFinished(t *testing.T, w sizingWorker, n int) {
	deadline := time.Now().Add(10 * time.Minute)
	for w.finished(t) < float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d jobs finished", w.finished(t), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backfill creates a backfill of n documents, uploads them in chunks of
// 5,000, seals it and waits for it to complete; it returns its id.
func (d *sizingDeployment) backfill(t *testing.T, n int, text func(int) string) string {
	var p struct {
		ID, State                    string
		Submitted, Succeeded, Reused int64
	}
	d.do(t, "POST", "/v1/backfills", mustJSON(t, map[string]string{"task": d.task, "name": "sizing"}), http.StatusCreated, &p)
	id := p.ID
	for start := 0; start < n; start += 5000 {
		var buf bytes.Buffer
		for i := start; i < min(start+5000, n); i++ {
			buf.Write(mustJSON(t, map[string]string{"id": "doc-" + strconv.Itoa(i), "text": text(1_000_000 + i)}))
			buf.WriteByte('\n')
		}
		d.do(t, "POST", "/v1/backfills/"+id+"/documents", buf.Bytes(), http.StatusOK, nil)
	}
	d.do(t, "POST", "/v1/backfills/"+id+"/seal", nil, http.StatusOK, nil)
	deadline := time.Now().Add(10 * time.Minute)
	for p.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("backfill not completed: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
		d.do(t, "GET", "/v1/backfills/"+id, nil, http.StatusOK, &p)
	}
	if p.Succeeded != int64(n) {
		t.Fatalf("backfill: %d of %d succeeded", p.Succeeded, n)
	}
	return id
}

// export reads the backfill's results in one request and purges them.
func (d *sizingDeployment) export(t *testing.T, id string, n int) {
	req, _ := http.NewRequest("GET", d.url+"/v1/backfills/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lines := bytes.Count(data, []byte("\n")); resp.StatusCode != http.StatusOK || lines != n {
		t.Fatalf("export: %d, %d lines of %d", resp.StatusCode, lines, n)
	}
	through := resp.Trailer.Get("Jetinfer-Results-Seq")
	d.do(t, "DELETE", "/v1/backfills/"+id+"/results?through="+through, nil, http.StatusOK, nil)
}

// syncCalls makes n synchronous calls from 16 clients.
func (d *sizingDeployment) syncCalls(t *testing.T, n int, text func(int) string) {
	parallel(t, n, func(i int) {
		d.do(t, "POST", "/v1/infer/"+d.task, mustJSON(t, map[string]string{"text": text(2_000_000 + i)}), http.StatusOK, nil)
	})
}

func awaitPort(t *testing.T, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
