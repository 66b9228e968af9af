package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Backlog is job.Backlog: what a consumer has waiting and in flight.
type Backlog = job.Backlog

// ConsumerBacklog asks the server for the backlog of the consumer of lane and
// task (one round trip; poll it every few seconds, not per job). On a
// shared lane it is the sum over the lane's consumer and every tenant's.
func (c *Client) ConsumerBacklog(ctx context.Context, l job.Lane, task string) (Backlog, error) {
	if l.Shared() {
		list, err := c.TaskBacklogs(ctx)
		for _, cb := range list {
			if cb.Lane == l && cb.Task == task {
				return cb.Backlog, err
			}
		}
		if err != nil {
			return Backlog{}, err
		}
	}
	cons, err := c.js.Consumer(ctx, job.StreamJobs, ConsumerName(l, task))
	if err != nil {
		return Backlog{}, fmt.Errorf("consumer %s: %w", ConsumerName(l, task), err)
	}
	info := cons.CachedInfo()
	return Backlog{Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered}, nil
}

// Usage is how full a stream is.
type Usage = job.Usage

// StreamUsage asks the server how full a stream is (one round trip).
func (c *Client) StreamUsage(ctx context.Context, name string) (Usage, error) {
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return Usage{}, classify(fmt.Errorf("stream %s: %w", name, err))
	}
	info := s.CachedInfo()
	u := Usage{Bytes: info.State.Bytes, Msgs: info.State.Msgs, MaxBytes: info.Config.MaxBytes, MaxMsgs: info.Config.MaxMsgs,
		MaxAge: info.Config.MaxAge}
	if u.Msgs > 0 {
		u.First = info.State.FirstTime
	}
	return u, nil
}

// Consumer returns the configuration Pull creates for the durable consumer
// of lane and task; nats/consumers/ holds it as JSON for operators who
// create consumers ahead of the workers.
func (c ConsumerConfig) Consumer(l job.Lane, task string) jetstream.ConsumerConfig {
	return c.consumer(l, task)
}

// NamedBacklog is the backlog of one of JOBS' durable consumers.
type NamedBacklog struct {
	Name string
	Backlog
}

// Backlogs lists the backlog of every durable consumer of JOBS, by name.
func (c *Client) Backlogs(ctx context.Context) ([]NamedBacklog, error) {
	s, err := c.js.Stream(ctx, job.StreamJobs)
	if err != nil {
		return nil, classify(fmt.Errorf("stream %s: %w", job.StreamJobs, err))
	}
	var out []NamedBacklog
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		out = append(out, NamedBacklog{Name: info.Name,
			Backlog: Backlog{Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered}})
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", job.StreamJobs, err)
	}
	slices.SortFunc(out, func(a, b NamedBacklog) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// TaskBacklogs lists the backlog of every lane × task of JOBS, each tenant's
// consumer of a shared lane counted in its lane's; other consumers are left
// out. The consumer names are this package's to parse.
func (c *Client) TaskBacklogs(ctx context.Context) ([]job.ConsumerBacklog, error) {
	list, err := c.Backlogs(ctx)
	var out []job.ConsumerBacklog
	at := map[[2]string]int{}
	for _, nb := range list {
		for _, l := range job.Lanes {
			task, ok := strings.CutPrefix(nb.Name, ConsumerName(l, ""))
			task, _, _ = strings.Cut(task, tenantSep)
			if !ok || task == "" {
				continue
			}
			k := [2]string{string(l), task}
			i, seen := at[k]
			if !seen {
				at[k] = len(out)
				out = append(out, job.ConsumerBacklog{Lane: l, Task: task})
				i = len(out) - 1
			}
			b := &out[i].Backlog
			b.Pending += nb.Pending
			b.AckPending += nb.AckPending
			b.Redelivered += nb.Redelivered
		}
	}
	return out, err
}

// LaneQueued is how many jobs of one lane and task JOBS holds.
type LaneQueued struct {
	Lane job.Lane
	Task string
	// Msgs counts the jobs waiting or in a worker's hands, on the lane
	// subject and every tenant's.
	Msgs uint64
}

// QueuedByLane counts the jobs JOBS holds per lane and task, in one round
// trip. It reads the stream's subjects, not its consumers: it counts jobs
// whose tenant's consumer does not exist yet, or was removed while no
// worker ran, which is when an autoscaler must see them most.
func (c *Client) QueuedByLane(ctx context.Context) ([]LaneQueued, error) {
	counts, err := c.subjectCounts(ctx, "jobs.>")
	if err != nil {
		return nil, err
	}
	sums := map[[2]string]uint64{}
	for subj, n := range counts {
		if l, task, err := job.ParseSubject(subj); err == nil {
			sums[[2]string{string(l), task}] += n
		}
	}
	out := make([]LaneQueued, 0, len(sums))
	for k, n := range sums {
		out = append(out, LaneQueued{Lane: job.Lane(k[0]), Task: k[1], Msgs: n})
	}
	slices.SortFunc(out, func(a, b LaneQueued) int {
		return strings.Compare(string(a.Lane)+"."+a.Task, string(b.Lane)+"."+b.Task)
	})
	return out, nil
}
