package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestWaitReadyRidesOutLoading restarts a real redis-server so that it
// answers LOADING while it reads its snapshot back, as one with a large AOF
// does, and checks that WaitReady waits for it instead of failing, and that
// a patience shorter than the load fails with a message naming the state
// and the flag to raise.
func TestWaitReadyRidesOutLoading(t *testing.T) {
	r := testenv.StartRedis(t)
	r.RestartLoading(2000, 400*time.Microsecond) // about 0.8s of LOADING
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	err := rdb.Ping(ctx).Err()
	if !redis.IsLoadingError(err) {
		t.Fatalf("the restarted server must be loading, got %v", err)
	}

	err = store.WaitReady(ctx, rdb, r.Addr(), 100*time.Millisecond, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "loading its data set") || !strings.Contains(err.Error(), "--redis-start-wait") {
		t.Fatalf("short patience must fail naming the state and the flag, got %v", err)
	}

	var logs strings.Builder
	start := time.Now()
	if err := store.WaitReady(ctx, rdb, r.Addr(), 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := rdb.Set(ctx, "after", "1", 0).Err(); err != nil {
		t.Fatalf("redis must serve once WaitReady returns: %v", err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 2001 {
		t.Fatalf("dbsize %d: the snapshot was not loaded", n)
	}
	if !strings.Contains(logs.String(), "waiting for redis: loading its data set") {
		t.Errorf("no message said why the start waits:\n%s", logs.String())
	}
	t.Logf("waited %s for LOADING to end", time.Since(start).Round(time.Millisecond))
}

// TestWaitReadyFailsAtOnceOnOtherErrors: a wrong setting (here a database
// the server does not have) is no reason to wait.
func TestWaitReadyFailsAtOnceOnOtherErrors(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: 999})
	defer rdb.Close()
	start := time.Now()
	err := store.WaitReady(context.Background(), rdb, r.Addr(), 10*time.Second, nil)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("WaitReady = %v after %s, want a fast failure", err, time.Since(start))
	}
}

// TestWaitReadyWaitsForAServerThatIsNotUpYet: a failover or a restart leaves
// a moment when nothing listens.
func TestWaitReadyWaitsForAServerThatIsNotUpYet(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer rdb.Close()
	go func() { time.Sleep(300 * time.Millisecond); r.Start() }()
	if err := store.WaitReady(context.Background(), rdb, r.Addr(), 20*time.Second, nil); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
}

func TestUnready(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redisErr("LOADING Redis is loading the dataset in memory"), true},
		{redisErr("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{redisErr("CLUSTERDOWN The cluster is down"), true},
		{redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{redisErr("READONLY You can't write against a read only replica."), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{context.DeadlineExceeded, true},
		{redisErr("WRONGPASS invalid username-password pair"), false},
		{redisErr("ERR unknown command"), false},
		{errors.New("redis-url: bad"), false},
	} {
		if _, got := store.Unready(tc.err); got != tc.want {
			t.Errorf("Unready(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// redisErr is an error as go-redis returns a server's error reply.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (e redisErr) RedisError()   {}
