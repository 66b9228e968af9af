package queue

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Backlog is where a durable consumer stands.
type Backlog struct {
	// Pending is the number of jobs not yet handed to any worker.
	Pending uint64
	// AckPending is the number of jobs handed out and not yet acknowledged.
	AckPending int
	// Redelivered is the number of jobs handed out more than once and not
	// yet acknowledged.
	Redelivered int
}

// ConsumerBacklog asks the server for the backlog of the consumer of lane and
// task (one round trip; poll it every few seconds, not per job).
func (c *Client) ConsumerBacklog(ctx context.Context, l job.Lane, task string) (Backlog, error) {
	cons, err := c.js.Consumer(ctx, job.StreamJobs, ConsumerName(l, task))
	if err != nil {
		return Backlog{}, fmt.Errorf("consumer %s: %w", ConsumerName(l, task), err)
	}
	info := cons.CachedInfo()
	return Backlog{Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered}, nil
}

// StreamBytes is how many bytes a stream holds and the most it may hold (0:
// no byte limit).
func (c *Client) StreamBytes(ctx context.Context, name string) (used uint64, limit int64, err error) {
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return 0, 0, classify(fmt.Errorf("stream %s: %w", name, err))
	}
	info := s.CachedInfo()
	return info.State.Bytes, info.Config.MaxBytes, nil
}

// Consumer returns the configuration Pull creates for the durable consumer
// of lane and task; nats/consumers/ holds it as JSON for operators who
// create consumers ahead of the workers.
func (c ConsumerConfig) Consumer(l job.Lane, task string) jetstream.ConsumerConfig {
	return c.consumer(l, task)
}
