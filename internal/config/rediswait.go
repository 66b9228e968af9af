package config

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults of RedisWait.
const (
	// RedisWaitReplicasDefault asks no replica to confirm a final state:
	// Redis's asynchronous replication, as without jetinfer.
	RedisWaitReplicasDefault = 0
	// RedisWaitTimeoutDefault is how long a batch's final states wait for
	// the replicas.
	RedisWaitTimeoutDefault = time.Second
)

// RedisWait makes the worker wait, after writing a batch's final states,
// until that many replicas have them (Redis's WAIT) before it acknowledges
// the jobs, so that a failover to a replica cannot lose a final state
// whose job is gone from JetStream. See docs/durability.md.
type RedisWait struct {
	// Replicas is how many replicas must confirm. Defaults to
	// RedisWaitReplicasDefault (none).
	Replicas int
	// Timeout is how long to wait for them; fewer in time fails the
	// batch's write, and its jobs are delivered again. Defaults to
	// RedisWaitTimeoutDefault.
	Timeout time.Duration
}

// RegisterFlags registers the flags of RedisWait.
func (c *RedisWait) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Replicas, "redis-wait-replicas", RedisWaitReplicasDefault,
		"replicas that must confirm a batch's final states (Redis WAIT) before its jobs are acknowledged; 0 does not wait (not with redis+cluster://)")
	fs.DurationVar(&c.Timeout, "redis-wait-timeout", RedisWaitTimeoutDefault,
		"how long final states wait for --redis-wait-replicas; fewer in time and the jobs are delivered again")
}

// Validate checks the settings against the Redis they apply to.
func (c *RedisWait) Validate(r Redis) error {
	switch {
	case c.Replicas < 0:
		return fmt.Errorf("redis-wait-replicas: must not be negative, got %d", c.Replicas)
	case c.Replicas > 0 && c.Timeout <= 0:
		return fmt.Errorf("redis-wait-timeout: must be positive with --redis-wait-replicas, got %s", c.Timeout)
	case c.Replicas > 0 && redisClusterURL.MatchString(r.URL):
		// WAIT counts what one connection wrote; a cluster pipeline writes
		// through one connection per master.
		return errors.New("redis-wait-replicas: not supported with redis+cluster://; set min-replicas-to-write on the masters instead")
	}
	return nil
}
