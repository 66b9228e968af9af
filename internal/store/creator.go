package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/coalesce"
	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrCreatorClosed is returned by Creator.Create after Close.
var ErrCreatorClosed = coalesce.ErrClosed

type createCall struct {
	j       *job.Job
	reqHash string
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
	s *Store
	c *coalesce.Coalescer[createCall, createResult]
}

// NewCreator starts a Creator on s, batching as opts say; Close stops it.
func NewCreator(s *Store, opts coalesce.Options) *Creator {
	c := &Creator{s: s}
	c.c = coalesce.New(opts, c.run)
	return c
}

// Close stops the Creator; calls waiting or arriving later fail with
// ErrCreatorClosed, a round trip in flight finishes first.
func (c *Creator) Close() { c.c.Close() }

// Create is Store.Create, coalesced with concurrent calls. If ctx ends while
// the call waits, Create returns ctx's error, but the record may still have
// been created.
func (c *Creator) Create(ctx context.Context, j *job.Job, reqHash string) (Created, error) {
	r, err := c.c.Do(ctx, createCall{j: j, reqHash: reqHash})
	if err != nil {
		return Created{}, err
	}
	return r.c, r.err
}

func (c *Creator) args(call createCall) ([]string, []any) {
	j := call.j
	return []string{Key(j.Tenant, j.ID)},
		[]any{j.Task, string(j.Lane), ms(j.Created), call.reqHash, j.Backfill, j.DocID, c.s.ttl(j).Milliseconds()}
}

// run sends batch as one pipeline and answers every call; a command's own
// error answers its call only.
func (c *Creator) run(ctx context.Context, batch []createCall, out []createResult) {
	cmds := make([]*redis.Cmd, len(batch))
	var wait *redis.IntCmd
	_ = pipeline(ctx, c.s.rdb, func(p redis.Pipeliner) {
		for i, call := range batch {
			keys, args := c.args(call)
			cmds[i] = createScript.EvalSha(ctx, p, keys, args...)
		}
		wait = c.s.confirm.queue(ctx, p)
	}, createScript)
	// A record the replicas have not confirmed could vanish in a failover
	// after ingest answered 202: every call fails, and a retry finds its
	// record queued and publishes again.
	unconfirmed := c.s.confirm.check(wait)
	for i, call := range batch {
		res, err := cmds[i].Slice()
		if err == nil && unconfirmed != nil {
			err = unconfirmed
		}
		if err != nil {
			out[i] = createResult{err: fmt.Errorf("create job %s: %w", call.j.ID, err)}
		} else {
			out[i] = createResult{c: createdOf(res)}
		}
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
