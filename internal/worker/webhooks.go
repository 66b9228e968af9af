package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// Webhooks queues the webhook events of finished jobs: for each job that
// names a webhook endpoint, an event carrying its final record. A nil
// Webhooks in Config publishes none.
type Webhooks interface {
	// Publish returns once the events are queued; recs[i] is the final
	// record of jobs[i]. An error leaves the jobs to be retried, and the
	// events a retry queues again are de-duplicated.
	Publish(ctx context.Context, jobs []*job.Job, recs []*job.Record) error
	// PublishBackfill queues backfill events the store's counts made due.
	PublishBackfill(ctx context.Context, evs []store.BackfillEvent) error
}

// notifyBackfills queues the backfill events that storing finals made due
// (Final.Due). The store decided each in the step that counted its
// document, for exactly one worker, so the event is queued here or not at
// all: like the store itself, the queueing is retried while JetStream is
// away, holding the batch; only a hard stop gives it up.
func (pl *pipeline) notifyBackfills(ctx context.Context, finals []store.Final) {
	hooks := pl.w.cfg.Webhooks
	var evs []store.BackfillEvent
	for _, f := range finals {
		if f.Due != nil {
			evs = append(evs, *f.Due)
		}
	}
	if hooks == nil || len(evs) == 0 {
		return
	}
	if err := pl.untilStored(ctx, "queue backfill webhook events", func(sctx context.Context) error {
		return hooks.PublishBackfill(sctx, evs)
	}); err != nil {
		pl.w.log.WarnContext(ctx, "backfill webhook events not queued", slog.String("backfill", evs[0].Backfill), slog.Any("error", err))
	}
}

// notifyWebhooks queues the webhook events of the jobs in batch whose
// final state is now stored (by this delivery or an earlier one), before
// they are acknowledged: a job acknowledged without its event would never
// send it. When queueing fails the jobs are retried, like a failed reply.
func (pl *pipeline) notifyWebhooks(ctx context.Context, batch []*item, now time.Time) {
	hooks := pl.w.cfg.Webhooks
	if hooks == nil {
		return
	}
	var jobs []*job.Job
	var recs []*job.Record
	var its []*item
	for _, it := range batch {
		j := &it.msg.Job
		if j.Webhook == "" || j.Backfill != "" {
			continue
		}
		var rec *job.Record
		switch it.outcome {
		case finish, dead:
			rec = it.record(now)
			rec.Timings = &it.timings
		case resend:
			// An earlier delivery stored the final state but may not have
			// queued the event: queue it from the stored record.
			var err error
			if rec, err = pl.w.st.Get(ctx, j.Tenant, j.ID); err != nil || !rec.Status.Final() {
				continue
			}
		default:
			continue
		}
		jobs, recs, its = append(jobs, j), append(recs, rec), append(its, it)
	}
	if len(jobs) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := hooks.Publish(pctx, jobs, recs)
	cancel()
	if err == nil {
		return
	}
	pl.w.log.WarnContext(ctx, "queue webhook events", slog.String("task", pl.model.Task()), slog.Any("error", err))
	for _, it := range its {
		// A dead job too: its redelivery finds the dead state stored,
		// queues the event, and dead-letters the job then.
		it.retryLater(pl.w.retryDelay(it.msg.Attempt), nil)
	}
}
