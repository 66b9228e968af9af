package tenant

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestResultSharesDefaultRecordAndCache: a tenant without results_max_bytes
// has DefaultResultsShare of the budget, one with it has its own, an answer
// is cached until its TTL or Forget, and a stream without a byte limit
// gives no default share.
func TestResultSharesDefaultRecordAndCache(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true})
	mustCreate(t, s, Tenant{ID: "big", Enabled: true, ResultsMaxBytes: 5000})
	var used, limit atomic.Int64
	used.Store(400)
	limit.Store(1000)
	rs := NewResultShares(s, func(context.Context, string) (int64, error) { return used.Load(), nil },
		func(context.Context) (int64, error) { return limit.Load(), nil }).WithTTL(time.Hour)
	use := func(id string) ResultsUse {
		t.Helper()
		u, err := rs.Use(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := use("acme"); u.Share != 450 || u.Used != 400 || u.Over() {
		t.Fatalf("acme %+v, want 400 of a 450-byte share (half of 90%% of 1000)", u)
	}
	if u := use("nobody"); u.Share != 450 {
		t.Fatalf("a tenant without a record: %+v, want the default share", u)
	}
	if u := use("big"); u.Share != 5000 {
		t.Fatalf("big %+v, want its record's 5000", u)
	}
	used.Store(450)
	if u := use("acme"); u.Over() {
		t.Fatalf("acme %+v: the cached answer changed before its TTL", u)
	}
	rs.Forget("acme")
	if u := use("acme"); !u.Over() {
		t.Fatalf("acme %+v after Forget: want over its share", u)
	}
	if (ResultsUse{Used: 10}).Over() {
		t.Fatal("no share known counts as over")
	}
}
