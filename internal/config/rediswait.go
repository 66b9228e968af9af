package config

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults of RedisWait.
const (
	// RedisWaitReplicasDefault asks no replica to confirm a write: Redis's
	// asynchronous replication, as without jetinfer.
	RedisWaitReplicasDefault = 0
	// RedisWaitTimeoutDefault is how long a write waits for the replicas.
	RedisWaitTimeoutDefault = time.Second
)

// RedisWait makes a write that is about to be acknowledged wait until that
// many replicas have it (Redis's WAIT), so that a failover to a replica
// cannot lose it: in the worker, a batch's final states before their jobs
// are acknowledged to JetStream (the jobs are gone from the queue then); in
// ingest, a job's record and a backfill's creation, document marks, seal
// and cancel before the client gets its answer. See docs/durability.md.
type RedisWait struct {
	// Replicas is how many replicas must confirm. Defaults to
	// RedisWaitReplicasDefault (none).
	Replicas int
	// Timeout is how long to wait for them; fewer in time fails the
	// write: the worker's jobs are delivered again, ingest answers 503 and
	// the client's retry finds what was written. Defaults to
	// RedisWaitTimeoutDefault.
	Timeout time.Duration
}

// RegisterFlags registers the flags of RedisWait.
func (c *RedisWait) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Replicas, "redis-wait-replicas", RedisWaitReplicasDefault,
		"Redis replicas that must confirm a write (WAIT) before it is acknowledged: final states before their jobs (worker), records and backfill marks before the answer (ingest); 0 does not wait (not with redis+cluster://)")
	fs.DurationVar(&c.Timeout, "redis-wait-timeout", RedisWaitTimeoutDefault,
		"how long a write waits for --redis-wait-replicas; fewer in time and the worker's jobs are delivered again, ingest answers 503")
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
