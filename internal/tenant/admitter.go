package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/coalesce"
)

// ErrClosed is returned by Admitter.Admit after Close.
var ErrClosed = coalesce.ErrClosed

type admitCall struct {
	tenantID string
	a        admitArgs
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
	s *Store
	c *coalesce.Coalescer[admitCall, admitResult]
}

// NewAdmitter starts an Admitter on s, batching as opts say; Close stops it.
func NewAdmitter(s *Store, opts coalesce.Options) *Admitter {
	a := &Admitter{s: s}
	a.c = coalesce.New(opts, a.run)
	return a
}

// Close stops the Admitter: calls waiting or arriving later fail with
// ErrClosed; a round trip in flight finishes first.
func (a *Admitter) Close() { a.c.Close() }

// Admit is Store.Admit, coalesced with concurrent calls. If ctx ends while
// the call waits, Admit returns ctx's error, but the admission may still have
// been applied.
func (a *Admitter) Admit(ctx context.Context, tenantID, jti string, docs int64, now time.Time) (Decision, error) {
	if d, done, err := precheck(tenantID, jti, docs); done {
		return d, err
	}
	r, err := a.c.Do(ctx, admitCall{tenantID: tenantID, a: newAdmitArgs(tenantID, jti, docs, now)})
	if err != nil {
		return Decision{}, err
	}
	return r.d, r.err
}

// run sends batch as one pipeline and answers every call. Calls whose EVALSHA
// met an empty script cache are sent again with EVAL, which reloads it.
func (a *Admitter) run(ctx context.Context, batch []admitCall, out []admitResult) {
	cmds := make([]*redis.Cmd, 0, len(batch))
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
		res, err := cmds[i].Int64Slice()
		if err != nil {
			out[i] = admitResult{err: fmt.Errorf("admit %s: %w", c.tenantID, err)}
			continue
		}
		d, err := decide(res, c.a.now)
		out[i] = admitResult{d: d, err: err}
	}
}
