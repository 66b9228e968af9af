package tenant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by Admitter.Admit after Close.
var ErrClosed = errors.New("admitter closed")

// AdmitterOptions tune an Admitter.
type AdmitterOptions struct {
	// MaxBatch is the most admissions sent in one pipeline. Defaults to 256.
	MaxBatch int
	// Pipelines is how many pipelines may be in flight at once; each is a
	// loop that takes whatever calls are waiting when its last round trip
	// ends. Defaults to 2.
	Pipelines int
	// Timeout bounds one round trip. Defaults to 2s.
	Timeout time.Duration
}

type admitCall struct {
	tenantID string
	a        admitArgs
	res      chan admitResult // buffered: the loop never blocks on a caller
}

type admitResult struct {
	d   Decision
	err error
}

// Admitter coalesces concurrent Admit calls: calls that arrive while a round
// trip is in flight wait for the next one, which carries all of them as one
// pipeline of EVALSHAs. Under load one round trip serves many requests, so
// admission is no longer capped by the Redis round-trip rate; an idle
// Admitter adds no delay, since a lone call is sent at once. It is safe for
// concurrent use.
type Admitter struct {
	s     *Store
	opts  AdmitterOptions
	calls chan *admitCall
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	pool  sync.Pool
}

// NewAdmitter starts an Admitter on s; Close stops it.
func NewAdmitter(s *Store, opts AdmitterOptions) *Admitter {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Pipelines <= 0 {
		opts.Pipelines = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	a := &Admitter{
		s:     s,
		opts:  opts,
		calls: make(chan *admitCall, opts.MaxBatch*opts.Pipelines),
		done:  make(chan struct{}),
	}
	a.pool.New = func() any { return &admitCall{res: make(chan admitResult, 1)} }
	a.wg.Add(opts.Pipelines)
	for range opts.Pipelines {
		go a.loop()
	}
	return a
}

// Close stops the Admitter: calls waiting or arriving later fail with
// ErrClosed; a round trip in flight finishes first.
func (a *Admitter) Close() {
	a.once.Do(func() { close(a.done) })
	a.wg.Wait()
}

// Admit is Store.Admit, coalesced with concurrent calls. If ctx ends while
// the call waits, Admit returns ctx's error, but the admission may still have
// been applied.
func (a *Admitter) Admit(ctx context.Context, tenantID, jti string, docs int64, now time.Time) (Decision, error) {
	if d, done, err := precheck(tenantID, jti, docs); done {
		return d, err
	}
	c := a.pool.Get().(*admitCall)
	c.tenantID = tenantID
	c.a = newAdmitArgs(tenantID, jti, docs, now)
	select {
	case a.calls <- c:
	case <-a.done:
		return Decision{}, ErrClosed
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
	select {
	case r := <-c.res:
		c.a = admitArgs{}
		a.pool.Put(c) // only reused once its result has been taken
		return r.d, r.err
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	case <-a.done:
		// The loop may still answer; c is dropped, not reused.
		select {
		case r := <-c.res:
			return r.d, r.err
		default:
			return Decision{}, ErrClosed
		}
	}
}

func (a *Admitter) loop() {
	defer a.wg.Done()
	batch := make([]*admitCall, 0, a.opts.MaxBatch)
	cmds := make([]*redis.Cmd, 0, a.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case c := <-a.calls:
			batch = append(batch, c)
		case <-a.done:
			return
		}
	fill:
		for len(batch) < a.opts.MaxBatch {
			select {
			case c := <-a.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		cmds = a.run(batch, cmds[:0])
	}
}

// run sends batch as one pipeline and answers every call. Calls whose EVALSHA
// met an empty script cache are sent again with EVAL, which reloads it.
func (a *Admitter) run(batch []*admitCall, cmds []*redis.Cmd) []*redis.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.Timeout)
	defer cancel()
	pipe := a.s.rdb.Pipeline()
	for _, c := range batch {
		cmds = append(cmds, admitScript.EvalSha(ctx, pipe, c.a.keys, c.a.args...))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var retry []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe := a.s.rdb.Pipeline()
		for _, i := range retry {
			c := batch[i]
			cmds[i] = admitScript.Eval(ctx, pipe, c.a.keys, c.a.args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, c := range batch {
		var r admitResult
		res, err := cmds[i].Int64Slice()
		if err != nil {
			r.err = fmt.Errorf("admit %s: %w", c.tenantID, err)
		} else {
			r.d, r.err = decide(res, c.a.now)
		}
		c.res <- r
		cmds[i] = nil
	}
	return cmds
}
