package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrNoResult means no result arrived within the wait given to Next; it
// is job.ErrNoResult.
var ErrNoResult = job.ErrNoResult

// Results reads the results of one backfill from the RESULTS stream, oldest
// first, with an ordered (ephemeral, flow-controlled) consumer.
type Results struct {
	js      jetstream.JetStream
	subject string
	it      jetstream.MessagesContext
}

// ReadResults starts reading results.<backfill> after stream sequence
// after (0: from the first).
func (c *Client) ReadResults(ctx context.Context, backfill string, after uint64) (job.ResultStream, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{job.ResultsSubject(backfill)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := c.js.OrderedConsumer(ctx, job.StreamResults, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("read results of %s: %w", backfill, err))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, classify(fmt.Errorf("read results of %s: %w", backfill, err))
	}
	return &Results{js: c.js, subject: job.ResultsSubject(backfill), it: it}, nil
}

// Next returns the next result, its stream sequence, and how many more the
// stream holds for the backfill at this moment. It returns ErrNoResult when
// none arrives within wait, and ctx's error when ctx ends.
func (r *Results) Next(ctx context.Context, wait time.Duration) (data []byte, seq, pending uint64, err error) {
	nctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := r.it.Next(jetstream.NextContext(nctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return nil, 0, 0, ErrNoResult
		}
		return nil, 0, 0, fmt.Errorf("next result: %w", err)
	}
	if md, err := m.Metadata(); err == nil {
		seq, pending = md.Sequence.Stream, md.NumPending
	}
	return m.Data(), seq, pending, nil
}

// LastSeq is the stream sequence of the backfill's latest result, 0 when
// it has none: a reader that has seen it has seen every result stored
// before the call.
func (r *Results) LastSeq(ctx context.Context) (uint64, error) {
	return lastSeq(ctx, r.js, r.subject)
}

// LastResultSeq is the stream sequence of backfill's latest result in
// RESULTS, 0 when it has none: an export cursor (?after=) that covers every
// result stored before the call.
func (c *Client) LastResultSeq(ctx context.Context, backfill string) (uint64, error) {
	return lastSeq(ctx, c.js, job.ResultsSubject(backfill))
}

func lastSeq(ctx context.Context, js jetstream.JetStream, subject string) (uint64, error) {
	st, err := js.Stream(ctx, job.StreamResults)
	if err != nil {
		return 0, classify(fmt.Errorf("stream %s: %w", job.StreamResults, err))
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(fmt.Errorf("last result on %s: %w", subject, err))
	}
	return m.Sequence, nil
}

// Stop ends the reading.
func (r *Results) Stop() { r.it.Stop() }

// PurgeResults removes the backfill's results up to and including stream
// sequence through (every one when through is 0): an export that has
// stored them frees their space, so that a full RESULTS takes results again.
func (c *Client) PurgeResults(ctx context.Context, backfill string, through uint64) error {
	st, err := c.js.Stream(ctx, job.StreamResults)
	if err != nil {
		return classify(fmt.Errorf("stream %s: %w", job.StreamResults, err))
	}
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(job.ResultsSubject(backfill))}
	if through > 0 {
		opts = append(opts, jetstream.WithPurgeSequence(through+1))
	}
	if err := st.Purge(ctx, opts...); err != nil {
		return classify(fmt.Errorf("purge results of %s: %w", backfill, err))
	}
	return nil
}

// ResultsHeld is how many results of backfill RESULTS holds now: after a
// purge, what the tenant's RESULTS account (store.ResultsLeft) re-derives
// the backfill's share from.
func (c *Client) ResultsHeld(ctx context.Context, backfill string) (uint64, error) {
	st, err := c.js.Stream(ctx, job.StreamResults)
	if err != nil {
		return 0, classify(fmt.Errorf("stream %s: %w", job.StreamResults, err))
	}
	subject := job.ResultsSubject(backfill)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, classify(fmt.Errorf("results held for %s: %w", backfill, err))
	}
	return info.State.Subjects[subject], nil
}

var _ job.ResultStream = (*Results)(nil)
