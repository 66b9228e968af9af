package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// TestTenantOverResultsShareIsHeldAlone: a tenant that holds its share of
// RESULTS (here a share of one byte, set on its record, so that its first
// result fills it) has its next backfill documents held and its backfill
// consumer stopped, while another tenant's documents flow; once its
// exports purge (the account re-derived to nothing held), its held
// documents' results are published and its consumer is pulled again.
func TestTenantOverResultsShareIsHeldAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client(t)
	st := store.New(rdb, time.Hour)
	if _, err := tenant.NewStore(rdb).Create(ctx, tenant.Tenant{ID: "hog", Enabled: true, ResultsMaxBytes: 1}); err != nil {
		t.Fatal(err)
	}
	// Not cached, so that each batch sees the last finish.
	shares := tenant.NewResultShares(tenant.NewStore(rdb), st.ResultsUsage,
		func(context.Context) (int64, error) { return 1 << 30, nil }).WithTTL(time.Nanosecond)
	q := newFairQueue()
	b := startOn(t, worker.Config{BatchSize: 2, TenantScan: 5 * time.Millisecond, ResultShares: shares}, false, q.fakeQueue, q, rdb)
	bs := backfill.NewStore(rdb)
	bfs := map[string]*backfill.Backfill{}
	for _, tn := range []string{"hog", "fair"} {
		bf := &backfill.Backfill{Tenant: tn, Task: task}
		if err := bs.Create(ctx, bf, time.Now()); err != nil {
			t.Fatal(err)
		}
		bfs[tn] = bf
	}
	push := func(tn string, i int) string {
		j := backfillDoc(tn, bfs[tn].ID, i)
		q.pushTenant(j, job.ResultsSubject(bfs[tn].ID))
		return j.ID
	}
	results := func(tn string) int {
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		n := 0
		for _, d := range b.q.results {
			if d.Subject == job.ResultsSubject(bfs[tn].ID) {
				n++
			}
		}
		return n
	}

	// hog's first result fills its share.
	first := push("hog", 0)
	if got := b.settled(t, 1); got[first].kind != "ack" {
		t.Fatalf("settled %+v", got)
	}
	if used, err := st.ResultsUsage(ctx, "hog"); err != nil || used <= 0 {
		t.Fatalf("hog's RESULTS use after its first result: %d %v", used, err)
	}
	hog := map[string]bool{}
	for i := 1; i <= 6; i++ {
		hog[push("hog", i)] = true
	}
	// hog's consumer is stopped once a held document shows it is over.
	waitFor(t, b.ctx, q.drained, tenantKey(job.LaneBackfill, "hog"))
	fair := map[string]bool{}
	for i := range 6 {
		fair[push("fair", i)] = true
	}
	got := b.settled(t, len(fair))
	for id, s := range got {
		if !fair[id] || s.kind != "ack" {
			t.Fatalf("settled %s (%s) while hog (%s) is over its share; want only fair's documents, acknowledged; results hog %d fair %d", id, s.kind, bfs["hog"].ID, results("hog"), results("fair"))
		}
	}
	if n := results("hog"); n != 1 {
		t.Fatalf("hog has %d results in RESULTS, want 1: over its share, its documents are held", n)
	}
	if n := results("fair"); n != 6 {
		t.Fatalf("fair has %d results, want 6", n)
	}

	// hog's export purges everything, and its share is raised (with one
	// byte, each batch of its results would fill it again): its held
	// documents' results are taken, and its consumer is pulled again.
	if _, err := st.ResultsLeft(ctx, "hog", bfs["hog"].ID, 0); err != nil {
		t.Fatal(err)
	}
	patch := int64(1 << 20)
	if _, err := tenant.NewStore(rdb).Update(ctx, "hog", tenant.Patch{ResultsMaxBytes: &patch}); err != nil {
		t.Fatal(err)
	}
	got = b.settled(t, len(hog))
	for id, s := range got {
		if !hog[id] || s.kind != "ack" {
			t.Fatalf("settled %s (%s); want hog's held documents, acknowledged", id, s.kind)
		}
	}
	// Its consumer is pulled again: a document queued now flows.
	last := push("hog", 7)
	if got := b.settled(t, 1); got[last].kind != "ack" {
		t.Fatalf("settled %+v; want hog's new document acknowledged", got)
	}
	if n := results("hog"); n != 8 {
		t.Fatalf("hog has %d results, want 8", n)
	}
	q.tmu.Lock()
	pulls := len(q.tpulls[tenantKey(job.LaneBackfill, "hog")])
	q.tmu.Unlock()
	if pulls < 2 {
		t.Errorf("hog's consumer was pulled %d times; want it pulled again after its hold", pulls)
	}
}
