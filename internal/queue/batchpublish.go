package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Published is the outcome of one job of PublishBatch.
type Published = job.Published

// PublishBatch enqueues jobs with asynchronous publishes that are all in
// flight at once, then waits for every confirmation: a chunk of backfill
// documents costs about one round trip, not one per document. reply gives
// each job's reply subject. Keep batches within the connection's
// asynchronous window (4,096). The outcome of jobs[i] is out[i].
func (c *Client) PublishBatch(ctx context.Context, jobs []*job.Job, reply func(*job.Job) string) []Published {
	out := make([]Published, len(jobs))
	futs := make([]jetstream.PubAckFuture, len(jobs))
	for i, j := range jobs {
		data, err := json.Marshal(j)
		if err != nil {
			out[i].Err = fmt.Errorf("encode job: %w", err)
			continue
		}
		msg := &nats.Msg{Subject: job.SubjectOf(j), Data: data, Header: nats.Header{}}
		msg.Header.Set(job.HeaderTenant, j.Tenant)
		if r := reply(j); r != "" {
			msg.Header.Set(job.HeaderReply, r)
		}
		f, err := c.js.PublishMsgAsync(msg, jetstream.WithMsgID(j.MsgID()), jetstream.WithExpectStream(job.StreamJobs))
		if err != nil {
			out[i].Err = classify(fmt.Errorf("publish %s: %w", msg.Subject, err))
			continue
		}
		futs[i] = f
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i].Dup = ack.Duplicate
			c.hintWork(jobs[i])
		case err := <-f.Err():
			out[i].Err = classify(fmt.Errorf("publish %s: %w", f.Msg().Subject, err))
		case <-ctx.Done():
			// The message may still be stored; a retry with the same id is
			// de-duplicated by JetStream.
			out[i].Err = fmt.Errorf("publish: %w", ctx.Err())
		}
	}
	return out
}
