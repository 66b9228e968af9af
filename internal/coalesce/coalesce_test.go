package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConcurrentCallsShareBatchesAndGetTheirOwnAnswers(t *testing.T) {
	var batches, maxBatch atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := New(Options{MaxBatch: 64, Loops: 1}, func(ctx context.Context, reqs []int, res []int) {
		held := false
		once.Do(func() { held = true })
		if held { // hold the first batch so that the others pile up
			close(started)
			<-release
		}
		batches.Add(1)
		if n := int64(len(reqs)); n > maxBatch.Load() {
			maxBatch.Store(n)
		}
		for i, r := range reqs {
			res[i] = r * 2
		}
	})
	defer c.Close()
	const n = 200
	var wg sync.WaitGroup
	var calling atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calling.Add(1)
			got, err := c.Do(context.Background(), i)
			if err != nil || got != 2*i {
				errs <- errors.New("wrong answer")
			}
		}()
		if i == 0 {
			<-started // the first call holds the loop
		}
	}
	// Wait until every call is queued behind the held batch (the queue
	// holds 64; the rest wait to enter it). Released earlier, on a busy
	// machine the calls still to be scheduled would find the coalescer idle
	// and each run alone, as they should.
	for calling.Load() < n || len(c.calls) < cap(c.calls) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b := batches.Load(); b >= n/2 {
		t.Fatalf("%d calls took %d batches: not coalesced", n, b)
	}
	if m := maxBatch.Load(); m > 64 {
		t.Fatalf("batch of %d over MaxBatch 64", m)
	}
}

func TestClosedAndCanceled(t *testing.T) {
	block := make(chan struct{})
	c := New(Options{Loops: 1}, func(ctx context.Context, reqs []int, res []int) {
		select {
		case <-block:
		case <-ctx.Done():
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled call: %v", err)
	}
	close(block)
	c.Close()
	if _, err := c.Do(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

// TestIdleCallRunsOnItsOwnGoroutine: with a slot free and nobody waiting, a
// call is run by its caller, not handed to a loop; under load calls still
// share batches (TestConcurrentCallsShareBatchesAndGetTheirOwnAnswers).
func TestIdleCallRunsOnItsOwnGoroutine(t *testing.T) {
	type key struct{}
	c := New(Options{Loops: 1}, func(ctx context.Context, reqs []int, res []int) {
		for i := range reqs {
			if v, _ := ctx.Value(key{}).(int); v == reqs[i] {
				res[i] = 1 // the caller's own context reached Run
			}
		}
	})
	defer c.Close()
	for i := range 10 {
		got, err := c.Do(context.WithValue(context.Background(), key{}, i), i)
		if err != nil || got != 1 {
			t.Fatalf("call %d: %d %v; want it run with its caller's context", i, got, err)
		}
	}
}

// TestCloseWaitsForALoneCall: Close returns only once a call running alone
// on its caller's goroutine has finished, as it does for a loop's batch.
func TestCloseWaitsForALoneCall(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	c := New(Options{}, func(ctx context.Context, reqs []int, res []int) {
		close(started)
		<-release
		res[0] = 1
	})
	answer := make(chan int)
	go func() {
		got, _ := c.Do(context.Background(), 1)
		answer <- got
	}()
	<-started
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a call was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != 1 {
		t.Fatalf("the running call answered %d", got)
	}
	<-closed
	c.Close() // again: returns at once
	if _, err := c.Do(context.Background(), 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

func BenchmarkDoSequential(b *testing.B) {
	c := New(Options{}, func(ctx context.Context, reqs []int, res []int) {
		copy(res, reqs)
	})
	defer c.Close()
	for b.Loop() {
		if _, err := c.Do(context.Background(), 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoParallel(b *testing.B) {
	c := New(Options{}, func(ctx context.Context, reqs []int, res []int) {
		copy(res, reqs)
	})
	defer c.Close()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Do(context.Background(), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
