package queue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// DeadLetter copies m into the DLQ stream with the reason it cannot succeed
// and its attempt count, then terminates it so that it is never redelivered.
// The copy is de-duplicated by the job's stream sequence, so a retried call
// stores one dead letter.
func (c *Client) DeadLetter(ctx context.Context, m *Msg, code, reason string) error {
	task := m.Job.Task
	if task == "" {
		if _, t, err := job.ParseSubject(m.Subject()); err == nil {
			task = t
		} else {
			task = "_unknown"
		}
	}
	msg := &nats.Msg{Subject: job.DLQSubject(task), Data: m.Data(), Header: nats.Header{}}
	for k, v := range m.Header {
		if k == job.HeaderMsgID {
			continue
		}
		msg.Header[k] = v
	}
	msg.Header.Set(job.HeaderError, code+": "+reason)
	msg.Header.Set(job.HeaderAttempts, strconv.Itoa(m.Attempt))
	msg.Header.Set("Jetinfer-Subject", m.Subject())
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq:"+strconv.FormatUint(m.StreamSeq, 10))); err != nil {
		return classify(fmt.Errorf("dead-letter job %s: %w", m.Job.ID, err))
	}
	if err := m.Term(code + ": " + reason); err != nil {
		return fmt.Errorf("term job %s: %w", m.Job.ID, err)
	}
	return nil
}
