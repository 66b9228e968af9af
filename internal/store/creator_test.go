package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/coalesce"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// Concurrent coalesced creates behave like Store.Create one by one: each
// new id is created once, a repeated id reports the existing record, and
// the records are readable afterwards. After Redis loses its script cache,
// creates still succeed.
func TestCreatorCoalescesLikeCreate(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	s := store.New(rdb, time.Hour)
	c := store.NewCreator(s, coalesce.Options{MaxBatch: 16})
	defer c.Close()

	const n = 200
	var wg sync.WaitGroup
	results := make([]store.Created, 2*n)
	errs := make([]error, 2*n)
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ids repeat once each: exactly one of the two calls creates.
			j := newJob("acme", fmt.Sprintf("j%d", i%n))
			results[i], errs[i] = c.Create(ctx, j, "h"+fmt.Sprint(i%n))
		}()
	}
	wg.Wait()
	created := map[int]int{}
	for i := range 2 * n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if results[i].New {
			created[i%n]++
		} else if results[i].ReqHash != "h"+fmt.Sprint(i%n) || results[i].Status != job.StatusQueued {
			t.Fatalf("repeat %d: %+v", i, results[i])
		}
	}
	for id := range n {
		if created[id] != 1 {
			t.Fatalf("id j%d created %d times", id, created[id])
		}
		rec, err := s.Get(ctx, "acme", fmt.Sprintf("j%d", id))
		if err != nil || rec.Status != job.StatusQueued || rec.Task != "sentiment" {
			t.Fatalf("record j%d: %+v %v", id, rec, err)
		}
	}

	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Create(ctx, newJob("acme", "after-flush"), "h")
	if err != nil || !got.New {
		t.Fatalf("create after script flush: %+v %v", got, err)
	}

	c.Close()
	if _, err := c.Create(ctx, newJob("acme", "late"), "h"); err == nil {
		t.Fatal("create after Close succeeded")
	}
}
