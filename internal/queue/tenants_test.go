package queue_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestTenantSubjectsAndConsumers checks the shared lanes' topology on a
// real server: bulk jobs go to their tenant's subject, with a hint to the
// workers; the tenants with work are listed from the stream's subjects;
// each tenant's consumer hands out that tenant's jobs only; backlogs and
// the queued count sum the tenants, and the lane subject an older ingest
// published to still counts and is served.
func TestTenantSubjectsAndConsumers(t *testing.T) {
	q, ctx := newClient(t, testenv.StartNATS(t).Connect(t), 30*time.Second)
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	hints := make(chan struct{}, 16)
	stop, err := q.WatchTenants(job.LaneBulk, "sentiment", func() { hints <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	publish := func(id, tenant string, l job.Lane) {
		t.Helper()
		j := &job.Job{ID: id, Tenant: tenant, Task: "sentiment", Lane: l, Input: job.Input{Text: "x"}, Created: time.Now()}
		if _, err := q.Publish(ctx, j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	publish("a1", "acme", job.LaneBulk)
	publish("a2", "acme", job.LaneBulk)
	publish("g1", "globex", job.LaneBulk)
	publish("i1", "acme", job.LaneInteractive)
	select {
	case <-hints:
	case <-ctx.Done():
		t.Fatal("no hint that acme's bulk jobs arrived")
	}
	// A job queued on the lane subject by an ingest older than the tenant
	// subjects.
	data, _ := json.Marshal(job.Job{ID: "old", Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk, Input: job.Input{Text: "x"}})
	if _, err := q.JetStream().PublishMsg(ctx, &nats.Msg{Subject: job.Subject(job.LaneBulk, "sentiment"), Data: data}); err != nil {
		t.Fatal(err)
	}

	tenants, err := q.TenantsWaiting(ctx, job.LaneBulk, "sentiment")
	if err != nil || !slices.Equal(tenants, []string{"acme", "globex"}) {
		t.Fatalf("tenants with bulk work: %v, %v; want acme and globex", tenants, err)
	}
	queued, err := q.QueuedByLane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.LaneQueued{{Lane: job.LaneBulk, Task: "sentiment", Msgs: 4}, {Lane: job.LaneInteractive, Task: "sentiment", Msgs: 1}}
	if !slices.Equal(queued, want) {
		t.Errorf("queued by lane %+v, want %+v", queued, want)
	}

	cfg := queue.DefaultConsumerConfig()
	p, err := q.PullTenant(ctx, job.LaneBulk, "sentiment", "acme", cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	g, err := q.PullTenant(ctx, job.LaneBulk, "sentiment", "globex", cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	lane, err := q.Pull(ctx, job.LaneBulk, "sentiment", cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Stop()
	var got []string
	for range 2 {
		m, err := p.Next()
		if err != nil || m.DecodeErr != nil {
			t.Fatalf("next: %v %v", err, m.DecodeErr)
		}
		got = append(got, m.Job.Tenant+"/"+m.Job.ID)
	}
	if !slices.Equal(got, []string{"acme/a1", "acme/a2"}) {
		t.Errorf("acme's consumer handed out %v", got)
	}
	if m, err := lane.Next(); err != nil || m.Job.ID != "old" {
		t.Errorf("the lane consumer handed out %+v, %v; want the job queued on the lane subject", m, err)
	}
	cons, err := q.JetStream().Consumer(ctx, job.StreamJobs, queue.TenantConsumerName(job.LaneBulk, "sentiment", "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cons.CachedInfo().Config; c.InactiveThreshold != queue.DefaultTenantIdle || c.FilterSubject != "jobs.bulk.sentiment.acme" {
		t.Errorf("acme's consumer: idle threshold %s, filter %s", c.InactiveThreshold, c.FilterSubject)
	}
	// globex's job waits, acme's two and the old one are in hand.
	b, err := q.ConsumerBacklog(ctx, job.LaneBulk, "sentiment")
	if err != nil || b.Pending+uint64(b.AckPending) != 4 || b.AckPending < 3 {
		t.Errorf("bulk backlog over its consumers %+v, %v; want 4 jobs, at least 3 in hand", b, err)
	}
}
