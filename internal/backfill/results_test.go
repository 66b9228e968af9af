package backfill_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestResultsAccountPerTenant drives the RESULTS account through the
// scripts workers and ingest use: a document counted final adds its
// result's bytes once (a redelivery adds nothing), each tenant's usage is
// its own, a purge re-derives a backfill's bytes from what the stream
// still holds, nothing goes below zero, and a backfill whose hash expired
// (its results aged out with it) drops out of the usage.
func TestResultsAccountPerTenant(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	bs, st := backfill.NewStore(rdb), store.New(rdb, time.Hour)
	now := time.Now()
	mk := func(tenant string) *backfill.Backfill {
		t.Helper()
		b := &backfill.Backfill{Tenant: tenant, Task: "sentiment"}
		if err := bs.Create(ctx, b, now); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2, other := mk("acme"), mk("acme"), mk("globex")
	fin := func(b *backfill.Backfill, doc string, bytes int64) {
		t.Helper()
		if _, err := st.Finish(ctx, []store.Final{{Job: docJob(b, doc), Status: job.StatusSucceeded, ResultBytes: bytes}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(tenant string, want int64) {
		t.Helper()
		got, err := st.ResultsUsage(ctx, tenant)
		if err != nil || got != want {
			t.Fatalf("usage of %s = %d (%v), want %d", tenant, got, err, want)
		}
	}
	left := func(b *backfill.Backfill, n uint64, wantFreed int64) {
		t.Helper()
		got, err := st.ResultsLeft(ctx, b.Tenant, b.ID, n)
		if err != nil || got != wantFreed {
			t.Fatalf("ResultsLeft(%s, %d) freed %d (%v), want %d", b.ID, n, got, err, wantFreed)
		}
	}
	usage("acme", 0)
	fin(b1, "d1", 100)
	fin(b1, "d2", 200)
	fin(b1, "d1", 100) // redelivered: final already, not counted again
	fin(b2, "d1", 50)
	fin(b2, "d2", 0) // no result published: nothing counted
	fin(other, "d1", 30)
	usage("acme", 350)
	usage("globex", 30)

	// A purge that leaves one of b1's two results frees half its bytes;
	// one that leaves none frees the rest.
	left(b1, 1, 150)
	usage("acme", 200)
	left(b1, 3, 0) // more held than counted (a result not counted yet): no change
	left(b1, 0, 150)
	usage("acme", 50)
	left(b1, 0, 0) // never below zero
	usage("acme", 50)
	if n, _ := rdb.SCard(ctx, store.ResultsHeldKey("acme")).Result(); n != 1 {
		t.Fatalf("acme's set of backfills holding results has %d members, want 1 (b2)", n)
	}

	// b2's hash expires (its results aged out of RESULTS with it): the
	// usage no longer counts it, and the set lets it go.
	if err := rdb.Del(ctx, store.BackfillKey("acme", b2.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	usage("acme", 0)
	if n, _ := rdb.SCard(ctx, store.ResultsHeldKey("acme")).Result(); n != 0 {
		t.Fatalf("acme's set keeps %d expired backfills", n)
	}
	left(b2, 0, 0)    // a purge of an expired backfill frees nothing
	fin(b2, "d3", 70) // nor does a finish count into one
	usage("acme", 0)
	usage("globex", 30)
}
