package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is the error of a write that fewer replicas than its
// Confirm asks confirmed in time. The write is on the master: a caller
// that acknowledged nothing yet writes again (every confirmed write here
// is idempotent: the first final state wins, a mark is set once, a queued
// record is found queued) until a WAIT succeeds.
var ErrNotReplicated = errors.New("write not confirmed by enough Redis replicas")

// Confirm says how many replicas must have a write before it counts as
// done, and how long to wait for them: Redis's WAIT, sent in the same round
// trip and on the same connection as the write (WAIT counts what one
// connection wrote). The zero Confirm does not wait.
//
// It is for a single master with replicas (Sentinel); a cluster pipeline
// writes through a connection per master, which one WAIT cannot cover.
type Confirm struct {
	Replicas int
	Timeout  time.Duration
}

// queue queues the WAIT after a pipeline's writes, or nothing.
func (c Confirm) queue(ctx context.Context, p redis.Pipeliner) *redis.IntCmd {
	if c.Replicas <= 0 {
		return nil
	}
	w := redis.NewIntCmd(ctx, "wait", c.Replicas, c.Timeout.Milliseconds())
	_ = p.Process(ctx, w)
	return w
}

// check checks a WAIT's answer.
func (c Confirm) check(w *redis.IntCmd) error {
	if w == nil {
		return nil
	}
	n, err := w.Result()
	if err != nil {
		return err
	}
	if int(n) < c.Replicas {
		return fmt.Errorf("%w: %d of %d within %s (are the replicas up and in sync?)", ErrNotReplicated, n, c.Replicas, c.Timeout)
	}
	return nil
}

// Eval runs script as Script.Run does, followed, when c asks for
// replicas, by a WAIT on the same connection; its error wraps
// ErrNotReplicated when the replicas did not confirm in time. The script's
// reply is returned either way: it ran on the master.
func (c Confirm) Eval(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	var cmd *redis.Cmd
	var w *redis.IntCmd
	err := pipeline(ctx, rdb, func(p redis.Pipeliner) {
		cmd = script.EvalSha(ctx, p, keys, args...)
		w = c.queue(ctx, p)
	}, script)
	if cmd.Err() != nil {
		return cmd, cmd.Err()
	}
	if err != nil {
		return cmd, err
	}
	return cmd, c.check(w)
}

// WithWait returns a copy of s whose writes that acknowledge work wait for
// replicas replicas, up to timeout: Finish (the worker acknowledges the
// jobs only then) and the Creator's records (ingest answers 202 only
// then). replicas 0 does not wait.
func (s *Store) WithWait(replicas int, timeout time.Duration) *Store {
	c := *s
	c.confirm = Confirm{Replicas: replicas, Timeout: timeout}
	return &c
}
