package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

func newJob(tenant, id string) *job.Job {
	return &job.Job{ID: id, Tenant: tenant, Task: "sentiment", Lane: job.LaneInteractive,
		Input: job.Input{Text: "x"}, Created: time.Now().UTC().Truncate(time.Millisecond)}
}

func TestLifecycleAndFirstFinalWins(t *testing.T) {
	ctx := context.Background()
	s := store.New(testenv.RedisClient(t), time.Hour)
	j := newJob("acme", "j1")

	c, err := s.Create(ctx, j, "h1")
	if err != nil || !c.New {
		t.Fatalf("create: %+v %v", c, err)
	}
	c, err = s.Create(ctx, j, "h2")
	if err != nil || c.New || c.ReqHash != "h1" || c.Status != job.StatusQueued {
		t.Fatalf("second create must report the existing record: %+v %v", c, err)
	}
	sts, err := s.Start(ctx, []*job.Job{j}, []int{1}, time.Now())
	if err != nil || sts[0] != job.StatusRunning {
		t.Fatalf("start: %v %v", sts, err)
	}
	rec, err := s.Get(ctx, "acme", "j1")
	if err != nil || rec.Status != job.StatusRunning || rec.Attempts != 1 || rec.Started.IsZero() {
		t.Fatalf("running record: %+v %v", rec, err)
	}
	first := store.Final{Job: j, Status: job.StatusSucceeded, Result: json.RawMessage(`{"labels":[]}`), Attempts: 1}
	second := store.Final{Job: j, Status: job.StatusDead, Error: &job.Error{Code: "x", Message: "y"}, Attempts: 2}
	if sts, err := s.Finish(ctx, []store.Final{first}, time.Now()); err != nil || sts[0] != job.StatusSucceeded {
		t.Fatalf("finish: %v %v", sts, err)
	}
	// A redelivery that ends differently does not change the outcome.
	if sts, err := s.Finish(ctx, []store.Final{second}, time.Now()); err != nil || sts[0] != job.StatusSucceeded {
		t.Fatalf("second finish must keep the first final state: %v %v", sts, err)
	}
	if sts, err := s.Start(ctx, []*job.Job{j}, []int{3}, time.Now()); err != nil || sts[0] != job.StatusSucceeded {
		t.Fatalf("start after final must report the final state: %v %v", sts, err)
	}
	rec, _ = s.Get(ctx, "acme", "j1")
	if rec.Status != job.StatusSucceeded || string(rec.Result) != `{"labels":[]}` || rec.Error != nil || rec.Finished.IsZero() {
		t.Fatalf("final record: %+v", rec)
	}
	if _, err := s.Get(ctx, "globex", "j1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's job must be not found, got %v", err)
	}
}

// TestFinishUnmarked finishes a queued job that no Start marked running (a
// fast batch): the record takes its start time from the Final, and a
// cancellation that came first still wins.
func TestFinishUnmarked(t *testing.T) {
	ctx := context.Background()
	s := store.New(testenv.RedisClient(t), time.Hour)
	j, canceled := newJob("acme", "fast"), newJob("acme", "gone")
	for _, x := range []*job.Job{j, canceled} {
		if _, err := s.Create(ctx, x, "h"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Cancel(ctx, "acme", "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC().Add(-3 * time.Millisecond).Truncate(time.Millisecond)
	sts, err := s.Finish(ctx, []store.Final{
		{Job: j, Status: job.StatusSucceeded, Result: json.RawMessage(`{}`), Attempts: 1, Started: started},
		{Job: canceled, Status: job.StatusSucceeded, Result: json.RawMessage(`{}`), Attempts: 1, Started: started},
	}, started.Add(3*time.Millisecond))
	if err != nil || sts[0] != job.StatusSucceeded || sts[1] != job.StatusCanceled {
		t.Fatalf("finish: %v %v", sts, err)
	}
	rec, err := s.Get(ctx, "acme", "fast")
	if err != nil || !rec.Started.Equal(started) || rec.Attempts != 1 || !rec.Finished.After(rec.Started) {
		t.Fatalf("record: %+v %v (started %v)", rec, err, started)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	s := store.New(testenv.RedisClient(t), time.Hour)
	q, run := newJob("acme", "queued"), newJob("acme", "running")
	for _, j := range []*job.Job{q, run} {
		if _, err := s.Create(ctx, j, "h"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Start(ctx, []*job.Job{run}, []int{1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Cancel(ctx, "acme", "queued", time.Now()); err != nil || st != job.StatusCanceled {
		t.Fatalf("cancel queued: %v %v", st, err)
	}
	if st, err := s.Cancel(ctx, "acme", "running", time.Now()); err != nil || st != job.StatusRunning {
		t.Fatalf("cancel running must report running: %v %v", st, err)
	}
	if _, err := s.Cancel(ctx, "globex", "queued", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel another tenant's job: %v", err)
	}
	// The worker skips a canceled job.
	if sts, err := s.Start(ctx, []*job.Job{q}, []int{1}, time.Now()); err != nil || sts[0] != job.StatusCanceled {
		t.Fatalf("start canceled: %v %v", sts, err)
	}
}

func TestStartRecreatesLostRecordAndSurvivesScriptFlush(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t)
	s := store.New(rdb, time.Hour)
	j := newJob("acme", "lost")
	// Redis lost its scripts (a restart): pipelines must load them again.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	sts, err := s.Start(ctx, []*job.Job{j}, []int{2}, time.Now())
	if err != nil || sts[0] != job.StatusRunning {
		t.Fatalf("start without a record: %v %v", sts, err)
	}
	rec, err := s.Get(ctx, "acme", "lost")
	if err != nil || rec.Task != "sentiment" || rec.Attempts != 2 {
		t.Fatalf("recreated record: %+v %v", rec, err)
	}
	if ttl := rdb.PTTL(ctx, store.Key("acme", "lost")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("record TTL %s", ttl)
	}
}

func TestAbandonOnlyQueued(t *testing.T) {
	ctx := context.Background()
	s := store.New(testenv.RedisClient(t), time.Hour)
	j := newJob("acme", "a")
	if _, err := s.Create(ctx, j, "h"); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("abandoned record still there: %v", err)
	}
	if _, err := s.Create(ctx, j, "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, []*job.Job{j}, []int{1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, "acme", "a"); err != nil || rec.Status != job.StatusRunning {
		t.Fatalf("a running record must survive Abandon: %+v %v", rec, err)
	}
}

func BenchmarkStartFinishBatch32(b *testing.B) {
	ctx := context.Background()
	s := store.New(testenv.RedisClient(b), time.Hour)
	jobs := make([]*job.Job, 32)
	attempts := make([]int, 32)
	finals := make([]store.Final, 32)
	for i := range jobs {
		jobs[i] = newJob("acme", "bench-"+string(rune('a'+i)))
		attempts[i] = 1
		finals[i] = store.Final{Job: jobs[i], Status: job.StatusSucceeded, Result: json.RawMessage(`{"labels":[{"label":"positive","score":0.9}]}`), Attempts: 1}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, j := range jobs {
			j.ID = j.ID[:7] + string(rune('a'+i%26)) + string(rune('a'+(i/26)%26))
		}
		if _, err := s.Start(ctx, jobs, attempts, time.Now()); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Finish(ctx, finals, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "jobs/s")
}
