package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
//
// Like Publish, it sends the jobs JetStream did not answer for again, with
// the same message ids, for up to the client's publish retry time: a stream
// leader election on a cluster is ridden out instead of failing the chunk.
func (c *Client) PublishBatch(ctx context.Context, jobs []*job.Job, reply func(*job.Job) string) []Published {
	c.begin()
	defer c.end()
	out := make([]Published, len(jobs))
	msgs := make([]*nats.Msg, len(jobs))
	todo := make([]int, 0, len(jobs))
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
		msgs[i] = msg
		todo = append(todo, i)
	}
	giveUp := time.Now().Add(c.publishRetry)
	wait := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		todo = c.publishBatchOnce(ctx, jobs, msgs, todo, out, attempt > 0, max(min(time.Until(giveUp), publishAttempt), time.Second))
		if len(todo) == 0 || ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			return out
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return out
		}
		wait = min(2*wait, time.Second)
	}
}

// publishBatchOnce publishes the jobs at todo, waits up to timeout for
// their acknowledgements, records each outcome in out, and returns the
// indexes JetStream did not answer for (ErrUnavailable). On a retry, a
// duplicate is most likely the earlier attempt's own message, stored with
// its answer lost: it is not reported as a duplicate.
func (c *Client) publishBatchOnce(ctx context.Context, jobs []*job.Job, msgs []*nats.Msg, todo []int, out []Published,
	retry bool, timeout time.Duration) []int {
	futs := make([]jetstream.PubAckFuture, len(todo))
	for k, i := range todo {
		out[i] = Published{}
		f, err := c.js.PublishMsgAsync(msgs[i], jetstream.WithMsgID(jobs[i].MsgID()), jetstream.WithExpectStream(job.StreamJobs))
		if err != nil {
			out[i].Err = classify(fmt.Errorf("publish %s: %w", msgs[i].Subject, err))
			continue
		}
		futs[k] = f
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	// Once the deadline has passed, deadline is closed: the jobs after
	// take what has arrived, and the rest are sent again.
	deadline := timer.C
	passed := make(chan time.Time)
	close(passed)
	var again []int
	for k, i := range todo {
		if f := futs[k]; f != nil {
			select {
			case ack := <-f.Ok():
				out[i].Dup = ack.Duplicate && !retry
				c.hintWork(jobs[i])
			case err := <-f.Err():
				out[i].Err = classify(fmt.Errorf("publish %s: %w", msgs[i].Subject, err))
			case <-deadline:
				deadline = passed
				// The message may still be stored; a retry with the same
				// id is de-duplicated by JetStream.
				out[i].Err = fmt.Errorf("publish %s: %w: no acknowledgement within %s", msgs[i].Subject, ErrUnavailable, timeout)
			case <-ctx.Done():
				out[i].Err = fmt.Errorf("publish: %w", ctx.Err())
			}
		}
		if errors.Is(out[i].Err, ErrUnavailable) {
			again = append(again, i)
		}
	}
	return again
}
