package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is Finish's error when fewer replicas than WithWait
// asks confirmed the final states in time. The states are written on the
// master; the caller keeps the jobs unacknowledged and writes again (the
// write finds them final, the first final state wins) until a WAIT
// succeeds.
var ErrNotReplicated = errors.New("final states not confirmed by enough Redis replicas")

// WithWait returns a copy of s whose Finish waits, in the same round trip
// and on the same connection as its writes (Redis's WAIT counts what one
// connection wrote), until replicas replicas have the final states, or
// timeout. replicas 0 does not wait. It is for a single master with
// replicas (Sentinel); a cluster pipeline writes through a connection per
// master, which one WAIT cannot cover.
func (s *Store) WithWait(replicas int, timeout time.Duration) *Store {
	c := *s
	c.waitReplicas, c.waitTimeout = replicas, timeout
	return &c
}

// wait queues the WAIT after a pipeline's writes, or nothing.
func (s *Store) wait(ctx context.Context, p redis.Pipeliner) *redis.IntCmd {
	if s.waitReplicas <= 0 {
		return nil
	}
	c := redis.NewIntCmd(ctx, "wait", s.waitReplicas, s.waitTimeout.Milliseconds())
	_ = p.Process(ctx, c)
	return c
}

// waited checks a WAIT's answer.
func (s *Store) waited(c *redis.IntCmd) error {
	if c == nil {
		return nil
	}
	n, err := c.Result()
	if err != nil {
		return err
	}
	if int(n) < s.waitReplicas {
		return fmt.Errorf("%w: %d of %d within %s (are the replicas up and in sync?)", ErrNotReplicated, n, s.waitReplicas, s.waitTimeout)
	}
	return nil
}
