package backfill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestKnownAndMarkRefuseClosedBackfill: once a backfill is sealed or
// canceled, Known and Mark refuse with the state named and mark nothing,
// so a chunk in flight when the seal lands is not counted.
func TestKnownAndMarkRefuseClosedBackfill(t *testing.T) {
	ctx := context.Background()
	bs := backfill.NewStore(testenv.RedisClient(t))
	for _, tc := range []struct {
		state backfill.State
		close func(tenant, id string) (backfill.State, error)
	}{
		{backfill.StateSealed, func(tn, id string) (backfill.State, error) { return bs.Seal(ctx, tn, id, time.Now()) }},
		{backfill.StateCanceled, func(tn, id string) (backfill.State, error) { return bs.Cancel(ctx, tn, id, time.Now()) }},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			b := &backfill.Backfill{Tenant: "acme", Task: "sentiment"}
			if err := bs.Create(ctx, b, time.Now()); err != nil {
				t.Fatal(err)
			}
			// One pending document keeps a sealed backfill from completing.
			if n, err := bs.Mark(ctx, b.Tenant, b.ID, []string{"d0"}); err != nil || n != 1 {
				t.Fatalf("mark while open: %d %v", n, err)
			}
			if st, err := tc.close(b.Tenant, b.ID); err != nil || st != tc.state {
				t.Fatalf("close: %s %v", st, err)
			}
			var noe *backfill.NotOpenError
			if _, err := bs.Known(ctx, b.Tenant, b.ID, []string{"d1"}); !errors.As(err, &noe) || noe.State != tc.state || !errors.Is(err, backfill.ErrNotOpen) {
				t.Fatalf("known on a %s backfill: %v", tc.state, err)
			}
			if n, err := bs.Mark(ctx, b.Tenant, b.ID, []string{"d1", "d2"}); !errors.As(err, &noe) || noe.State != tc.state || n != 0 {
				t.Fatalf("mark on a %s backfill: %d %v", tc.state, n, err)
			}
			got, err := bs.Get(ctx, b.Tenant, b.ID)
			if err != nil || got.Submitted != 1 {
				t.Fatalf("submitted %d after a refused mark (%v), want 1", got.Submitted, err)
			}
			if _, err := bs.Known(ctx, b.Tenant, "bf_nope", []string{"x"}); !errors.Is(err, backfill.ErrNotFound) {
				t.Fatalf("known on a missing backfill: %v", err)
			}
		})
	}
}
