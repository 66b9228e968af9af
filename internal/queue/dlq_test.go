package queue_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// TestDLQByTenant dead-letters jobs of two tenants, one a backfill document
// whose id is no subject token, beside a letter stored under the older
// dlq.<task> subject, and checks that listing and finding see exactly the
// tenant's letters, old and new, page by page.
func TestDLQByTenant(t *testing.T) {
	_, q, _, ctx := moverEnv(t)
	jobs := []*job.Job{
		{ID: "a1", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive},
		{ID: "g1", Tenant: "globex", Task: "sentiment", Lane: job.LaneInteractive},
		{ID: "bf1:doc.with spaces>*", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive, Backfill: "bf1", DocID: "doc.with spaces>*"},
	}
	for _, j := range jobs {
		j.Input, j.Created = job.Input{Text: "x"}, time.Now().UTC()
		if _, err := q.Publish(ctx, j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := q.Pull(ctx, job.LaneInteractive, "sentiment", queue.ConsumerConfig{AckWait: 5 * time.Second, MaxDeliver: 2, MaxAckPending: 16}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for range jobs {
		m, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := q.DeadLetter(ctx, m, job.CodeInvalidInput, "bad"); err != nil {
			t.Fatal(err)
		}
	}
	// A dead letter as earlier versions stored it: subject dlq.<task>.
	old := &nats.Msg{Subject: "dlq.sentiment", Data: []byte(`{"id":"old1","tenant":"acme","task":"sentiment"}`), Header: nats.Header{}}
	old.Header.Set(queue.HeaderJobID, "old1")
	old.Header.Set(job.HeaderTenant, "acme")
	old.Header.Set(job.HeaderError, "model_error: old")
	if _, err := q.JetStream().PublishMsg(ctx, old); err != nil {
		t.Fatal(err)
	}

	var listed []string
	after := uint64(0)
	for pages := 0; ; pages++ {
		page, err := q.ListDead(ctx, "acme", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			listed = append(listed, e.JobID)
		}
		if page.Next == 0 {
			break
		}
		if pages > 3 {
			t.Fatalf("paging does not end: %+v", page)
		}
		after = page.Next
	}
	want := []string{"a1", "bf1:doc.with spaces>*", "old1"}
	if len(listed) != len(want) || listed[0] != want[0] || listed[1] != want[1] || listed[2] != want[2] {
		t.Fatalf("acme's dead letters: %q, want %q", listed, want)
	}
	if page, err := q.ListDead(ctx, "globex", 0, 10); err != nil || len(page.Entries) != 1 || page.Entries[0].JobID != "g1" {
		t.Fatalf("globex's dead letters: %+v %v", page, err)
	}
	if page, err := q.ListDead(ctx, "initech", 0, 10); err != nil || len(page.Entries) != 0 {
		t.Fatalf("a tenant without dead letters: %+v %v", page, err)
	}
	for _, id := range want {
		e, err := q.FindDead(ctx, "acme", id)
		if err != nil || e.JobID != id || e.Tenant != "acme" {
			t.Fatalf("find %q: %+v %v", id, e, err)
		}
		if id != "old1" {
			if j, err := q.DeadJob(ctx, e); err != nil || j.ID != id {
				t.Fatalf("dead job %q: %+v %v", id, j, err)
			}
		}
	}
	for _, c := range [][2]string{{"globex", "a1"}, {"acme", "g1"}, {"acme", "nope"}} {
		if _, err := q.FindDead(ctx, c[0], c[1]); !errors.Is(err, queue.ErrDeadNotFound) {
			t.Fatalf("%s finding %s: %v, want not found", c[0], c[1], err)
		}
	}
}
