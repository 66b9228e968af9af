package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
)

// deliverBatches writes final states, sends results, and acknowledges.
func (pl *pipeline) deliverBatches(ctx context.Context, in <-chan []*item) error {
	for batch := range in {
		pl.deliver(ctx, batch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (pl *pipeline) deliver(ctx context.Context, batch []*item) {
	// Acks and nacks must go out even while the worker is being stopped.
	actx := context.WithoutCancel(ctx)
	now := time.Now()
	pl.deliverBackfill(ctx, actx, batch, now)
	if parked := parkedOf(batch); len(parked) > 0 {
		// Off the batch before they are handed over: the unparker owns
		// them from then on.
		batch = slices.DeleteFunc(slices.Clone(batch), func(it *item) bool { return it.parked })
		pl.park(ctx, parked)
	}
	var finals []store.Final
	var fidx []*item
	for _, it := range batch {
		if it.outcome == finish || it.outcome == dead {
			if it.outcome == dead {
				it.status = job.StatusDead
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
				Error: it.err, Attempts: it.msg.Attempt, Timings: &t, Reused: it.reused, ReuseKey: it.reuseKey}
			if it.unmarked {
				f.Started = it.started
			}
			finals = append(finals, f)
			fidx = append(fidx, it)
		}
	}
	if len(finals) > 0 {
		var sts []job.Status
		err := pl.untilStored(ctx, "finish", func(sctx context.Context) (err error) {
			sts, err = pl.w.st.Finish(sctx, finals, now)
			return err
		})
		if err != nil {
			// A hard stop during a store outage: leave the jobs to redelivery.
			for _, it := range fidx {
				it.outcome, it.delay = retry, pl.w.retryDelay(it.msg.Attempt)
			}
		} else {
			for i, it := range fidx {
				if sts[i] != it.status {
					// An earlier delivery or a cancellation got there first:
					// its state stands, and is what the caller must see.
					it.outcome, it.status = redeliver, sts[i]
				}
			}
		}
	}
	var ds []queue.Delivery
	for _, it := range batch {
		switch it.outcome {
		case redeliver:
			if it.msg.Reply == "" || it.msg.Job.Backfill != "" {
				// A backfill document's result went to RESULTS before its
				// final state was stored.
				continue
			}
			rec, err := pl.w.st.Get(actx, it.msg.Job.Tenant, it.msg.Job.ID)
			if err != nil {
				rec = job.RecordOf(&it.msg.Job, it.status)
			}
			ds = append(ds, pl.delivery(it, rec))
		case finish, dead:
			rec := it.record(now)
			rec.Timings = &it.timings
			if it.msg.Reply != "" && it.msg.Job.Backfill == "" {
				ds = append(ds, pl.delivery(it, rec))
			}
		}
	}
	if len(ds) > 0 {
		dctx, cancel := context.WithTimeout(actx, 10*time.Second)
		err := pl.w.q.Deliver(dctx, ds)
		cancel()
		if err != nil {
			// The final state is stored; a redelivery will send it again.
			pl.w.log.WarnContext(ctx, "deliver results", slog.String("task", pl.model.Task()), slog.Any("error", err))
			for _, it := range batch {
				if it.outcome == finish || it.outcome == redeliver {
					it.outcome, it.delay = retry, pl.w.retryDelay(it.msg.Attempt)
				}
			}
		}
	}
	for _, it := range batch {
		pl.settleMsg(actx, it)
	}
}

func (pl *pipeline) delivery(it *item, rec *job.Record) queue.Delivery {
	data, _ := json.Marshal(rec)
	return queue.Delivery{Subject: it.msg.Reply, MsgID: it.msg.Job.MsgID(), Data: data, Header: replyHeader(it)}
}

// settleMsg acknowledges, naks or dead-letters one message.
func (pl *pipeline) settleMsg(ctx context.Context, it *item) {
	defer pl.hand.remove(it.msg)
	var err error
	if it.outcome == redeliver && it.status == job.StatusDead {
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
	case finish, redeliver:
		err = it.msg.Ack()
		var t *job.Timings
		if it.outcome == finish {
			t = &it.timings
		}
		pl.w.m.finished(ctx, &it.msg.Job, it.status, t, time.Since(it.doneAt()))
		endJobSpan(it, it.status)
	case dead:
		code, msg := job.CodeInvalidInput, "dead"
		if it.err != nil {
			code, msg = it.err.Code, it.err.Message
		}
		err = pl.w.q.DeadLetter(ctx, it.msg, code, msg)
		pl.w.m.finished(ctx, &it.msg.Job, job.StatusDead, &it.timings, time.Since(it.doneAt()))
		pl.w.m.deadLettered(ctx, &it.msg.Job)
		endJobSpan(it, job.StatusDead)
	case retry, pending:
		err = it.msg.NakWithDelay(it.delay)
		pl.w.m.retries.Add(1)
		endJobSpan(it, "retry")
	}
	if err != nil {
		pl.w.log.WarnContext(ctx, "settle message", slog.String("job_id", it.msg.Job.ID), slog.Any("error", err))
	}
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

// deliverBackfill publishes the final results of backfill documents to
// their RESULTS subject before their final state is stored: a backfill
// document has no job record to hold its result, so once the store counts
// it final, RESULTS must have it already. A redelivery after a store
// failure publishes again and JetStream drops the copy by its message id.
// Documents whose results a full RESULTS refuses are marked parked; those
// whose publish fails otherwise are retried later.
func (pl *pipeline) deliverBackfill(ctx, actx context.Context, batch []*item, now time.Time) {
	var ds []queue.Delivery
	var its []*item
	for _, it := range batch {
		if (it.outcome != finish && it.outcome != dead) || it.msg.Job.Backfill == "" || it.msg.Reply == "" {
			continue
		}
		st := it.status
		if it.outcome == dead {
			st = job.StatusDead
		}
		rec := it.record(now)
		rec.Status = st
		ds = append(ds, pl.delivery(it, rec))
		its = append(its, it)
	}
	if len(ds) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(actx, 10*time.Second)
	err := pl.w.q.Deliver(dctx, ds)
	cancel()
	if err == nil {
		return
	}
	if errors.Is(err, queue.ErrFull) {
		// RESULTS is full: the refused documents are parked (park.go); the
		// others were stored and go on.
		var de *queue.DeliverError
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
		it.outcome, it.delay = retry, pl.w.retryDelay(it.msg.Attempt)
	}
}

// record is the item's final record as of now.
func (it *item) record(now time.Time) *job.Record {
	rec := job.RecordOf(&it.msg.Job, it.status)
	rec.Result, rec.Error, rec.Attempts = it.result, it.err, it.msg.Attempt
	rec.Started, rec.Finished = it.started, now
	return rec
}
