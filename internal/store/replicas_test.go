package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/coalesce"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestFinishWaitsForReplicas: with WithWait, a final state Finish returns
// is on the replica already, and with the replica gone Finish fails (the
// worker leaves the jobs to be delivered again) instead of acknowledging a
// state a failover could lose. Without WithWait it does not wait.
func TestFinishWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.StartRedisWithReplica(t)
	mc := master.Client(t)
	rc := replica.Client(t)
	s := store.New(mc, time.Hour).WithWait(1, 500*time.Millisecond)
	final := func(id string) store.Final {
		return store.Final{Job: newJob("acme", id), Status: job.StatusSucceeded, Result: json.RawMessage(`{}`), Attempts: 1}
	}
	for i, id := range []string{"a", "b", "c"} {
		if _, err := s.Finish(ctx, []store.Final{final(id)}, time.Now()); err != nil {
			t.Fatalf("finish %s: %v\n%s", id, err, mc.Info(ctx, "replication").Val())
		}
		// No pause: WAIT returned, so the replica has it.
		if st := rc.HGet(ctx, store.Key("acme", id), "status").Val(); st != "succeeded" {
			t.Fatalf("round %d: replica has status %q right after Finish, want succeeded", i, st)
		}
	}
	replica.Stop()
	start := time.Now()
	_, err := s.Finish(ctx, []store.Final{final("d")}, time.Now())
	if !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("finish with the replica down: %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("finish with the replica down took %s, want about the 500ms timeout", d)
	}
	// The state is on the master: the redelivery finds it final.
	if sts, err := s.Finish(ctx, []store.Final{{Job: newJob("acme", "d"), Status: job.StatusDead, Attempts: 2}}, time.Now()); !errors.Is(err, store.ErrNotReplicated) || sts != nil {
		t.Fatalf("second finish: %v %v", sts, err)
	}
	if rec, err := s.Get(ctx, "acme", "d"); err != nil || rec.Status != job.StatusSucceeded {
		t.Fatalf("record: %+v %v", rec, err)
	}
	if _, err := store.New(mc, time.Hour).Finish(ctx, []store.Final{final("e")}, time.Now()); err != nil {
		t.Fatalf("finish without waiting: %v", err)
	}
}

// TestCreatorWaitsForReplicas: with WithWait, a record the Creator reports
// created is on the replica already; with the replica gone every call of
// the round trip fails with ErrNotReplicated (ingest answers 503), and the
// retry finds the record queued, as a retry after a lost answer does.
func TestCreatorWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.StartRedisWithReplica(t)
	mc := master.Client(t)
	rc := replica.Client(t)
	c := store.NewCreator(store.New(mc, time.Hour).WithWait(1, 300*time.Millisecond), coalesce.Options{})
	defer c.Close()
	if cr, err := c.Create(ctx, newJob("acme", "a"), "h"); err != nil || !cr.New {
		t.Fatalf("create with the replica up: %+v %v", cr, err)
	}
	if st := rc.HGet(ctx, store.Key("acme", "a"), "status").Val(); st != "queued" {
		t.Fatalf("replica has status %q right after Create, want queued", st)
	}
	replica.Stop()
	errs := make(chan error, 3)
	for _, id := range []string{"b", "c", "d"} {
		go func() {
			_, err := c.Create(ctx, newJob("acme", id), "h")
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, store.ErrNotReplicated) {
			t.Fatalf("create with the replica down: %v, want ErrNotReplicated", err)
		}
	}
	cr, err := store.NewCreator(store.New(mc, time.Hour), coalesce.Options{}).Create(ctx, newJob("acme", "b"), "h")
	if err != nil || cr.New || cr.Status != job.StatusQueued || cr.ReqHash != "h" {
		t.Fatalf("retry without waiting: %+v %v, want the queued record found", cr, err)
	}
}

// TestRetriesWaitForReplicas: a write that changes nothing (a redelivered
// job found final by Start or Finish, a record found queued) is reported
// done only once the replicas have what an earlier attempt wrote. The
// replica is paused (not gone) while the first attempt writes, so it lags.
// Debian 12's Redis 7.0 lets a WAIT wait for the server's offset after any
// command, so against it the Start half fails without Confirm.Sync but
// this test passes without the fence too; the fence is for Redis versions
// that move a connection's offset only on its own replicated writes.
func TestRetriesWaitForReplicas(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.StartRedisWithReplica(t)
	mc := master.Client(t)
	s := store.New(mc, time.Hour).WithWait(1, 300*time.Millisecond)
	final := store.Final{Job: newJob("acme", "a"), Status: job.StatusSucceeded, Result: json.RawMessage(`{}`), Attempts: 1}
	replica.Pause()
	if _, err := s.Finish(ctx, []store.Final{final}, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("finish with the replica paused: %v, want ErrNotReplicated", err)
	}
	// The redelivery runs on another connection (another worker), whose
	// last write offset is older than the first attempt's: its Start finds
	// the job final and its Finish writes nothing, and neither may report
	// the job done while the replica lags.
	other := store.New(redis.NewClient(&redis.Options{Addr: master.Addr()}), time.Hour).WithWait(1, 300*time.Millisecond)
	if sts, err := other.Start(ctx, []*job.Job{newJob("acme", "a")}, []int{2}, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("start with the replica paused: %v %v, want ErrNotReplicated", sts, err)
	}
	other = store.New(redis.NewClient(&redis.Options{Addr: master.Addr()}), time.Hour).WithWait(1, 300*time.Millisecond)
	if _, err := other.Finish(ctx, []store.Final{final}, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("second finish with the replica paused: %v, want ErrNotReplicated", err)
	}
	replica.Resume()
	sts, err := s.Start(ctx, []*job.Job{newJob("acme", "a")}, []int{2}, time.Now())
	if err != nil || sts[0] != job.StatusSucceeded {
		t.Fatalf("start with the replica back: %v %v", sts, err)
	}
	rc := replica.Client(t)
	if st := rc.HGet(ctx, store.Key("acme", "a"), "status").Val(); st != "succeeded" {
		t.Fatalf("replica has %q once Start reported the job final", st)
	}
}
