package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestActiveBackfillOutlivesTTL keeps a backfill busy, through ingest's
// marks and workers' finishes, for several times its TTL: every write must
// restart the hash's expiry, so it is still there with all its counters.
// Left alone for longer than the TTL it expires.
func TestActiveBackfillOutlivesTTL(t *testing.T) {
	const ttl = 600 * time.Millisecond
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	bs, st := backfill.NewStore(rdb).WithTTL(ttl), store.New(rdb, time.Hour).WithDocTTL(ttl)
	b := &backfill.Backfill{Tenant: "acme", Task: "sentiment"}
	if err := bs.Create(ctx, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	const rounds = 6 // rounds*step is twice the TTL
	step := ttl / 3
	for i := range rounds {
		time.Sleep(step)
		doc := fmt.Sprintf("d%d", i)
		if i%2 == 0 {
			if _, err := bs.Mark(ctx, b.Tenant, b.ID, []string{doc}); err != nil {
				t.Fatalf("round %d: mark: %v", i, err)
			}
			continue
		}
		if _, err := st.Finish(ctx, []store.Final{{Job: docJob(b, doc), Status: job.StatusSucceeded}}, time.Now()); err != nil {
			t.Fatalf("round %d: finish: %v", i, err)
		}
	}
	got, err := bs.Get(ctx, b.Tenant, b.ID)
	if err != nil {
		t.Fatalf("active backfill expired %v after creation with a TTL of %v: %v", rounds*step, ttl, err)
	}
	if got.Submitted != rounds || got.Succeeded != rounds/2 {
		t.Fatalf("counters %+v, want %d submitted and %d succeeded", got.Counters, rounds, rounds/2)
	}
	if st, err := bs.Seal(ctx, b.Tenant, b.ID, time.Now()); err != nil || st != backfill.StateSealed {
		t.Fatalf("seal: %s %v", st, err)
	}
	time.Sleep(ttl + ttl/2)
	if _, err := bs.Get(ctx, b.Tenant, b.ID); !errors.Is(err, backfill.ErrNotFound) {
		t.Fatalf("idle backfill still there %v after its last write: %v", ttl+ttl/2, err)
	}
}
