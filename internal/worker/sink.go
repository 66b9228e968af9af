package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// sink is where a message's outcome goes, chosen once per message by
// sinkOf: a job, which has a record in the store and perhaps a caller
// waiting on its reply subject; or a backfill document, which has no
// record, whose result goes to the RESULTS stream before the backfill's
// counters count it, and which may reuse an identical text's result.
type sink interface {
	// reuseKey is where the item's result may be found in, and stored to,
	// the reuse cache under model m; "" for none.
	reuseKey(m Model, j *job.Job) string
	// before is the result to store durably before the final state is
	// stored, if any: a backfill document's result line.
	before(it *item, now time.Time) (job.Delivery, bool)
	// after is the result to send once the final state is stored, if any:
	// a job's record to its waiting caller.
	after(it *item, now time.Time) (job.Delivery, bool)
	// resend is what to send again for an item whose final state was
	// stored elsewhere (resendStored), if anything.
	resend(ctx context.Context, st Store, it *item) (job.Delivery, bool)
}

// sinkOf chooses a message's sink; shareReuse is Config.ReuseAcrossTenants.
func sinkOf(m *Msg, shareReuse bool) sink {
	if m.Job.Backfill != "" {
		return resultsSink{shareReuse: shareReuse}
	}
	return replySink{}
}

// replySink: a job with a record; its reply follows the stored state.
type replySink struct{}

func (replySink) reuseKey(Model, *job.Job) string { return "" }

func (replySink) before(*item, time.Time) (job.Delivery, bool) { return job.Delivery{}, false }

func (replySink) after(it *item, now time.Time) (job.Delivery, bool) {
	if it.msg.Reply == "" {
		return job.Delivery{}, false
	}
	rec := it.record(now)
	rec.Timings = &it.timings
	return deliveryOf(it, rec), true
}

func (replySink) resend(ctx context.Context, st Store, it *item) (job.Delivery, bool) {
	if it.msg.Reply == "" {
		return job.Delivery{}, false
	}
	rec, err := st.Get(ctx, it.msg.Job.Tenant, it.msg.Job.ID)
	if err != nil {
		rec = job.RecordOf(&it.msg.Job, it.status)
	}
	return deliveryOf(it, rec), true
}

// resultsSink: a backfill document; its result line goes to RESULTS first.
// Its reuse cache is the tenant's own unless shareReuse.
type resultsSink struct{ shareReuse bool }

func (s resultsSink) reuseKey(m Model, j *job.Job) string {
	v, ok := m.(Versioned)
	if !ok {
		return ""
	}
	scope := j.Tenant
	if s.shareReuse {
		scope = ""
	}
	return store.ReuseKey(scope, j.Task, v.Version(), j.Input, j.Options)
}

func (resultsSink) before(it *item, now time.Time) (job.Delivery, bool) {
	if it.msg.Reply == "" {
		return job.Delivery{}, false
	}
	return deliveryOf(it, it.record(now)), true
}

func (resultsSink) after(*item, time.Time) (job.Delivery, bool) { return job.Delivery{}, false }

// resend sends nothing: the document's result went to RESULTS before its
// final state was stored.
func (resultsSink) resend(context.Context, Store, *item) (job.Delivery, bool) {
	return job.Delivery{}, false
}

func deliveryOf(it *item, rec *job.Record) job.Delivery {
	data, _ := json.Marshal(rec)
	return job.Delivery{Subject: it.msg.Reply, MsgID: it.msg.Job.MsgID(), Data: data, Header: replyHeader(it)}
}
