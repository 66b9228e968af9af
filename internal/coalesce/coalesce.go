// Package coalesce turns concurrent calls into batches: calls that arrive
// while a batch is in flight wait for the next one, which carries all of them.
// Under load one round trip (a Redis pipeline, say) then serves many callers,
// so throughput is no longer capped by the round-trip rate. An idle
// coalescer adds no delay: a call that finds no batch in flight and no call
// waiting runs its own one-call batch on its own goroutine, without a
// hand-off to a loop and back.
//
// It is the shape shared by ingest's admission and record creation, which
// both send one Redis script call per request.
package coalesce

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("coalescer closed")

// Options tune a Coalescer.
type Options struct {
	// MaxBatch is the most calls in one batch. Defaults to 256.
	MaxBatch int
	// Loops is how many batches may be in flight at once; each loop takes
	// whatever calls are waiting when its last batch ends. Defaults to 2.
	Loops int
	// Timeout bounds one batch: it is the deadline of the context Run gets.
	// Defaults to 2s.
	Timeout time.Duration
}

// Run handles one batch: it sets res[i] to the answer for reqs[i]. It must
// answer every request (a failure goes into the answer), return when ctx
// ends, and not keep the slices.
type Run[Req, Res any] func(ctx context.Context, reqs []Req, res []Res)

type call[Req, Res any] struct {
	req Req
	res chan Res // buffered: a loop never blocks on a caller
}

// Coalescer batches concurrent Do calls for a Run. It is safe for concurrent
// use.
type Coalescer[Req, Res any] struct {
	opts  Options
	run   Run[Req, Res]
	calls chan *call[Req, Res]
	slots chan struct{} // one token per batch in flight, at most Loops
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	pool  sync.Pool
}

// New starts a Coalescer for run; Close stops it.
func New[Req, Res any](opts Options, run Run[Req, Res]) *Coalescer[Req, Res] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Loops <= 0 {
		opts.Loops = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	c := &Coalescer[Req, Res]{opts: opts, run: run,
		calls: make(chan *call[Req, Res], opts.MaxBatch*opts.Loops), slots: make(chan struct{}, opts.Loops),
		done: make(chan struct{})}
	c.pool.New = func() any { return &call[Req, Res]{res: make(chan Res, 1)} }
	c.wg.Add(opts.Loops)
	for range opts.Loops {
		go c.loop()
	}
	return c
}

// Close stops the Coalescer: calls waiting or arriving later fail with
// ErrClosed; a batch in flight finishes first.
func (c *Coalescer[Req, Res]) Close() {
	c.once.Do(func() {
		close(c.done)
		c.wg.Wait()
		// A call running alone holds a slot: taking them all waits for it.
		for range c.opts.Loops {
			c.slots <- struct{}{}
		}
	})
}

// Do hands req to the next batch and returns its answer. If ctx ends while
// the call waits, Do returns ctx's error, but req may still be run.
func (c *Coalescer[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	if len(c.slots) == 0 && len(c.calls) == 0 {
		// Idle: no batch in flight and nobody waiting. Under load a batch
		// is nearly always in flight, so calls queue and share batches.
		select {
		case c.slots <- struct{}{}:
			return c.alone(ctx, req)
		default:
		}
	}
	k := c.pool.Get().(*call[Req, Res])
	k.req = req
	select {
	case c.calls <- k:
	case <-c.done:
		return zero, ErrClosed
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-k.res:
		var zr Req
		k.req = zr
		c.pool.Put(k) // reused only once its answer has been taken
		return r, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-c.done:
		// The loop may still answer; k is dropped, not reused.
		select {
		case r := <-k.res:
			return r, nil
		default:
			return zero, ErrClosed
		}
	}
}

// alone runs req as a batch of its own on the caller's goroutine, under the
// slot Do took, with ctx bounded by the batch timeout.
func (c *Coalescer[Req, Res]) alone(ctx context.Context, req Req) (Res, error) {
	defer func() { <-c.slots }()
	var zero Res
	select {
	case <-c.done:
		return zero, ErrClosed
	default:
	}
	bctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	reqs, res := []Req{req}, []Res{zero}
	c.run(bctx, reqs, res)
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	return res[0], nil
}

func (c *Coalescer[Req, Res]) loop() {
	defer c.wg.Done()
	batch := make([]*call[Req, Res], 0, c.opts.MaxBatch)
	reqs := make([]Req, 0, c.opts.MaxBatch)
	res := make([]Res, c.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case k := <-c.calls:
			batch = append(batch, k)
		case <-c.done:
			return
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.done:
			return // the caller's Do answers ErrClosed
		}
	fill:
		for len(batch) < c.opts.MaxBatch {
			select {
			case k := <-c.calls:
				batch = append(batch, k)
			default:
				break fill
			}
		}
		reqs = reqs[:0]
		for _, k := range batch {
			reqs = append(reqs, k.req)
		}
		c.do(reqs, res[:len(batch)])
		<-c.slots
		var zr Req
		var zs Res
		for i, k := range batch {
			k.res <- res[i]
			res[i], reqs[i] = zs, zr
		}
	}
}

func (c *Coalescer[Req, Res]) do(reqs []Req, res []Res) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	c.run(ctx, reqs, res)
}
