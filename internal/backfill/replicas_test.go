package backfill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestWritesWaitForReplicas: with WithWait, a backfill's creation, its
// documents' marks and its seal are on the replica when they return; with
// the replica gone they fail with store.ErrNotReplicated (ingest answers
// 503) instead of acknowledging what a failover could lose, and repeating
// them once the write is on the master does no harm.
func TestWritesWaitForReplicas(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.StartRedisWithReplica(t)
	rc := replica.Client(t)
	bs := backfill.NewStore(master.Client(t)).WithWait(1, 300*time.Millisecond)
	b := &backfill.Backfill{Tenant: "acme", Task: "sentiment", Name: "wire"}
	if err := bs.Create(ctx, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := store.BackfillKey(b.Tenant, b.ID)
	if st := rc.HGet(ctx, key, "state").Val(); st != "open" {
		t.Fatalf("replica has state %q right after Create, want open", st)
	}
	if n, err := bs.Mark(ctx, b.Tenant, b.ID, []string{"d1", "d2"}); err != nil || n != 2 {
		t.Fatalf("mark: %d %v", n, err)
	}
	if n := rc.HGet(ctx, key, "submitted").Val(); n != "2" {
		t.Fatalf("replica counts %q submitted right after Mark, want 2", n)
	}

	replica.Stop()
	if _, err := bs.Mark(ctx, b.Tenant, b.ID, []string{"d3"}); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("mark with the replica down: %v, want ErrNotReplicated", err)
	}
	// What Known reports stored is confirmed too: d3's mark is on the
	// master only.
	if _, err := bs.Known(ctx, b.Tenant, b.ID, []string{"d3"}); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("known with the replica down: %v, want ErrNotReplicated", err)
	}
	if err := bs.Create(ctx, &backfill.Backfill{Tenant: "acme", Task: "sentiment"}, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("create with the replica down: %v, want ErrNotReplicated", err)
	}
	if _, err := bs.Seal(ctx, b.Tenant, b.ID, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("seal with the replica down: %v, want ErrNotReplicated", err)
	}
	// The writes are on the master: a retry finds d3 marked and the
	// backfill sealed, and counts nothing twice.
	plain := backfill.NewStore(master.Client(t))
	got, err := plain.Get(ctx, b.Tenant, b.ID)
	if err != nil || got.State != backfill.StateSealed || got.Counters.Submitted != 3 {
		t.Fatalf("after the unconfirmed writes: %+v %v, want sealed with 3 submitted", got, err)
	}
	if st, err := plain.Seal(ctx, b.Tenant, b.ID, time.Now()); err != nil || st != backfill.StateSealed {
		t.Fatalf("seal again: %s %v", st, err)
	}
}
