package backfill_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestEventsDecidedOnce finishes a sealed backfill's documents from eight
// racing finishers, some documents twice: the finish script makes a
// progress event due exactly at each multiple of progress_every, with the
// counts of that multiple, and the completion with the final counts, again
// for a document redelivered after it; afterwards ClaimEnded (a seal or
// cancel in ingest) gets nothing.
func TestEventsDecidedOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client(t)
	bs, st := backfill.NewStore(rdb), store.New(rdb, time.Hour)
	b := &backfill.Backfill{Tenant: "acme", Task: "sentiment", Webhook: "ep_1", ProgressEvery: 100}
	if err := bs.Create(ctx, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	const docs = 450
	ids := make([]string, docs)
	for i := range ids {
		ids[i] = fmt.Sprint("d", i)
	}
	if _, err := bs.Mark(ctx, b.Tenant, b.ID, ids); err != nil {
		t.Fatal(err)
	}
	if state, err := bs.Seal(ctx, b.Tenant, b.ID, time.Now()); err != nil || state != backfill.StateSealed {
		t.Fatalf("seal: %s %v", state, err)
	}
	var mu sync.Mutex
	var due []store.BackfillEvent
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			// Each finisher takes every document whose index is w mod 4
			// (two finishers per document), in batches of 10.
			var fs []store.Final
			for i := w % 4; i < docs; i += 4 {
				s := job.StatusSucceeded
				if i%7 == 0 {
					s = job.StatusFailed
				}
				fs = append(fs, store.Final{Job: docJob(b, ids[i]), Status: s})
				if len(fs) == 10 || i+4 >= docs {
					if _, err := st.Finish(ctx, fs, time.Now()); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, f := range fs {
						if f.Due != nil {
							due = append(due, *f.Due)
						}
					}
					mu.Unlock()
					fs = nil
				}
			}
		})
	}
	wg.Wait()
	progress := map[int64]int{}
	completed := 0
	for _, ev := range due {
		if ev.Webhook != "ep_1" || ev.Backfill != b.ID || ev.Tenant != "acme" || ev.Task != "sentiment" {
			t.Fatalf("event %+v", ev)
		}
		switch ev.Kind {
		case "progress":
			progress[ev.Results()]++
		case "completed":
			completed++
			if ev.State != "completed" || ev.Results() != docs || ev.Submitted != docs {
				t.Fatalf("completion %+v", ev)
			}
		}
	}
	// A document finished again after the completion (its second
	// finisher came later) makes the completion due again: see the next
	// check. Progress is decided by counting, once.
	want := map[int64]int{100: 1, 200: 1, 300: 1, 400: 1}
	if completed < 1 || fmt.Sprint(progress) != fmt.Sprint(want) {
		t.Fatalf("due: %d completions, progress at %v; want at least 1 and %v", completed, progress, want)
	}
	// A worker that stored the completion and died before it queued the
	// event gets its batch again: the completion is due again, with the
	// same counts, so the event is not lost.
	again := []store.Final{{Job: docJob(b, ids[docs-1]), Status: job.StatusSucceeded}}
	if _, err := st.Finish(ctx, again, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ev := again[0].Due; ev == nil || ev.Kind != "completed" || ev.Results() != docs || ev.Submitted != docs {
		t.Fatalf("completion on a redelivery after it: %+v", ev)
	}
	if ev, err := bs.ClaimEnded(ctx, b.Tenant, b.ID, time.Now()); err != nil || ev != nil {
		t.Fatalf("claim after a worker's completion: %+v %v", ev, err)
	}

	// A cancel ends another backfill: its event is claimed once, and
	// again only after a failed queueing gave the claim back.
	c := &backfill.Backfill{Tenant: "acme", Task: "sentiment", Webhook: "ep_1"}
	if err := bs.Create(ctx, c, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ev, _ := bs.ClaimEnded(ctx, c.Tenant, c.ID, time.Now()); ev != nil {
		t.Fatalf("claimed an open backfill's end: %+v", ev)
	}
	if _, err := bs.Cancel(ctx, c.Tenant, c.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	claims := 0
	for range 3 {
		if ev, err := bs.ClaimEnded(ctx, c.Tenant, c.ID, time.Now()); err != nil {
			t.Fatal(err)
		} else if ev != nil {
			claims++
			if ev.State != "canceled" || ev.Kind != "completed" {
				t.Fatalf("cancel event %+v", ev)
			}
		}
	}
	if err := bs.ReleaseEnded(ctx, c.Tenant, c.ID); err != nil {
		t.Fatal(err)
	}
	if ev, _ := bs.ClaimEnded(ctx, c.Tenant, c.ID, time.Now()); claims != 1 || ev == nil {
		t.Fatalf("%d claims, then after release %+v", claims, ev)
	}
}
