package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestFinishWaitsForReplicas: with WithWait, a final state Finish returns
// is on the replica already, and with the replica gone Finish fails (the
// worker leaves the jobs to be delivered again) instead of acknowledging a
// state a failover could lose. Without WithWait it does not wait.
func TestFinishWaitsForReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica")
	}
	ctx := context.Background()
	master := testenv.StartRedis(t)
	replica := testenv.StartRedisReplica(t, master)
	mc := master.Client(t)
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
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
