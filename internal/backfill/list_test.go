package backfill_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestListNewestFirstByTenant pages through a tenant's backfills newest
// first, with backfills created in the same millisecond kept apart, other
// tenants' left out and expired ones skipped and dropped from the index.
func TestListNewestFirstByTenant(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	bs := backfill.NewStore(rdb)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var want []string // newest first
	for i := range 7 {
		b := &backfill.Backfill{Tenant: "acme", Task: "sentiment"}
		// Two share each millisecond.
		if err := bs.Create(ctx, b, base.Add(time.Duration(i/2)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		want = append([]string{b.ID}, want...)
		if err := bs.Create(ctx, &backfill.Backfill{Tenant: "globex", Task: "sentiment"}, base); err != nil {
			t.Fatal(err)
		}
	}
	// Within a millisecond ids order the index: the later-created of two may
	// sort first. Newest-first means by (created, id) descending.
	var got []string
	cursor := ""
	pages := 0
	for {
		p, err := bs.List(ctx, "acme", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, b := range p.Backfills {
			if b.Tenant != "acme" {
				t.Fatalf("listed %s of tenant %s", b.ID, b.Tenant)
			}
			got = append(got, b.ID)
		}
		if p.Next == "" {
			break
		}
		if !backfill.ValidCursor(p.Next) {
			t.Fatalf("cursor %q is not valid", p.Next)
		}
		cursor = p.Next
	}
	if pages != 3 || len(got) != 7 {
		t.Fatalf("%d pages, %d backfills %v; want 3 pages of 7", pages, len(got), got)
	}
	seen := map[string]bool{}
	for i, id := range got {
		if seen[id] {
			t.Fatalf("%s listed twice", id)
		}
		seen[id] = true
		b, _ := bs.Get(ctx, "acme", id)
		if i > 0 {
			prev, _ := bs.Get(ctx, "acme", got[i-1])
			if b.Created.After(prev.Created) {
				t.Fatalf("not newest first: %s (%s) after %s (%s)", id, b.Created, prev.ID, prev.Created)
			}
		}
	}
	// An expired backfill is skipped and leaves the index.
	if err := rdb.Del(ctx, store.BackfillKey("acme", want[0])).Err(); err != nil {
		t.Fatal(err)
	}
	p, err := bs.List(ctx, "acme", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Backfills) != 2 || p.Backfills[0].ID == want[0] || p.Next == "" {
		t.Fatalf("after expiry: %d backfills, first %s, next %q", len(p.Backfills), p.Backfills[0].ID, p.Next)
	}
	if n, _ := rdb.ZCard(ctx, store.BackfillIndexKey("acme")).Result(); n != 6 {
		t.Fatalf("index holds %d entries, want 6", n)
	}
	if backfill.ValidCursor("x:bf_1") || backfill.ValidCursor("") {
		t.Fatal("malformed cursors pass")
	}
}
