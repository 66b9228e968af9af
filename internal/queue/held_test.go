package queue_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestHeldTenantConsumerOutlivesItsIdleThreshold pins what a worker's
// hold of a tenant (a tenant over its share of RESULTS, or RESULTS full)
// relies on: a tenant consumer that no worker pulls any more, but whose
// delivered jobs a worker keeps alive with InProgress, is not removed at
// its InactiveThreshold (TenantIdle), and pulling it again meanwhile (as a
// worker does when it releases the tenant) does not hand those jobs out a
// second time. nats-server counts every acknowledgement, InProgress
// included, as the consumer's activity. Once the heartbeats stop, the
// consumer is removed and, recreated, hands the jobs out again: without
// the heartbeats, the first part of this test would fail.
func TestHeldTenantConsumerOutlivesItsIdleThreshold(t *testing.T) {
	t.Parallel()
	q, ctx := newClient(t, testenv.StartNATS(t).Connect(t), 60*time.Second)
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "a2"} {
		j := &job.Job{ID: id, Tenant: "acme", Task: "sentiment", Lane: job.LaneBackfill, Backfill: "bf", DocID: id,
			Input: job.Input{Text: "x"}, Created: time.Now()}
		if _, err := q.Publish(ctx, j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	const idle = time.Second
	cfg := queue.ConsumerConfig{AckWait: 3 * time.Second, MaxDeliver: 5, MaxAckPending: 100, TenantIdle: idle}
	name := queue.TenantConsumerName(job.LaneBackfill, "sentiment", "acme")
	exists := func() bool {
		t.Helper()
		_, err := q.JetStream().Consumer(ctx, job.StreamJobs, name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	// pulled is what a fresh puller of acme's consumer hands out within
	// a few heartbeats.
	pulled := func(beat func()) []string {
		t.Helper()
		p, err := q.PullTenant(ctx, job.LaneBackfill, "sentiment", "acme", cfg, 8)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 8)
		go func() {
			for {
				m, err := p.Next()
				if err != nil {
					close(got)
					return
				}
				_ = m.Ack()
				got <- m.Job.ID
			}
		}()
		for range 8 {
			beat()
			time.Sleep(250 * time.Millisecond)
		}
		p.Stop()
		var ids []string
		for id := range got {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}

	p, err := q.PullTenant(ctx, job.LaneBackfill, "sentiment", "acme", cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	var held []*queue.Msg
	for range 2 {
		m, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, m)
	}
	// Held: no more pulls, the jobs kept alive as the worker's in-hand
	// heartbeat does, for well past the threshold and the 5s expiry of the
	// drained puller's last pull request.
	p.Drain()
	beat := func() {
		for _, m := range held {
			if err := m.InProgress(); err != nil {
				t.Errorf("in progress: %v", err)
			}
		}
	}
	for end := time.Now().Add(5*time.Second + 6*idle); time.Now().Before(end); {
		beat()
		time.Sleep(250 * time.Millisecond)
	}
	if !exists() {
		t.Fatalf("acme's consumer was removed after %s held with heartbeats; its held jobs would be handed out again", 5*time.Second+6*idle)
	}
	if ids := pulled(beat); len(ids) != 0 {
		t.Fatalf("pulled again while held, acme's consumer handed out %v; want nothing (they are in hand)", ids)
	}

	// Without heartbeats (a worker that died holding them), the server
	// removes the consumer once they are overdue and it is idle, and the
	// next worker gets them.
	deadline := time.Now().Add(20 * time.Second)
	for exists() {
		if time.Now().After(deadline) {
			t.Fatal("acme's consumer outlived its threshold with nothing kept alive")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ids := pulled(func() {}); !slices.Equal(ids, []string{"a1", "a2"}) {
		t.Fatalf("recreated, acme's consumer handed out %v; want a1 and a2 again", ids)
	}
}
