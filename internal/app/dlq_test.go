package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
)

// deadLetter pulls n jobs of task from the interactive lane, as a worker
// would, and dead-letters the one with id dead, its record marked dead; the
// others go back at once.
func (s *stack) deadLetter(t *testing.T, q *queue.Client, task, dead string, n int) {
	t.Helper()
	recs := store.New(s.redis.Client(t), time.Hour)
	ctx := context.Background()
	p, err := q.Pull(ctx, job.LaneInteractive, task, queue.ConsumerConfig{AckWait: 30 * time.Second, MaxDeliver: 2, MaxAckPending: 16}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for range n {
		m, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Job.ID == dead {
			if err := q.DeadLetter(ctx, m, job.CodeInvalidInput, "bad"); err != nil {
				t.Fatal(err)
			}
			if _, err := recs.MarkDead(ctx, &m.Job, &job.Error{Code: job.CodeInvalidInput, Message: "bad"}, 1, time.Now()); err != nil {
				t.Fatal(err)
			}
		} else if err := m.NakWithDelay(0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplayKeepsJobQueuedWhenLetterStays: a replay whose publish is
// confirmed has queued its job, even when the dead letter cannot then be
// deleted (here the DLQ stream denies deletes). The job's record must stay
// queued, the answer 202, and the job reach a worker; marking it dead
// again would hide a job that is about to run.
func TestReplayKeepsJobQueuedWhenLetterStays(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment")
	s.startIngest()
	admin := s.issue(t, "acme", auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeDLQAdmin)
	r := s.do("POST", "/v1/jobs", admin, map[string]any{"task": "sentiment", "input": map[string]any{"text": "Shares rose."}})
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	s.deadLetter(t, q, "sentiment", id, 1)

	ctx := context.Background()
	js, err := jetstream.New(s.nats.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, job.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlq.CachedInfo().Config
	cfg.DenyDelete = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	if r := s.do("POST", "/v1/dlq/"+id+"/replay", admin, nil); r.status != http.StatusAccepted {
		t.Fatalf("replay: %d %s, want 202", r.status, r.body)
	}
	if r := s.do("GET", "/v1/jobs/"+id, admin, nil); r.status != http.StatusOK || r.json(t)["status"] != "queued" {
		t.Fatalf("job after the replay: %d %s, want queued", r.status, r.body)
	}
	p, err := q.Pull(ctx, job.LaneInteractive, "sentiment", queue.ConsumerConfig{AckWait: 30 * time.Second, MaxDeliver: 2, MaxAckPending: 16}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	m, err := p.Next()
	if err != nil || m.Job.ID != id {
		t.Fatalf("a worker's next job after the replay: %v %v, want %s", m, err, id)
	}
	// The stale letter is still listed; replaying it again is refused
	// while its job lives.
	if r := s.do("POST", "/v1/dlq/"+id+"/replay", admin, nil); r.status != http.StatusConflict || errorOf(t, r)["code"] != "not_dead" {
		t.Fatalf("second replay: %d %s, want 409 not_dead", r.status, r.body)
	}
}
