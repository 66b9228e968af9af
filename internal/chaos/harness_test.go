package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// full is set by `make chaos`: more jobs and more rounds per scenario.
var full = os.Getenv("JETINFER_CHAOS") == "full"

// scale picks the short or the full size of a scenario.
func scale(short, long int) int {
	if full {
		return long
	}
	return short
}

// bins are the binaries under test, built once by TestMain.
var bins struct{ dir, worker, ctl, ingest, nats string }

// quietRedis drops go-redis's own log lines: the Redis outages here are
// on purpose, and each failed dial would print one.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	flag.Parse()
	redis.SetLogger(quietRedis{})
	dir, err := os.MkdirTemp("", "jetinfer-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/worker", "./cmd/jetinferctl", "./cmd/ingest",
		"github.com/nats-io/nats-server/v2")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	bins.worker = filepath.Join(dir, "worker")
	bins.ctl = filepath.Join(dir, "jetinferctl")
	bins.ingest = filepath.Join(dir, "ingest")
	bins.nats = filepath.Join(dir, "nats-server")
	bins.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const devSecret = "0123456789abcdef0123456789abcdef-chaos-secret"

// aofRedis is a redis-server that keeps its data in an append-only file
// fsynced on every write, so that a SIGKILL loses nothing it acknowledged:
// the configuration the promises hold under (docs/durability.md).
type aofRedis struct {
	serverProc
	port int
}

func startAOFRedis(t *testing.T) *aofRedis {
	t.Helper()
	bin, err := testenv.RedisServerPath()
	if err != nil {
		t.Fatal(err)
	}
	r := &aofRedis{port: testenv.FreePort(t)}
	dir := t.TempDir()
	r.serverProc = serverProc{name: "redis-server", log: filepath.Join(dir, "redis.log"),
		cmd: func() *exec.Cmd {
			return exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", dir,
				"--save", "", "--appendonly", "yes", "--appendfsync", "always")
		},
		ready: func() bool {
			c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
			defer c.Close()
			return c.Ping(context.Background()).Err() == nil
		}}
	r.start(t)
	t.Cleanup(r.kill)
	return r
}

func (r *aofRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *aofRedis) url() string  { return "redis://" + r.addr() + "/0" }

// cluster is one jetinfer system under test.
type cluster struct {
	t     *testing.T
	nats  natsServer
	redis *aofRedis // nil on Sentinel
	// sentinel is the Redis of newSentinelCluster; nil otherwise.
	sentinel *testenv.RedisSentinel
	redisURL string
	nc       *nats.Conn // the test's own: counts replies, publishes directly
	rdb      redis.UniversalClient
	st       *store.Store
	url      string
	// ingestAddr is where ingest listens, kept across restarts;
	// stopIngest drains the running one (as SIGTERM does) and returns
	// RunIngest's error.
	ingestAddr string
	stopIngest func() error
	// ingestLog names ingest's log file in logDir; "ingest.log" when empty.
	ingestLog string
	secret    string
	token     string // tenant acme: jobs and dlq:admin
	replies   *replyCounter
	logDir    string
	// replicas is ingest's --stream-replicas: 3 on a NATS cluster.
	replicas int

	mu      sync.Mutex
	workers []*workerProc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterOn(t, testenv.StartNATS(t))
}

// newClusterOn is newCluster on a given nats-server.
func newClusterOn(t *testing.T, ns natsServer) *cluster { return newClusterR(t, ns, 1) }

// newClusterR is newCluster on ns with streams of replicas replicas.
func newClusterR(t *testing.T, ns natsServer, replicas int) *cluster {
	t.Helper()
	r := startAOFRedis(t)
	return newSystem(t, &cluster{t: t, nats: ns, redis: r, redisURL: r.url(), replicas: replicas})
}

// newSentinelCluster is newCluster on a Redis master with a replica and
// three sentinels, reached by a redis+sentinel:// URL.
func newSentinelCluster(t *testing.T) *cluster {
	t.Helper()
	s := testenv.StartRedisSentinel(t)
	return newSystem(t, &cluster{t: t, nats: testenv.StartNATS(t), sentinel: s, redisURL: s.URL()})
}

