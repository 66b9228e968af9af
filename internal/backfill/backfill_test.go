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

func docJob(b *backfill.Backfill, doc string) *job.Job {
	return &job.Job{ID: b.ID + ":" + doc, Tenant: b.Tenant, Task: b.Task, Lane: job.LaneBulk, Backfill: b.ID, DocID: doc}
}

// TestCountedOnceAndCompletes drives a backfill through the same scripts
// ingest and workers use: re-sent ids are known, redeliveries count
// nothing, a worker finishing before ingest marks counts the document
// once, and sealing completes it when nothing is pending.
func TestCountedOnceAndCompletes(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	bs, st := backfill.NewStore(rdb), store.New(rdb, time.Hour)
	now := time.Now()
	b := &backfill.Backfill{Tenant: "acme", Task: "sentiment", Name: "reuters"}
	if err := bs.Create(ctx, b, now); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Get(ctx, "globex", b.ID); !errors.Is(err, backfill.ErrNotFound) {
		t.Fatalf("other tenant sees the backfill: %v", err)
	}
	ids := []string{"d1", "d2", "d3", "d4"}
	if n, err := bs.Mark(ctx, b.Tenant, b.ID, ids[:3]); err != nil || n != 3 {
		t.Fatalf("mark: %d %v", n, err)
	}
	known, err := bs.Known(ctx, b.Tenant, b.ID, ids)
	if err != nil || !known[0] || !known[2] || known[3] {
		t.Fatalf("known %v %v", known, err)
	}
	// d4 is finished by a worker before ingest marks it.
	fin := func(doc string, s job.Status) job.Status {
		t.Helper()
		sts, err := st.Finish(ctx, []store.Final{{Job: docJob(b, doc), Status: s}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return sts[0]
	}
	if got := fin("d4", job.StatusSucceeded); got != job.StatusSucceeded {
		t.Fatal(got)
	}
	if n, _ := bs.Mark(ctx, b.Tenant, b.ID, []string{"d4", "d1"}); n != 0 {
		t.Fatalf("re-mark counted %d", n)
	}
	if got := fin("d1", job.StatusFailed); got != job.StatusFailed {
		t.Fatal(got)
	}
	if got := fin("d1", job.StatusSucceeded); got != job.StatusFailed {
		t.Fatalf("second final won: %s", got)
	}
	sts, err := st.Start(ctx, []*job.Job{docJob(b, "d1"), docJob(b, "d2")}, []int{2, 1}, time.Now())
	if err != nil || sts[0] != job.StatusFailed || sts[1] != job.StatusRunning {
		t.Fatalf("start %v %v", sts, err)
	}
	if state, err := bs.Seal(ctx, b.Tenant, b.ID, time.Now()); err != nil || state != backfill.StateSealed {
		t.Fatalf("seal %s %v", state, err)
	}
	if _, err := bs.Mark(ctx, b.Tenant, "bf_nope", []string{"x"}); !errors.Is(err, backfill.ErrNotFound) {
		t.Fatalf("mark on a missing backfill: %v", err)
	}
	fin("d2", job.StatusSucceeded)
	fin("d3", job.StatusDead)
	got, err := bs.Get(ctx, b.Tenant, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := backfill.Counters{Submitted: 4, Succeeded: 2, Failed: 1, Dead: 1}
	if got.Counters != want || got.State != backfill.StateCompleted || got.Finished.IsZero() {
		t.Fatalf("got %s %+v, want completed %+v", got.State, got.Counters, want)
	}
	p := backfill.ProgressOf(got, time.Now())
	if p.Pending != 0 || p.EtaS == nil || *p.EtaS != 0 {
		t.Fatalf("progress %+v", p)
	}
}

func TestCancelSkipsRemainingDocuments(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	bs, st := backfill.NewStore(rdb), store.New(rdb, time.Hour)
	b := &backfill.Backfill{Tenant: "acme", Task: "sentiment"}
	if err := bs.Create(ctx, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	var jobs []*job.Job
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprint("doc-", i))
		jobs = append(jobs, docJob(b, ids[i]))
	}
	if _, err := bs.Mark(ctx, b.Tenant, b.ID, ids); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(ctx, []store.Final{{Job: jobs[0], Status: job.StatusSucceeded}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if state, err := bs.Cancel(ctx, b.Tenant, b.ID, time.Now()); err != nil || state != backfill.StateCanceled {
		t.Fatalf("cancel %s %v", state, err)
	}
	attempts := make([]int, len(jobs))
	for range 2 { // a redelivery counts nothing more
		sts, err := st.Start(ctx, jobs, attempts, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if sts[0] != job.StatusSucceeded || sts[9] != job.StatusCanceled {
			t.Fatalf("start %v", sts)
		}
	}
	got, _ := bs.Get(ctx, b.Tenant, b.ID)
	if got.Succeeded != 1 || got.Canceled != 9 || got.Pending() != 0 {
		t.Fatalf("%+v", got.Counters)
	}
	if state, _ := bs.Seal(ctx, b.Tenant, b.ID, time.Now()); state != backfill.StateCanceled {
		t.Fatalf("sealing a canceled backfill: %s", state)
	}
}

func TestRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		done    int64
		last    time.Time
		running bool
		now     time.Time
		want    float64
	}{
		{0, t0, true, t0.Add(time.Second), 0},
		{100, t0.Add(10 * time.Second), false, t0.Add(time.Hour), 10},
		{100, t0.Add(10 * time.Second), true, t0.Add(20 * time.Second), 5},
		{1, t0, false, t0, 0},
	} {
		if got := backfill.Rate(c.done, t0, c.last, c.running, c.now); got != c.want {
			t.Errorf("Rate(%d, last %v, running %v) = %v, want %v", c.done, c.last.Sub(t0), c.running, got, c.want)
		}
	}
}
