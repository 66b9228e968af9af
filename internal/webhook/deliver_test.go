package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

const tenant = "acme"

// receiver is reference/webhook_receiver.mjs: a node process that verifies
// every delivery with the standardwebhooks library.
type receiver struct {
	t    *testing.T
	port int
}

func startReceiver(t *testing.T, port int) *receiver {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required: %v", err)
	}
	ref := filepath.Join(testenv.RepoRoot(), "reference")
	cmd := exec.Command("node", filepath.Join(ref, "webhook_receiver.mjs"), strconv.Itoa(port))
	cmd.Dir = ref
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("receiver did not start (run `make deps` for reference/node_modules): %v\n%s", err, stderr.String())
	}
	p, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("receiver said %q", line)
	}
	return &receiver{t: t, port: p}
}

func (r *receiver) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", r.port, path) }

// configure sets how the receiver answers on path (see the script).
func (r *receiver) configure(path string, cfg map[string]any) {
	r.t.Helper()
	cfg["path"] = path
	body, _ := json.Marshal(cfg)
	resp, err := http.Post(r.url("/_config"), "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
}

type received struct {
	Attempts   int `json:"attempts"`
	Invalid    int `json:"invalid"`
	Duplicates int `json:"duplicates"`
	Events     []struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
}

func (r *receiver) state(path string) received {
	r.t.Helper()
	resp, err := http.Get(r.url("/_state"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var all map[string]received
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		r.t.Fatal(err)
	}
	return all[path]
}

// eventually polls cond: the receiver is another process, with nothing
// to wait on but its state.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

type fixture struct {
	q      *queue.Client
	reg    *webhook.Registry
	pub    *webhook.Publisher
	rcv    *receiver
	reader *sdkmetric.ManualReader
}

func setup(t *testing.T, retry webhook.RetryPolicy) *fixture {
	t.Helper()
	n := testenv.StartNATS(t)
	rdb := testenv.StartRedis(t).Client(t)
	q, err := queue.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	targets := webhook.Targets{AllowPrivate: true, AllowHTTP: true}
	reg := webhook.NewRegistry(rdb, targets)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	d := webhook.NewDeliverer(webhook.Config{Targets: targets, Timeout: 3 * time.Second, PerEndpoint: 2, Concurrency: 16, Retry: retry},
		q, reg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), meter)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("deliverer: %v", err)
		}
	})
	return &fixture{q: q, reg: reg, pub: webhook.NewPublisher(q, nil, meter), rcv: startReceiver(t, 0), reader: reader}
}

