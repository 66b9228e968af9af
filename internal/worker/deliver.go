package worker

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// deliverBatches writes final states, sends results, and settles messages.
func (pl *pipeline) deliverBatches(ctx context.Context, in <-chan []*item) error {
	for batch := range in {
		pl.deliver(ctx, batch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// deliver ends a batch in the order the contract fixes: results that must
// be stored durably first (backfill documents' result lines), then the
// final states in the store (first final state wins), then the webhook
// events of jobs that ask for one, then replies to waiting callers, then
// each message settled with the queue.
func (pl *pipeline) deliver(ctx context.Context, batch []*item) {
	// Acks and nacks must go out even while the worker is being stopped.
	actx := context.WithoutCancel(ctx)
	now := time.Now()
	pl.publishFirst(ctx, actx, batch, now)
	if parked := parkedOf(batch); len(parked) > 0 {
		// Off the batch before they are handed over: the unparker owns
		// them from then on.
		batch = slices.DeleteFunc(slices.Clone(batch), func(it *item) bool { return it.parked })
		pl.park(ctx, parked)
	}
	pl.store(ctx, batch, now)
	// After the final states are stored and before any reply or ack: a
	// job acknowledged without its webhook event queued would never send it.
	pl.notifyWebhooks(actx, batch, now)
	var ds []job.Delivery
	for _, it := range batch {
		switch it.outcome {
		case resend:
			if d, ok := it.sink.resend(actx, pl.w.st, it); ok {
				ds = append(ds, d)
			}
		case finish, dead:
			if d, ok := it.sink.after(it, now); ok {
				ds = append(ds, d)
			}
		}
	}
	if len(ds) > 0 {
		dctx, cancel := context.WithTimeout(actx, 10*time.Second)
		err := pl.w.q.Reply(dctx, ds)
		cancel()
		if err != nil {
			// The final state is stored; a redelivery will send it again.
			pl.w.log.WarnContext(ctx, "deliver results", slog.String("task", pl.model.Task()), slog.Any("error", err))
			for _, it := range batch {
				if it.outcome == finish || it.outcome == resend {
					it.retryLater(pl.w.retryDelay(it.msg.Attempt), nil)
				}
			}
		}
	}
	for _, it := range batch {
		pl.settle(actx, it)
	}
}

// store writes the final states of the batch's items that have one, in one
// round trip, holding the batch while the store is away. An item the store
// finds final already keeps the stored state, which it resends.
func (pl *pipeline) store(ctx context.Context, batch []*item, now time.Time) {
	var finals []store.Final
	var fidx []*item
	for _, it := range batch {
		if !it.final() {
			continue
		}
		if it.msg.Job.ID == "" || it.msg.Job.Tenant == "" {
			continue // undecodable: no record to write, only a dead letter
		}
		it.timings.Delivery = ms(now.Sub(it.doneAt()))
		// Whole microseconds, like every stage: a float sum of two
		// would print as 0.8280000000000001.
		it.timings.Total = float64(now.Sub(it.received).Microseconds()+int64(math.Round(it.timings.Queue*1000))) / 1000
		t := it.timings
		f := store.Final{Job: &it.msg.Job, Status: it.status, Result: it.result,
			Error: it.err, Attempts: it.msg.Attempt, Timings: &t, Reused: it.reused, ReuseKey: it.reuseKey,
			ResultBytes: it.resultBytes}
		if it.unmarked {
			f.Started = it.started
		}
		finals = append(finals, f)
		fidx = append(fidx, it)
	}
	if len(finals) == 0 {
		return
	}
	var sts []job.Status
	err := pl.untilStored(ctx, "finish", func(sctx context.Context) (err error) {
		sts, err = pl.w.st.Finish(sctx, finals, now)
		return err
	})
	if err != nil {
		// A hard stop during a store outage: leave the jobs to redelivery.
		for _, it := range fidx {
			it.retryLater(pl.w.retryDelay(it.msg.Attempt), nil)
		}
		return
	}
	pl.notifyBackfills(ctx, finals)
	for i, it := range fidx {
		if sts[i] != it.status {
			// An earlier delivery or a cancellation got there first: its
			// state stands, and is what the caller must see.
			it.resendStored(sts[i])
		}
	}
}

// settle settles one message with the queue: ack, nak, or dead-letter.
func (pl *pipeline) settle(ctx context.Context, it *item) {
	defer pl.hand.remove(it.msg)
	var err error
	if it.outcome == resend && it.status == job.StatusDead {
		// An earlier delivery stored the dead state but did not live to
		// dead-letter the job: do it now (the DLQ copy is de-duplicated).
		code, msg := job.CodeInternal, "dead"
		if rec, gerr := pl.w.st.Get(ctx, it.msg.Job.Tenant, it.msg.Job.ID); gerr == nil && rec.Error != nil {
			code, msg = rec.Error.Code, rec.Error.Message
		}
		if err := pl.w.q.DeadLetter(ctx, it.msg, code, msg); err != nil {
			pl.w.log.WarnContext(ctx, "settle message", slog.String("job_id", it.msg.Job.ID), slog.Any("error", err))
			_ = it.msg.NakWithDelay(pl.w.retryDelay(it.msg.Attempt))
		}
		return
	}
	switch it.outcome {
	case finish, resend:
		err = it.msg.Ack()
		pl.ended(ctx, it)
	case dead:
		code, msg := job.CodeInvalidInput, "dead"
		if it.err != nil {
			code, msg = it.err.Code, it.err.Message
		}
		err = pl.w.q.DeadLetter(ctx, it.msg, code, msg)
		pl.ended(ctx, it)
	case retry, pending:
		err = it.msg.NakWithDelay(it.delay)
		pl.w.m.retries.Add(1)
		endJobSpan(it, "retry")
	}
	if err != nil {
		pl.w.log.WarnContext(ctx, "settle message", slog.String("job_id", it.msg.Job.ID), slog.Any("error", err))
	}
}

// ended is the one place where the worker is done with a job in its final
// state (stored, delivered, its message settled): finished here, or found
// final by the store (resend). What must happen once per final state in
// this worker (metrics, the job's span) happens here.
func (pl *pipeline) ended(ctx context.Context, it *item) {
	var t *job.Timings
	if it.outcome != resend {
		t = &it.timings
	}
	pl.w.m.finished(ctx, &it.msg.Job, it.status, t, time.Since(it.doneAt()))
	if it.outcome == dead {
		pl.w.m.deadLettered(ctx, &it.msg.Job)
	}
	endJobSpan(it, it.status)
}

func parkedOf(batch []*item) []*item {
	var out []*item
	for _, it := range batch {
		if it.parked {
			out = append(out, it)
		}
	}
	return out
}

// publishFirst stores the results their sinks want stored before the final
// state (backfill documents' result lines, which have no job record to
// hold them: once the store counts a document final, RESULTS must have its
// result already). A redelivery after a store failure publishes again and
// JetStream drops the copy by its message id. Items whose results a full
// RESULTS refuses are marked parked; those whose publish fails otherwise
// are retried later.
//
// Before that, a document whose tenant holds its share of RESULTS
// (Config.ResultShares) is not published: it is parked as heldShare, so
// that one tenant that does not export its results cannot fill the stream
// every tenant's backfills share. What is published is sized for the
// tenant's RESULTS account (item.resultBytes): the payload and the subject.
// The headers and JetStream's own per-message record are not counted, so
// for small results (a classification's few hundred bytes) the account
// runs low by tens of percent.
func (pl *pipeline) publishFirst(ctx, actx context.Context, batch []*item, now time.Time) {
	var ds []job.Delivery
	var its []*item
	var over map[string]bool
	for _, it := range batch {
		if !it.final() {
			continue
		}
		if d, ok := it.sink.before(it, now); ok {
			if !it.msg.Job.ReadAtEnd && pl.overShare(ctx, it.msg.Job.Tenant, &over) {
				it.parked, it.heldShare = true, true
				continue
			}
			ds = append(ds, d)
			its = append(its, it)
			// Read by Finish only once RESULTS has stored the result
			// (a parked or retried item is not finished yet).
			if !it.msg.Job.ReadAtEnd { // not the tenant's share to free: see job.Job.ReadAtEnd
				it.resultBytes = int64(len(d.Data) + len(d.Subject))
			}
		}
	}
	if len(ds) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(actx, 10*time.Second)
	err := pl.w.q.PublishResults(dctx, ds)
	cancel()
	if err == nil {
		return
	}
	if errors.Is(err, job.ErrFull) {
		// RESULTS is full: the refused documents are parked (park.go); the
		// others were stored and go on.
		var de *job.DeliverError
		if errors.As(err, &de) {
			for _, i := range de.Failed {
				its[i].parked = true
			}
		} else {
			for _, it := range its {
				it.parked = true
			}
		}
		return
	}
	pl.w.log.WarnContext(ctx, "deliver backfill results", slog.String("task", pl.model.Task()), slog.Any("error", err))
	for _, it := range its {
		it.retryLater(pl.w.retryDelay(it.msg.Attempt), nil)
	}
}

// overShare reports whether tenant holds its share of RESULTS, asking
// Config.ResultShares once per tenant and batch (seen remembers the
// answers). A use that cannot be read is not over: the publish itself
// tells whether RESULTS has room.
func (pl *pipeline) overShare(ctx context.Context, tenant string, seen *map[string]bool) bool {
	rs := pl.w.cfg.ResultShares
	if rs == nil || tenant == "" {
		return false
	}
	if v, ok := (*seen)[tenant]; ok {
		return v
	}
	if *seen == nil {
		*seen = map[string]bool{}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	u, err := rs.Use(sctx, tenant)
	cancel()
	over := err == nil && u.Over()
	(*seen)[tenant] = over
	return over
}
