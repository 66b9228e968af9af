package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrCreatorClosed is returned by Creator.Create after Close.
var ErrCreatorClosed = errors.New("record creator closed")

// CreatorOptions tune a Creator.
type CreatorOptions struct {
	// MaxBatch is the most records created in one pipeline. Defaults to 256.
	MaxBatch int
	// Pipelines is how many pipelines may be in flight at once. Defaults to 2.
	Pipelines int
	// Timeout bounds one round trip. Defaults to 2s.
	Timeout time.Duration
}

type createCall struct {
	j       *job.Job
	reqHash string
	res     chan createResult // buffered: the loop never blocks on a caller
}

type createResult struct {
	c   Created
	err error
}

// Creator coalesces concurrent Create calls: calls that arrive while a round
// trip is in flight go together in the next one, as one pipeline of
// EVALSHAs, so that under load record creation costs one Redis round trip
// per batch of requests instead of one per request. A lone call is sent at
// once. It is safe for concurrent use.
type Creator struct {
	s     *Store
	opts  CreatorOptions
	calls chan *createCall
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// NewCreator starts a Creator on s; Close stops it.
func NewCreator(s *Store, opts CreatorOptions) *Creator {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Pipelines <= 0 {
		opts.Pipelines = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	c := &Creator{s: s, opts: opts, calls: make(chan *createCall, opts.MaxBatch*opts.Pipelines), done: make(chan struct{})}
	c.wg.Add(opts.Pipelines)
	for range opts.Pipelines {
		go c.loop()
	}
	return c
}

// Close stops the Creator; calls waiting or arriving later fail with
// ErrCreatorClosed, a round trip in flight finishes first.
func (c *Creator) Close() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}

// Create is Store.Create, coalesced with concurrent calls. If ctx ends while
// the call waits, Create returns ctx's error, but the record may still have
// been created.
func (c *Creator) Create(ctx context.Context, j *job.Job, reqHash string) (Created, error) {
	call := &createCall{j: j, reqHash: reqHash, res: make(chan createResult, 1)}
	select {
	case c.calls <- call:
	case <-c.done:
		return Created{}, ErrCreatorClosed
	case <-ctx.Done():
		return Created{}, ctx.Err()
	}
	select {
	case r := <-call.res:
		return r.c, r.err
	case <-ctx.Done():
		return Created{}, ctx.Err()
	case <-c.done:
		select {
		case r := <-call.res:
			return r.c, r.err
		default:
			return Created{}, ErrCreatorClosed
		}
	}
}

func (c *Creator) loop() {
	defer c.wg.Done()
	batch := make([]*createCall, 0, c.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case call := <-c.calls:
			batch = append(batch, call)
		case <-c.done:
			return
		}
	fill:
		for len(batch) < c.opts.MaxBatch {
			select {
			case call := <-c.calls:
				batch = append(batch, call)
			default:
				break fill
			}
		}
		c.run(batch)
	}
}

func (c *Creator) args(call *createCall) ([]string, []any) {
	j := call.j
	return []string{Key(j.Tenant, j.ID)},
		[]any{j.Task, string(j.Lane), ms(j.Created), call.reqHash, j.Backfill, j.DocID, c.s.ttl(j).Milliseconds()}
}

// run sends batch as one pipeline and answers every call. Commands that met
// an empty script cache (NOSCRIPT: they did not run) are sent again with
// EVAL, which loads the script.
func (c *Creator) run(batch []*createCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	cmds := make([]*redis.Cmd, len(batch))
	pipe := c.s.rdb.Pipeline()
	for i, call := range batch {
		keys, args := c.args(call)
		cmds[i] = createScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var retry []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")) {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe := c.s.rdb.Pipeline()
		for _, i := range retry {
			keys, args := c.args(batch[i])
			cmds[i] = createScript.Eval(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, call := range batch {
		var r createResult
		res, err := cmds[i].Slice()
		if err != nil {
			r.err = fmt.Errorf("create job %s: %w", call.j.ID, err)
		} else {
			r.c = createdOf(res)
		}
		call.res <- r
	}
}

// createdOf decodes createScript's answer.
func createdOf(res []any) Created {
	if n, _ := res[0].(int64); n == 1 {
		return Created{New: true}
	}
	c := Created{}
	if len(res) == 3 {
		c.ReqHash, _ = res[1].(string)
		st, _ := res[2].(string)
		c.Status = job.Status(st)
	}
	return c
}
