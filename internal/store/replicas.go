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

// FenceKey is the counter Confirm increments before each WAIT.
const FenceKey = "ji:wait-fence"

// queue queues the WAIT after a pipeline's writes, or nothing.
//
// A fence write goes first: newer Redis versions make WAIT wait for the
// offset of its connection's last write that reached the replication
// stream (not the server's offset after its last command), and a script that
// changed nothing (a retry that finds its record queued, its job final, its
// backfill sealed) leaves that offset where an older command put it, so a
// lagging replica would confirm at once. Redis replicates one stream in
// one order: once a replica acknowledges the fence, it has every write
// made before it on any connection, the earlier attempt's included.
func (c Confirm) queue(ctx context.Context, p redis.Pipeliner) *redis.IntCmd {
	if c.Replicas <= 0 {
		return nil
	}
	p.Incr(ctx, FenceKey)
	w := redis.NewIntCmd(ctx, "wait", c.Replicas, c.Timeout.Milliseconds())
	_ = p.Process(ctx, w)
	return w
}

// Sync waits, in one round trip of its own, until the replicas have every
// write made so far (the fence and WAIT of queue); nil when c asks for
// none. It is for a read that is about to be acknowledged as done: a
// redelivered job found final is acknowledged only once the replicas have
// the final state an earlier attempt wrote.
func (c Confirm) Sync(ctx context.Context, rdb redis.UniversalClient) error {
	if c.Replicas <= 0 {
		return nil
	}
	var w *redis.IntCmd
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { w = c.queue(ctx, p); return nil }); err != nil {
		return err
	}
	return c.check(w)
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