// newSystem starts ingest on c's servers.
func newSystem(t *testing.T, c *cluster) *cluster {
	t.Helper()
	c.logDir = t.TempDir()
	if d := os.Getenv("JETINFER_CHAOS_LOGS"); d != "" {
		// Keep the processes' logs for a look after the run.
		c.logDir = filepath.Join(d, t.Name())
		if err := os.MkdirAll(c.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.secret = filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(c.secret, []byte(devSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	c.token = c.issue("acme", auth.Scopes...)
	c.nc = c.nats.Connect(t)
	target, err := store.ParseURL(c.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c.rdb = target.Client(func(o *store.Tuning) {
		*o.MaxRetries, *o.DialTimeout, *o.ReadTimeout = -1, 200*time.Millisecond, time.Second
	})
	t.Cleanup(func() { _ = c.rdb.Close() })
	c.st = store.New(c.rdb, time.Hour)
	c.replies = newReplyCounter(t, c.nc)
	c.startIngest()
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

func (c *cluster) issue(tenant string, scopes ...string) string {
	c.t.Helper()
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		c.t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: tenant, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// startIngest runs ingest in this process, on the cluster's own port, until
// the test ends or stopIngest: it reconnects to NATS and Redis by itself, as
// the binary does.
func (c *cluster) startIngest() {
	t := c.t
	if c.ingestAddr == "" {
		c.ingestAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		c.url = "http://" + c.ingestAddr
	}
	var cfg config.Ingest
	fs := flag.NewFlagSet("ingest", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(nil)
	cfg.NATS.URL = c.nats.URL()
	cfg.Redis.URL = c.redisURL
	cfg.Addr, cfg.OpsAddr = c.ingestAddr, "127.0.0.1:0"
	cfg.Auth.HS256SecretFile = c.secret
	cfg.Tenants = false
	cfg.StreamReplicas = max(c.replicas, 1)
	if c.sentinel != nil {
		// What ingest acknowledges is on the replica too, as the
		// promises under Sentinel require (docs/durability.md).
		cfg.RedisWait.Replicas = 1
	}
	cfg.Log.Level = "warn"
	// One line per request would bury the scenario's own lines.
	cfg.Edge.AuditLog = "off"
	logName := c.ingestLog
	if logName == "" {
		logName = "ingest.log"
	}
	logf, err := os.OpenFile(filepath.Join(c.logDir, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	log := slogText(logf)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- app.RunIngest(ctx, cfg, log, app.Hooks{Ready: func() { close(ready) }})
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("ingest did not stop within 30s")
			}
			logf.Close()
		})
		return stopErr
	}
	c.stopIngest = stop
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("ingest: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("ingest: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("ingest did not start")
	}
}

// workerSpec is how a worker process is started.
type workerSpec struct {
	models     []string
	ackWait    time.Duration
	maxDeliver int
	batchSize  int
	// batchWait lets a batch wait for company (the default, 0, runs a lone
	// job at once): scenarios about what happens inside a batch need some.
	batchWait time.Duration
	threads   int
	shutdown  time.Duration
	// waitReplicas is --redis-wait-replicas.
	waitReplicas int
}

// workerProc is one worker slot: a supervisor that starts the worker binary
// and restarts it when it exits, as `make run` and an orchestrator do.
type workerProc struct {
	c        *cluster
	slot     int
	spec     workerSpec
	httpAddr string
	log      string

	mu       sync.Mutex
	cmd      *exec.Cmd
	starts   int
	exits    []string
	stopping bool
	exited   chan string // exit descriptions, for tests that wait on one
	done     chan struct{}
}

func (c *cluster) startWorkers(n int, spec workerSpec) []*workerProc {
	c.t.Helper()
	var ws []*workerProc
	for range n {
		ws = append(ws, c.startWorker(spec))
	}
	for _, w := range ws {
		w.awaitReady()
	}
	return ws
}

func (c *cluster) startWorker(spec workerSpec) *workerProc {
	c.t.Helper()
	c.mu.Lock()
	w := &workerProc{c: c, slot: len(c.workers), spec: spec, exited: make(chan string, 16), done: make(chan struct{})}
	c.workers = append(c.workers, w)
	c.mu.Unlock()
	w.httpAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(c.t))
	w.log = filepath.Join(c.logDir, fmt.Sprintf("worker-%d.log", w.slot))
	go w.supervise()
	c.t.Cleanup(w.stop)
	return w
}

func (w *workerProc) args() []string {
	s := w.spec
	a := []string{
		"--nats-url", w.c.nats.URL(), "--redis-url", w.c.redisURL, "--redis-wait-replicas", strconv.Itoa(s.waitReplicas),
		"--ort-lib", testenv.ORTLib(w.c.t), "--models", strings.Join(s.models, ","),
		"--http-addr", w.httpAddr, "--log-format", "text", "--log-level", "info",
		"--intra-op-threads", strconv.Itoa(max(s.threads, 1)),
		"--ack-wait", s.ackWait.String(), "--max-deliver", strconv.Itoa(s.maxDeliver),
		"--batch-size", strconv.Itoa(s.batchSize), "--batch-wait", s.batchWait.String(), "--metrics-poll", "1h",
		"--shutdown-timeout", s.shutdown.String(),
	}
	return a
}

// supervise runs the worker binary and restarts it, 100ms after it exits,
// until stop.
func (w *workerProc) supervise() {
	defer close(w.done)
	for {
		logf, err := os.OpenFile(w.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			w.exited <- "log: " + err.Error()
			return
		}
		cmd := exec.Command(bins.worker, w.args()...)
		cmd.Stdout, cmd.Stderr = logf, logf
		w.mu.Lock()
		if w.stopping {
			w.mu.Unlock()
			logf.Close()
			return
		}
		err = cmd.Start()
		if err == nil {
			w.cmd = cmd
			w.starts++
		}
		w.mu.Unlock()
		if err != nil {
			logf.Close()
			w.exited <- "start: " + err.Error()
			return
		}
		err = cmd.Wait()
		logf.Close()
		desc := "exit 0"
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			desc = ee.ProcessState.String()
		} else if err != nil {
			desc = err.Error()
		}
		w.mu.Lock()
		w.cmd = nil
		w.exits = append(w.exits, desc)
		stopping := w.stopping
		w.mu.Unlock()
		select {
		case w.exited <- desc:
		default:
		}
		if stopping {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signal sends sig to the running worker process and returns its pid.
func (w *workerProc) signal(sig syscall.Signal) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil || w.cmd.Process == nil {
		w.c.t.Fatalf("worker %d is not running", w.slot)
	}
	if err := w.cmd.Process.Signal(sig); err != nil {
		w.c.t.Fatalf("signal worker %d: %v", w.slot, err)
	}
	return w.cmd.Process.Pid
}

// awaitReady waits until the worker's readiness endpoint answers 200: it
// pulls from its consumers. An external process gives no other signal.
func (w *workerProc) awaitReady() {
	w.c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + w.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.c.t.Fatalf("worker %d not ready; log:\n%s", w.slot, tail(w.log, 40))
}

// stop SIGTERMs the worker and waits for the supervisor to end.
func (w *workerProc) stop() {
	w.mu.Lock()
	w.stopping = true
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(40 * time.Second):
		w.mu.Lock()
		if w.cmd != nil && w.cmd.Process != nil {
			_ = w.cmd.Process.Kill()
		}
		w.mu.Unlock()
		<-w.done
	}
}

func (c *cluster) dumpLogs() {
	if js, err := jetstreamOf(c.nc); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, name := range []string{"jobs-interactive-sentiment", "jobs-interactive-poison", "jobs-interactive-bench-ner"} {
			if cons, err := js.Consumer(ctx, job.StreamJobs, name); err == nil {
				if ci, err := cons.Info(ctx); err == nil {
					c.t.Logf("consumer %s: delivered %d, ack floor %d, ack pending %d, redelivered %d, waiting %d, pending %d",
						name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.NumPending)
				}
			}
		}
		cancel()
	}
	entries, _ := os.ReadDir(c.logDir)
	for _, e := range entries {
		c.t.Logf("--- %s (last lines)\n%s", e.Name(), tail(filepath.Join(c.logDir, e.Name()), 30))
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// replyCounter counts the records delivered to reply subjects, per job: an
// ingest instance's inboxes end in the job id.
type replyCounter struct {
	mu   sync.Mutex
	seen map[string][]job.Status
	// inbox is the inbox prefix each job's replies came to: one per ingest
	// instance (and per start of one).
	inbox map[string][]string
}

func newReplyCounter(t *testing.T, nc *nats.Conn) *replyCounter {
	t.Helper()
	r := &replyCounter{seen: map[string][]job.Status{}, inbox: map[string][]string{}}
	// Only the four-token inboxes ingest makes for results
	// (_INBOX.<mux>.<token>.<job id>): a wider subscription such as
	// _INBOX.> would also show interest in every worker's pull-request
	// inbox, and the server would keep delivering jobs to the pull requests
	// of a worker that has stopped.
	sub, err := nc.Subscribe("_INBOX.*.*.*", func(m *nats.Msg) {
		if !bytes.Contains(m.Data, []byte(`"status"`)) {
			return
		}
		var rec job.Record
		if json.Unmarshal(m.Data, &rec) != nil || rec.ID == "" || !strings.HasSuffix(m.Subject, "."+rec.ID) {
			return
		}
		r.mu.Lock()
		r.seen[rec.ID] = append(r.seen[rec.ID], rec.Status)
		r.inbox[rec.ID] = append(r.inbox[rec.ID], strings.TrimSuffix(m.Subject, "."+rec.ID))
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

// inboxes are the inbox prefixes job id's replies came to.
func (r *replyCounter) inboxes(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.inbox[id]...)
}

func (r *replyCounter) get(id string) []job.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]job.Status(nil), r.seen[id]...)
}

// doc is one document a scenario sends, with what must become of it.
type doc struct {
	task string
	text string
	// label is the expected top label of a text-classification result;
	// empty accepts any result.
	label string
	// dead means the job must end dead, with one of codes.
	dead  bool
	codes []string
}

// load is a stream of jobs sent through ingest, each with its own
// Idempotency-Key so that a retry after an error names the same job.
type load struct {
	c    *cluster
	name string

	mu       sync.Mutex
	accepted map[string]doc // job id → what it must become
	order    []string
	sent     int
	errs     map[string]int // answers that made the client retry, by kind
	unavail  answers        // when submissions were answered 503
	dupIDs   int            // resubmissions that named the same job
	done     chan struct{}
}

// send starts sending n documents, one every `every`, from four
// concurrent clients; each is retried until ingest accepts it. Submissions
// ask for wait=1ms, so that ingest gives each job a reply subject the test
// can count deliveries on.
func (c *cluster) send(name string, n int, every time.Duration, gen func(i int) doc) *load {
	l := &load{c: c, name: name, accepted: map[string]doc{}, errs: map[string]int{}, done: make(chan struct{})}
	idx := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				l.submit(fmt.Sprintf("%s-%d", name, i), gen(i))
			}
		}()
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for i := range n {
			idx <- i
			<-t.C
		}
		close(idx)
		wg.Wait()
		close(l.done)
	}()
	return l
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

func (l *load) submit(key string, d doc) {
	body, _ := json.Marshal(map[string]any{"task": d.task, "input": map[string]any{"text": d.text}})
	l.mu.Lock()
	l.sent++
	l.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		status, m, err := l.c.post("/v1/jobs?wait=1ms", l.c.token, key, body)
		if err == nil && (status == http.StatusAccepted || status == http.StatusOK) {
			id, _ := m["id"].(string)
			l.mu.Lock()
			if _, ok := l.accepted[id]; !ok {
				l.order = append(l.order, id)
			}
			l.accepted[id] = d
			l.mu.Unlock()
			return
		}
		kind := "error"
		if err == nil {
			kind = strconv.Itoa(status)
			if status < 500 && status != http.StatusTooManyRequests {
				l.c.t.Errorf("job %s refused: %d %v", key, status, m)
				return
			}
		}
		l.mu.Lock()
		l.errs[kind]++
		if kind == "503" {
			l.unavail = append(l.unavail, time.Now())
		}
		l.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	l.c.t.Errorf("job %s never accepted", key)
}

func (c *cluster) post(path, token, idemKey string, body []byte) (int, map[string]any, error) {
	return c.postAs(path, token, idemKey, "application/json", body)
}

// postAs is post with a content type.
func (c *cluster) postAs(path, token, idemKey, contentType string, body []byte) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	return c.do(req)
}

func (c *cluster) get(path, token string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, c.url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return c.do(req)
}

func (c *cluster) do(req *http.Request) (int, map[string]any, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m, nil
}

// answers are the times some answers (503s) came.
type answers []time.Time

// after describes the answers against faults injected at kills: for each
// fault, how many came before the next one and when, from the fault.
func (a answers) after(kills []time.Time) string {
	var out []string
	for k, from := range kills {
		var n int
		var first, last time.Duration
		for _, at := range a {
			if at.Before(from) || (k+1 < len(kills) && !at.Before(kills[k+1])) {
				continue
			}
			if d := at.Sub(from); n == 0 {
				first, last = d, d
			} else {
				last = d
			}
			n++
		}
		if n == 0 {
			out = append(out, "no 503s")
			continue
		}
		out = append(out, fmt.Sprintf("%d 503s from %s to %s", n, first.Round(time.Millisecond), last.Round(time.Millisecond)))
	}
	return strings.Join(out, ", ") + " after the kill"
}

// retries is how often a submission was answered with kind (a status code,
// or "error") and retried.
func (l *load) retries(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[kind]
}

// wait blocks until every document was sent and accepted.
func (l *load) wait() {
	select {
	case <-l.done:
	case <-time.After(5 * time.Minute):
		l.c.t.Fatal("load did not finish")
	}
}

// acceptedCount is how many jobs ingest has accepted so far.
func (l *load) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// awaitAccepted blocks until n jobs were accepted: faults are injected while
// work is really in flight.
func (l *load) awaitAccepted(n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for l.acceptedCount() < n {
		if time.Now().After(deadline) {
			l.c.t.Fatalf("only %d jobs accepted, waiting for %d", l.acceptedCount(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outcome is what a scenario checked.
type outcome struct {
	sent, accepted, final   int
	byStatus                map[job.Status]int
	deadBy                  map[string]int // dead jobs by error code
	maxInfer                time.Duration  // the longest model call a job was in
	redelivered             int            // jobs whose record counts more than one delivery
	dupReplies, dupReplyJob int            // extra deliveries on reply subjects, and the jobs that had them
	noReply                 int
	errs                    map[string]int
}

// verify waits until every accepted job is final in the result store, then
// checks each one: the expected final state, its result, and that every
// record delivered on its reply subject says the same final state.
func (l *load) verify(timeout time.Duration) outcome {
	t := l.c.t
	t.Helper()
	l.wait()
	l.mu.Lock()
	ids := append([]string(nil), l.order...)
	o := outcome{sent: l.sent, accepted: len(ids), byStatus: map[job.Status]int{}, deadBy: map[string]int{}, errs: l.errs}
	l.mu.Unlock()
	recs := map[string]*job.Record{}
	deadline := time.Now().Add(timeout)
	for {
		var pending []string
		for _, id := range ids {
			if r := recs[id]; r != nil && r.Status.Final() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			r, err := l.c.st.Get(ctx, "acme", id)
			cancel()
			if err == nil {
				recs[id] = r
			}
			if err != nil || !r.Status.Final() {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var desc []string
			for _, id := range pending[:min(len(pending), 10)] {
				st := "missing"
				if r := recs[id]; r != nil {
					st = fmt.Sprintf("%s (attempts %d)", r.Status, r.Attempts)
				}
				desc = append(desc, id+": "+st)
			}
			t.Fatalf("%s: %d of %d accepted jobs not final after %s: %s", l.name, len(pending), len(ids), timeout, strings.Join(desc, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Replies travel after the final state is stored; give the last ones a
	// moment (a reply is at least once but not guaranteed: a caller that
	// stopped waiting finds the result in the store).
	replyDeadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(replyDeadline) {
		missing := 0
		for _, id := range ids {
			if len(l.c.replies.get(id)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range ids {
		d := l.accepted[id]
		r := recs[id]
		o.final++
		o.byStatus[r.Status]++
		if r.Attempts > 1 {
			o.redelivered++
		}
		if r.Status == job.StatusDead && r.Error != nil {
			o.deadBy[r.Error.Code]++
		}
		if r.Timings != nil {
			o.maxInfer = max(o.maxInfer, time.Duration(r.Timings.Infer*float64(time.Millisecond)))
		}
		if d.dead {
			if r.Status != job.StatusDead || r.Error == nil || !contains(d.codes, r.Error.Code) {
				t.Errorf("%s: job %s: want dead with %v, got %s %+v", l.name, id, d.codes, r.Status, r.Error)
			}
		} else {
			if r.Status != job.StatusSucceeded {
				t.Errorf("%s: job %s: want succeeded, got %s %+v (attempts %d)", l.name, id, r.Status, r.Error, r.Attempts)
			} else if err := checkResult(r.Result, d.label); err != nil {
				t.Errorf("%s: job %s: %v", l.name, id, err)
			}
		}
		rs := l.c.replies.get(id)
		if len(rs) == 0 {
			o.noReply++
		}
		if len(rs) > 1 {
			o.dupReplies += len(rs) - 1
			o.dupReplyJob++
		}
		for _, s := range rs {
			if s != r.Status {
				t.Errorf("%s: job %s: reply said %s, store says %s: two final states", l.name, id, s, r.Status)
			}
		}
	}
	return o
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// checkResult checks a text-classification result: labels sorted by score
// summing to one, and the expected top label.
func checkResult(raw json.RawMessage, want string) error {
	var res struct {
		Labels []struct {
			Label string  `json:"label"`
			Score float64 `json:"score"`
		} `json:"labels"`
		Entities []json.RawMessage `json:"entities"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("result %s: %w", raw, err)
	}
	if res.Entities != nil {
		return nil // token classification: random weights, any entities
	}
	if len(res.Labels) == 0 {
		return fmt.Errorf("result without labels: %s", raw)
	}
	if want != "" && res.Labels[0].Label != want {
		return fmt.Errorf("top label %q, want %q: %s", res.Labels[0].Label, want, raw)
	}
	return nil
}

// report logs the scenario's line: jobs sent, accounted for, duplicates.
func (o outcome) report(t *testing.T, name string, extra string) {
	t.Helper()
	var sts []string
	for s, n := range o.byStatus {
		sts = append(sts, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(sts)
	var dead []string
	for k, n := range o.deadBy {
		dead = append(dead, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(dead)
	if len(dead) > 0 {
		sts = append(sts, "dead by "+strings.Join(dead, ", "))
	}
	var errs []string
	for k, n := range o.errs {
		errs = append(errs, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(errs)
	line := fmt.Sprintf("CHAOS %-16s sent %d, accepted %d, accounted for %d (%s), lost %d; duplicates: %d extra reply deliveries on %d jobs, %d jobs delivered more than once; replies missing %d; client retries [%s]",
		name, o.sent, o.accepted, o.final, strings.Join(sts, ", "), o.accepted-o.final, o.dupReplies, o.dupReplyJob,
		o.redelivered, o.noReply, strings.Join(errs, " "))
	if extra != "" {
		line += "; " + extra
	}
	reportLine(t, line)
}

// reportLine logs a CHAOS line and appends it to the report file.
func reportLine(t *testing.T, line string) {
	t.Helper()
	t.Log(line)
	if f := os.Getenv("JETINFER_CHAOS_REPORT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, line)
			fh.Close()
		}
	}
}

// streamMsgs is the number of messages in a stream.
func (c *cluster) streamMsgs(name string) uint64 {
	c.t.Helper()
	n, err := c.streamMsgsErr(name)
	if err != nil {
		c.t.Fatalf("stream %s: %v", name, err)
	}
	return n
}

// streamMsgsErr is streamMsgs that returns the error (a stream leader
// election in progress) instead of failing.
func (c *cluster) streamMsgsErr(name string) (uint64, error) {
	js, err := jetstreamOf(c.nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}

// awaitDrained waits until JOBS is empty: every job acknowledged or moved.
func (c *cluster) awaitDrained(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// Stream info may time out while the stream elects a leader.
		n, err := c.streamMsgsErr(job.StreamJobs)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JOBS still holds %d messages (%v)", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func slogText(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func jetstreamOf(nc *nats.Conn) (jetstream.JetStream, error) { return jetstream.New(nc) }

func execOutput(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// metric sums the samples of the worker's Prometheus metric whose name
// starts with prefix (a process that restarted counts from zero again).
func (w *workerProc) metric(prefix string) float64 {
	resp, err := httpClient.Get("http://" + w.httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// sumMetric sums a metric over workers.
func sumMetric(ws []*workerProc, prefix string) float64 {
	var s float64
	for _, w := range ws {
		s += max(w.metric(prefix), 0)
	}
	return s
}