// endpoint registers url for the tenant and tells the receiver its secret.
func (f *fixture) endpoint(t *testing.T, rcv *receiver, path string, cfg map[string]any) webhook.Endpoint {
	t.Helper()
	ep, err := f.reg.Register(context.Background(), tenant, rcv.url(path), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg["secret"] = ep.Secret
	rcv.configure(path, cfg)
	return ep
}

// finish publishes the event of job id succeeding, as a worker does.
func (f *fixture) finish(t *testing.T, ep webhook.Endpoint, id string) string {
	t.Helper()
	j := &job.Job{ID: id, Tenant: tenant, Task: "sentiment", Lane: job.LaneInteractive, Webhook: ep.ID}
	rec := &job.Record{ID: id, Task: "sentiment", Status: job.StatusSucceeded, Result: json.RawMessage(`[{"label":"positive","score":0.9}]`),
		Finished: time.Now()}
	if err := f.pub.Publish(context.Background(), []*job.Job{j}, []*job.Record{rec}); err != nil {
		t.Fatal(err)
	}
	return webhook.EventID(id, job.StatusSucceeded)
}

// attempts sums jetinfer.webhook.attempts for endpoint and outcome.
func (f *fixture) attempts(t *testing.T, endpoint, outcome string) int64 {
	t.Helper()
	return f.counted(t, "jetinfer.webhook.attempts", attribute.String("tenant", tenant), attribute.String("endpoint", endpoint),
		attribute.String("outcome", outcome))
}

// counted sums the counter name's points with exactly the attributes kvs.
func (f *fixture) counted(t *testing.T, name string, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.NewSet(kvs...)
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Equals(&want) {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func (f *fixture) deadLetter(t *testing.T, webhookID string) *queue.DeadEntry {
	t.Helper()
	page, err := f.q.ListDead(context.Background(), tenant, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Entries {
		if e.WebhookID == webhookID {
			return &e
		}
	}
	return nil
}

func TestDeliveries(t *testing.T) {
	f := setup(t, webhook.RetryPolicy{Base: 100 * time.Millisecond, Max: 300 * time.Millisecond, MaxAge: 3 * time.Second})

	t.Run("verified once by id through failed answers", func(t *testing.T) {
		ep := f.endpoint(t, f.rcv, "/flaky", map[string]any{"fail_first": 2})
		id := f.finish(t, ep, "job1")
		eventually(t, 5*time.Second, "delivered after two 503s", func() bool { return f.attempts(t, ep.ID, "delivered") == 1 })
		st := f.rcv.state("/flaky")
		if st.Invalid != 0 || st.Attempts != 3 || st.Duplicates != 2 || len(st.Events) != 1 {
			t.Fatalf("receiver saw %+v; want 3 verified attempts, 2 of them duplicates, 1 event", st)
		}
		ev := st.Events[0]
		var rec job.Record
		if err := json.Unmarshal(ev.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if ev.ID != id || ev.Type != "job.succeeded" || rec.ID != "job1" || rec.Status != job.StatusSucceeded || len(rec.Result) == 0 {
			t.Fatalf("event %+v", ev)
		}
		if n := f.attempts(t, ep.ID, "failed"); n != 2 {
			t.Fatalf("failed attempts metric %d, want 2", n)
		}
	})

	t.Run("receiver down, then up", func(t *testing.T) {
		port := testenv.FreePort(t)
		down := &receiver{t: t, port: port}
		ep, err := f.reg.Register(context.Background(), tenant, down.url("/later"), "")
		if err != nil {
			t.Fatal(err)
		}
		id := f.finish(t, ep, "job2")
		eventually(t, 3*time.Second, "attempts on a closed port", func() bool { return f.attempts(t, ep.ID, "failed") >= 2 })
		up := startReceiver(t, port)
		up.configure("/later", map[string]any{"secret": ep.Secret})
		eventually(t, 3*time.Second, "delivered once the receiver is up", func() bool { return len(up.state("/later").Events) == 1 })
		if st := up.state("/later"); st.Events[0].ID != id || st.Invalid != 0 {
			t.Fatalf("receiver saw %+v", st)
		}
	})

	t.Run("410 dead-letters at once; replay delivers the same id", func(t *testing.T) {
		ep := f.endpoint(t, f.rcv, "/gone", map[string]any{"fail_status": 410})
		id := f.finish(t, ep, "job3")
		var e *queue.DeadEntry
		eventually(t, 3*time.Second, "dead letter of a 410", func() bool { e = f.deadLetter(t, id); return e != nil })
		if e.Kind != queue.DeadKindWebhook || e.Code != "endpoint_refused" || e.JobID != "job3" || e.Endpoint != ep.ID ||
			!strings.Contains(e.Reason, "410") {
			t.Fatalf("dead letter %+v", e)
		}
		if n := f.attempts(t, ep.ID, "gone"); n != 1 {
			t.Fatalf("%d attempts before the dead letter, want 1", n)
		}
		f.rcv.configure("/gone", map[string]any{})
		found, err := f.q.FindDead(context.Background(), tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.q.ReplayWebhook(context.Background(), found); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "replayed event delivered", func() bool { return len(f.rcv.state("/gone").Events) == 1 })
		if st := f.rcv.state("/gone"); st.Events[0].ID != id {
			t.Fatalf("replay delivered %+v", st)
		}
		if f.deadLetter(t, id) != nil {
			t.Fatal("the replayed dead letter is still listed")
		}
	})

	t.Run("a hanging endpoint holds up no other", func(t *testing.T) {
		slow := f.endpoint(t, f.rcv, "/slow", map[string]any{"hang_ms": 5000})
		fast := f.endpoint(t, f.rcv, "/fast", map[string]any{})
		for i := range 20 {
			f.finish(t, slow, "slow"+strconv.Itoa(i))
		}
		eventually(t, 2*time.Second, "slow endpoint busy", func() bool { return f.rcv.state("/slow").Attempts >= 2 })
		start := time.Now()
		f.finish(t, fast, "fast1")
		eventually(t, 5*time.Second, "fast endpoint served", func() bool { return len(f.rcv.state("/fast").Events) == 1 })
		// Behind the slow endpoint's requests it would wait out their
		// 3s timeout.
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Fatalf("fast endpoint waited %s behind the slow one", took)
		}
		if n := f.rcv.state("/slow").Attempts; n > 2 {
			t.Fatalf("slow endpoint got %d requests at once, more than its 2", n)
		}
	})

	t.Run("gives up after the retry budget", func(t *testing.T) {
		ep := f.endpoint(t, f.rcv, "/broken", map[string]any{"fail_status": 500})
		id := f.finish(t, ep, "job4")
		var e *queue.DeadEntry
		eventually(t, 6*time.Second, "dead letter after MaxAge", func() bool { e = f.deadLetter(t, id); return e != nil })
		if e.Code != "undeliverable" || !strings.Contains(e.Reason, "500") || e.Attempts < 3 {
			t.Fatalf("dead letter %+v; want undeliverable after several 500s", e)
		}
	})

	t.Run("deleted endpoint", func(t *testing.T) {
		ep := f.endpoint(t, f.rcv, "/deleted", map[string]any{})
		if err := f.reg.Delete(context.Background(), tenant, ep.ID); err != nil {
			t.Fatal(err)
		}
		id := f.finish(t, ep, "job5")
		eventually(t, 3*time.Second, "dead letter of a deleted endpoint", func() bool {
			e := f.deadLetter(t, id)
			return e != nil && e.Code == "endpoint_deleted"
		})
		if st := f.rcv.state("/deleted"); st.Attempts != 0 {
			t.Fatalf("a deleted endpoint was called: %+v", st)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
