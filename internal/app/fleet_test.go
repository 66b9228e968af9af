package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// modelWorkers returns the live workers GET /v1/models lists for task, and
// the task's last_seen.
func (s *stack) modelWorkers(task string) ([]any, string) {
	s.t.Helper()
	r := s.do("GET", "/v1/models", s.token, nil)
	if r.status != http.StatusOK {
		s.t.Fatalf("GET /v1/models: %d %s", r.status, r.body)
	}
	for _, m := range r.json(s.t)["models"].([]any) {
		m := m.(map[string]any)
		if m["name"] == task {
			seen, _ := m["last_seen"].(string)
			return m["workers"].([]any), seen
		}
	}
	s.t.Fatalf("GET /v1/models lists no task %s: %s", task, r.body)
	return nil, ""
}

// awaitWorkers polls GET /v1/models until task has n live workers, within
// limit, and returns how long that took.
func (s *stack) awaitWorkers(task string, n int, limit time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		ws, _ := s.modelWorkers(task)
		if len(ws) == n {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			s.t.Fatalf("task %s has %d live workers after %s, want %d", task, len(ws), limit, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errorCode is the error code of an error response, "" for none.
func errorCode(t *testing.T, r response) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// TestFleetMembership runs the membership registry end to end: a worker
// is listed while it heartbeats, leaves at once when it stops gracefully,
// and a worker whose heartbeats stop is dropped after its TTL; while no
// worker serves a task, synchronous calls answer 503 no_workers at once
// and asynchronous work is accepted with a warning, and a backfill's
// progress says it is stalled.
func TestFleetMembership(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.BackfillStallAfter = 300 * time.Millisecond })
	// A TTL far longer than the test's waits: the worker's graceful stop,
	// not its TTL, must be what removes it.
	longTTL := func(c *config.Worker) { c.MemberTTL, c.Heartbeat = time.Minute, 100*time.Millisecond }
	stop := s.startWorkerTuned(longTTL)
	text := map[string]any{"text": "Shares surged after record profits."}

	workers, _ := s.modelWorkers("sentiment")
	if len(workers) != 1 {
		t.Fatalf("one worker runs; GET /v1/models lists %v", workers)
	}
	w := workers[0].(map[string]any)
	if w["id"] == "" || w["device"] != "cpu" || w["version"] == "" || w["last_seen"] == nil {
		t.Fatalf("worker entry %v", w)
	}
	r := s.do("GET", "/v1/fleet", s.token, nil)
	if fleet := r.json(t); len(fleet["workers"].([]any)) != 1 {
		t.Fatalf("GET /v1/fleet: %s", r.body)
	}
	if r := s.do("POST", "/v1/infer/sentiment", s.token, text); r.status != http.StatusOK {
		t.Fatalf("served: %d %s", r.status, r.body)
	}

	stop()
	if took := s.awaitWorkers("sentiment", 0, 5*time.Second); took > 2*time.Second {
		t.Fatalf("the stopped worker was listed %s more", took)
	}
	if _, seen := s.modelWorkers("sentiment"); seen == "" {
		t.Fatal("GET /v1/models forgot when the task's worker was last seen")
	}

	t.Run("no worker: sync calls answer 503 no_workers at once", func(t *testing.T) {
		start := time.Now()
		r := s.do("POST", "/v1/infer/sentiment", s.token, text)
		if r.status != http.StatusServiceUnavailable || errorCode(t, r) != "no_workers" || r.header.Get("Retry-After") == "" {
			t.Fatalf("got %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("503 no_workers took %s: it must not wait out the call's timeout", took)
		}
	})
	var queued []string
	t.Run("no worker: async jobs are accepted with a warning", func(t *testing.T) {
		// A ?wait= is waited out, and answers 202 with the warning.
		for path, limit := range map[string]time.Duration{"/v1/jobs": 2 * time.Second, "/v1/jobs?wait=300ms": 3 * time.Second} {
			start := time.Now()
			r := s.do("POST", path, s.token, map[string]any{"task": "sentiment", "input": text})
			m := r.json(t)
			if r.status != http.StatusAccepted || len(m["warnings"].([]any)) != 1 || !strings.Contains(r.header.Get("Warning"), "no live worker") {
				t.Fatalf("%s: %d %s (Warning %q)", path, r.status, r.body, r.header.Get("Warning"))
			}
			if took := time.Since(start); took > limit {
				t.Fatalf("%s took %s", path, took)
			}
			queued = append(queued, m["id"].(string))
		}
	})
	var bf string
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite, auth.ScopeJobsRead)
	t.Run("no worker: a backfill is accepted with a warning and stalls", func(t *testing.T) {
		r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment"})
		if r.status != http.StatusCreated || len(r.json(t)["warnings"].([]any)) != 1 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		bf = r.json(t)["id"].(string)
		if a := s.sendDocs(bf, tok, "application/x-ndjson", []byte(`{"id":"d1","text":"Profits rose."}`+"\n")); a.Accepted != 1 {
			t.Fatalf("documents: %+v", a)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := s.do("GET", "/v1/backfills/"+bf, tok, nil)
			if st, ok := r.json(t)["stalled"].(map[string]any); ok {
				if st["reason"] != "no_workers" || !strings.Contains(st["message"].(string), "no live worker") {
					t.Fatalf("stalled %v", st)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a backfill no worker serves is not reported stalled: %s", r.body)
			}
		}
		if r := s.do("POST", "/v1/backfills/"+bf+"/seal", tok, nil); r.status != http.StatusOK {
			t.Fatalf("seal: %d %s", r.status, r.body)
		}
	})

	// A worker starts: the queued work runs, the backfill completes and is
	// no longer stalled, and synchronous calls are served.
	s.startWorkerTuned(longTTL)
	for _, id := range queued {
		if final, _ := s.poll(id); final["status"] != "succeeded" {
			t.Fatalf("job %s: %v", id, final)
		}
	}
	if r := s.do("POST", "/v1/infer/sentiment", s.token, text); r.status != http.StatusOK {
		t.Fatalf("a worker serves again: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r := s.do("GET", "/v1/backfills/"+bf, tok, nil)
		m := r.json(t)
		if m["state"] == "completed" {
			if m["stalled"] != nil {
				t.Fatalf("a completed backfill is stalled: %s", r.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backfill did not complete: %s", r.body)
		}
	}

	t.Run("heartbeats stop: the worker is gone after its TTL", func(t *testing.T) {
		// A worker that crashed beat once and never again (nor left): its
		// entry is written as the worker writes it, then left to expire.
		q, err := queue.New(s.nats.Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		reg, err := q.Membership(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ttl := time.Second
		now := time.Now().UTC()
		if err := reg.Beat(ctx, job.Member{ID: "crashed", Host: "gone", Device: "cpu", Started: now, LastSeen: now,
			TTLMs: ttl.Milliseconds(), Tasks: []job.MemberTask{{Task: "sentiment", Version: "1"}}}); err != nil {
			t.Fatal(err)
		}
		s.awaitWorkers("sentiment", 2, 5*time.Second)
		// The server drops the entry itself: a fresh view of the
		// registry holds it no longer, live or not.
		view, err := reg.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			select {
			case <-view.Changed():
			case <-time.After(100 * time.Millisecond):
			}
			held := false
			for _, m := range view.Members() {
				held = held || m.ID == "crashed"
			}
			if !held {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the registry still holds a worker 10s after its last heartbeat")
			}
		}
		if gone := time.Since(now); gone < ttl {
			t.Fatalf("the entry went after %s, before its TTL of %s", gone, ttl)
		}
		s.awaitWorkers("sentiment", 1, time.Second)
	})
}

// TestBreakerOpensAndCloses runs synchronous calls against the poison
// model: calls that make it fail open the task's circuit breaker, which
// then answers 503 task_unavailable at once (asynchronous jobs are still
// queued), lets a probe through after its open time, and closes when the
// probe succeeds.
func TestBreakerOpensAndCloses(t *testing.T) {
	s := newStack(t)
	openFor := 500 * time.Millisecond
	s.startIngestWith(func(c *config.Ingest) {
		c.BreakerFailures, c.BreakerOpenFor, c.InferWait = 2, openFor, 10*time.Second
	})
	poison := testenv.PoisonModel(t)
	// One delivery: a poison document dies at its first failure, and its
	// caller hears of it at once instead of after the retries.
	s.startWorkerTuned(func(c *config.Worker) { c.Models, c.MaxDeliver = poison, 1 })
	bad := map[string]any{"text": "The " + testenv.PoisonWord + " report hit shares."}
	good := map[string]any{"text": "Shares surged after record profits."}
	state := func() float64 {
		return value(t, scrape(t, s.opsURL), `jetinfer_ingest_breaker_state{task="poison"}`)
	}

	for i := range 2 {
		r := s.do("POST", "/v1/infer/poison", s.token, bad)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("poison call %d: %d %s", i, r.status, r.body)
		}
	}
	start := time.Now()
	r := s.do("POST", "/v1/infer/poison", s.token, good)
	if r.status != http.StatusServiceUnavailable || errorCode(t, r) != "task_unavailable" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("after two failures in a row: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("task_unavailable took %s", took)
	}
	if st := state(); st != 2 {
		t.Fatalf("breaker state %v, want 2 (open)", st)
	}
	r = s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "poison", "input": good})
	if r.status != http.StatusAccepted {
		t.Fatalf("async job while the breaker is open: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)

	// Once openFor has passed, a call goes through as the probe; its
	// success closes the breaker.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = s.do("POST", "/v1/infer/poison", s.token, good)
		if r.status == http.StatusOK {
			break
		}
		if errorCode(t, r) != "task_unavailable" || time.Now().After(deadline) {
			t.Fatalf("probe: %d %s", r.status, r.body)
		}
	}
	if took := time.Since(start); took < openFor {
		t.Fatalf("the breaker let a call through %s after opening, before its %s", took, openFor)
	}
	if st := state(); st != 0 {
		t.Fatalf("breaker state %v after a successful probe, want 0 (closed)", st)
	}
	if r := s.do("POST", "/v1/infer/poison", s.token, good); r.status != http.StatusOK {
		t.Fatalf("closed breaker: %d %s", r.status, r.body)
	}
	if final, _ := s.poll(id); final["status"] != "succeeded" {
		t.Fatalf("the job queued while the breaker was open: %v", final)
	}
	r = s.do("GET", "/v1/fleet", s.token, nil)
	for _, task := range r.json(t)["tasks"].([]any) {
		if task := task.(map[string]any); task["name"] == "poison" && task["breaker"] != "closed" {
			t.Fatalf("GET /v1/fleet: %s", r.body)
		}
	}
}

// TestWaitForWorkers runs ingest with --wait-for-workers: a synchronous
// call of a task no live worker serves waits for one to join, and is
// answered by it.
func TestWaitForWorkers(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.WaitForWorkers = true })
	s.startWorker()() // the catalog now knows the task; no worker serves it
	s.awaitWorkers("sentiment", 0, 5*time.Second)

	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.url+"/v1/infer/sentiment?wait=60s", strings.NewReader(`{"text":"Profits rose."}`))
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		resp.Body.Close()
		done <- answer{status: resp.StatusCode}
	}()
	// Without the flag the answer would be 503 no_workers within
	// milliseconds: the call must still be waiting a while later.
	select {
	case a := <-done:
		t.Fatalf("the call did not wait for a worker: %+v", a)
	case <-time.After(500 * time.Millisecond):
	}
	s.startWorker()
	select {
	case a := <-done:
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("once a worker joined: %+v", a)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no answer after a worker joined")
	}
}
