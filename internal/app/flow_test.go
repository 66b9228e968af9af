package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
)

// streamMsgs is how many messages the JOBS stream holds.
func streamMsgs(t *testing.T, q *queue.Client) uint64 {
	t.Helper()
	st, err := q.JetStream().Stream(context.Background(), job.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// jobKeys lists the tenant's job records in Redis.
func (s *stack) jobKeys(tenantID string) []string {
	s.t.Helper()
	keys, err := s.redis.Client(s.t).Keys(context.Background(), store.Key(tenantID, "*")).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	return keys
}

// eventually polls cond until it holds or 20s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFullQueuePushesBack fills a small JOBS stream: ingest answers 503
// queue_full with Retry-After, enqueues nothing, leaves no record behind,
// and accepts the same Idempotency-Key once there is room again.
func TestFullQueuePushesBack(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment")
	s.startIngestWith(func(c *config.Ingest) { c.JobsMaxMsgs = 2 })
	c := newContract(t, s.url)
	submit := func(text string) map[string]any {
		return map[string]any{"task": "sentiment", "input": map[string]any{"text": text}}
	}
	var ids []string
	for _, text := range []string{"Profits rose.", "Losses widened."} {
		r := c.expect(s, http.StatusAccepted, exchange{method: "POST", path: "/v1/jobs", token: s.token, body: submit(text)})
		ids = append(ids, r.json(t)["id"].(string))
	}
	key := map[string]string{"Idempotency-Key": "retry-me"}
	for _, x := range []exchange{
		{method: "POST", path: "/v1/jobs", token: s.token, body: submit("Sales were flat."), header: key},
		{method: "POST", path: "/v1/jobs?wait=5s", token: s.token, body: submit("Sales were flat.")},
		{method: "POST", path: "/v1/infer/sentiment", token: s.token, body: map[string]any{"text": "Sales were flat."}},
	} {
		r := c.expect(s, http.StatusServiceUnavailable, x)
		e := errorOf(t, r)
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if e["code"] != "queue_full" || err != nil || ra < 1 || e["retry_after_s"] != float64(ra) {
			t.Fatalf("%s %s: error %v, Retry-After %q", x.method, x.path, e, r.header.Get("Retry-After"))
		}
	}
	if n := streamMsgs(t, q); n != 2 {
		t.Fatalf("JOBS holds %d messages, want 2", n)
	}
	if keys := s.jobKeys("acme"); len(keys) != 2 {
		t.Fatalf("records after the refusals: %v", keys)
	}

	// Room again: the refused request, retried with its key, is a new job.
	s.startWorker()
	for _, id := range ids {
		if final, _ := s.poll(id); final["status"] != "succeeded" {
			t.Fatalf("job %s: %v", id, final)
		}
	}
	eventually(t, "the stream to drain", func() bool { return streamMsgs(t, q) == 0 })
	r := c.expect(s, http.StatusOK, exchange{method: "POST", path: "/v1/jobs?wait=20s", token: s.token, body: submit("Sales were flat."), header: key})
	if r.json(t)["status"] != "succeeded" {
		t.Fatalf("retried job: %s", r.body)
	}
}

// TestBatchIntoFullQueue submits a batch larger than the room left in JOBS:
// the jobs that fit are queued, the others are answered with queue_full and
// leave no record behind, a batch with no room at all is refused as a whole,
// and the first batch retried with its key once there is room queues the
// rest under the same ids.
func TestBatchIntoFullQueue(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment")
	s.startIngestWith(func(c *config.Ingest) { c.JobsMaxMsgs = 3 })
	c := newContract(t, s.url)
	var jobs []any
	for _, text := range []string{"Profits rose.", "Losses widened.", "Sales were flat.", "Shares fell.", "Debt was cut."} {
		jobs = append(jobs, map[string]any{"task": "sentiment", "input": map[string]any{"text": text}})
	}
	key := map[string]string{"Idempotency-Key": "five"}
	decode := func(r response) ingest.BatchResponse {
		var br ingest.BatchResponse
		if err := json.Unmarshal(r.body, &br); err != nil {
			t.Fatal(err)
		}
		return br
	}
	first := decode(c.expect(s, http.StatusAccepted, exchange{method: "POST", path: "/v1/jobs/batch", token: s.token, body: map[string]any{"jobs": jobs}, header: key}))
	if first.Accepted != 3 || first.Failed != 2 {
		t.Fatalf("accepted %d, failed %d; want 3 and 2", first.Accepted, first.Failed)
	}
	queued := map[int]string{}
	for i, it := range first.Jobs {
		switch {
		case it.Job != nil:
			queued[i] = it.Job.ID
		case it.Error.Code != "queue_full" || it.Error.RetryAfterS < 1:
			t.Fatalf("job %d: %+v", i, it.Error)
		}
	}
	if n := streamMsgs(t, q); n != 3 {
		t.Fatalf("JOBS holds %d messages, want 3", n)
	}
	if keys := s.jobKeys("acme"); len(keys) != 3 {
		t.Fatalf("records: %v", keys)
	}
	r := c.expect(s, http.StatusServiceUnavailable, exchange{method: "POST", path: "/v1/jobs/batch", token: s.token, body: map[string]any{"jobs": jobs[:2]}})
	if e := errorOf(t, r); e["code"] != "queue_full" || r.header.Get("Retry-After") == "" {
		t.Fatalf("no room: %s", r.body)
	}

	s.startWorker()
	eventually(t, "the stream to drain", func() bool { return streamMsgs(t, q) == 0 })
	again := decode(c.expect(s, http.StatusAccepted, exchange{method: "POST", path: "/v1/jobs/batch", token: s.token, body: map[string]any{"jobs": jobs}, header: key}))
	if again.Accepted != 5 {
		t.Fatalf("retry: %+v", again)
	}
	for i, it := range again.Jobs {
		if id, ok := queued[i]; ok && it.Job.ID != id {
			t.Fatalf("job %d: id %s on retry, %s before", i, it.Job.ID, id)
		}
		if final, _ := s.poll(it.Job.ID); final["status"] != "succeeded" {
			t.Fatalf("job %d: %v", i, final)
		}
	}
}

// TestCancel cancels a queued job that a caller waits for: the worker skips
// it, the record stays canceled, and the waiting caller gets the canceled
// job. Running and finished jobs answer 409.
func TestCancel(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment")
	s.startIngest()
	submit := func(text string) map[string]any {
		return map[string]any{"task": "sentiment", "input": map[string]any{"text": text}}
	}

	r := s.do("POST", "/v1/jobs", s.token, submit("Profits rose."))
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	keep := r.json(t)["id"].(string)

	// A caller waits for a job that is then canceled.
	waited := make(chan response, 1)
	go func() {
		waited <- s.do("POST", "/v1/jobs?wait=30s", s.token, submit("The bank collapsed."))
	}()
	eventually(t, "the waited job to be queued", func() bool { return streamMsgs(t, q) == 2 })
	var canceled string
	for _, k := range s.jobKeys("acme") {
		if id := k[len(store.Key("acme", "")):]; id != keep {
			canceled = id
		}
	}
	r = s.do("DELETE", "/v1/jobs/"+canceled, s.token, nil)
	if r.status != http.StatusOK || r.json(t)["status"] != "canceled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/jobs/"+canceled, s.token, nil); r.status != http.StatusOK {
		t.Fatalf("canceling again: %d %s", r.status, r.body)
	}

	s.startWorker()
	var w response
	select {
	case w = <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting caller got no answer")
	}
	if w.status != http.StatusOK || w.json(t)["status"] != "canceled" || w.json(t)["id"] != canceled {
		t.Fatalf("waiting caller: %d %s", w.status, w.body)
	}
	if final, _ := s.poll(keep); final["status"] != "succeeded" {
		t.Fatalf("the other job: %v", final)
	}
	// The worker skipped the canceled job and acknowledged it.
	eventually(t, "the stream to drain", func() bool { return streamMsgs(t, q) == 0 })
	m, _ := s.poll(canceled)
	if m["status"] != "canceled" || m["result"] != nil || m["started_at"] != nil {
		t.Fatalf("canceled job after the worker ran: %v", m)
	}

	// Finished and running jobs can no longer be canceled.
	r = s.do("DELETE", "/v1/jobs/"+keep, s.token, nil)
	if r.status != http.StatusConflict || errorOf(t, r)["code"] != "not_cancelable" {
		t.Fatalf("cancel a finished job: %d %s", r.status, r.body)
	}
	st := store.New(s.redis.Client(t), time.Hour)
	running := &job.Job{ID: "running-1", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive, Created: time.Now()}
	if _, err := st.Create(context.Background(), running, "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Start(context.Background(), []*job.Job{running}, []int{1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = s.do("DELETE", "/v1/jobs/running-1", s.token, nil)
	if r.status != http.StatusConflict || errorOf(t, r)["code"] != "not_cancelable" {
		t.Fatalf("cancel a running job: %d %s", r.status, r.body)
	}
}
