package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrStopped is returned by Puller.Next once the puller was stopped or
// drained and no buffered message is left.
var ErrStopped = job.ErrStopped

// Puller pulls the jobs of one lane and task from its durable consumer.
type Puller struct {
	Lane job.Lane
	Task string
	it   jetstream.MessagesContext
}

// Pull ensures the durable consumer of lane and task exists with cfg and
// starts pulling from it, keeping up to prefetch messages buffered (about one
// batch: prefetched messages age in the client while they wait).
func (c *Client) Pull(ctx context.Context, l job.Lane, task string, cfg ConsumerConfig, prefetch int) (*Puller, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, job.StreamJobs, cfg.consumer(l, task))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", ConsumerName(l, task), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(prefetch, 1)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ConsumerName(l, task), err)
	}
	return &Puller{Lane: l, Task: task, it: it}, nil
}

// Next blocks until a message arrives. It returns ErrStopped after Stop or
// once Drain has handed out every buffered message.
func (p *Puller) Next() (*Msg, error) {
	m, err := p.it.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, job.ErrStopped
		}
		return nil, fmt.Errorf("next %s: %w", ConsumerName(p.Lane, p.Task), err)
	}
	return newMsg(m), nil
}

// Stop stops pulling at once; buffered messages are left to redelivery.
func (p *Puller) Stop() { p.it.Stop() }

// Drain stops pulling but lets Next hand out the messages already buffered.
func (p *Puller) Drain() { p.it.Drain() }

// Msg is one delivery of a job; see job.Msg.
type Msg = job.Msg

func newMsg(m jetstream.Msg) *Msg {
	h := m.Headers()
	msg := &Msg{Attempt: 1, Header: Header(h), Subject: m.Subject(), Data: m.Data(), Settler: settler{m}}
	if md, err := m.Metadata(); err == nil {
		msg.Attempt = int(md.NumDelivered)
		msg.Enqueued = md.Timestamp
		msg.StreamSeq = md.Sequence.Stream
	}
	msg.Reply = h.Get(job.HeaderReply)
	if err := json.Unmarshal(m.Data(), &msg.Job); err != nil {
		msg.DecodeErr = fmt.Errorf("decode job: %w", err)
	} else if lane, task, err := job.ParseSubject(m.Subject()); err != nil {
		msg.DecodeErr = err
	} else if msg.Job.Task != task || msg.Job.Lane != lane {
		msg.DecodeErr = fmt.Errorf("job %s names task %q lane %q but came on %s", msg.Job.ID, msg.Job.Task, msg.Job.Lane, m.Subject())
	} else if msg.Job.ID == "" {
		msg.DecodeErr = errors.New("job has no id")
	}
	if t := h.Get(job.HeaderTenant); t != "" && msg.Job.Tenant == "" {
		msg.Job.Tenant = t
	}
	return msg
}

// settler settles a JetStream delivery.
type settler struct{ m jetstream.Msg }

func (s settler) Ack() error                         { return s.m.Ack() }
func (s settler) NakWithDelay(d time.Duration) error { return s.m.NakWithDelay(d) }
func (s settler) Term(reason string) error           { return s.m.TermWithReason(reason) }
func (s settler) InProgress() error                  { return s.m.InProgress() }
