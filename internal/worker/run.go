package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/job"
)

// runBatches marks each batch's jobs running, runs the model, and hands the
// batch on for delivery.
func (pl *pipeline) runBatches(ctx context.Context, in <-chan []*item, out chan<- []*item) error {
	defer close(out)
	for batch := range in {
		bctx, span := pl.startBatchSpan(ctx, batch)
		err := pl.runBatch(bctx, batch)
		endSpan(span)
		if err != nil {
			return err
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// markAfter is how long a batch's model call runs before its jobs are
// marked running. A call that ends sooner never marks them: its finish write
// records the start as well, which spares a synchronous call a store round
// trip (the finish would wait for the start write). A longer call shows its
// jobs running while it runs.
const markAfter = 2 * time.Millisecond

// runBatch runs the model on the batch's jobs and marks them running once
// the call has taken markAfter. A job the store then reports final
// (canceled meanwhile, or finished by an earlier delivery) keeps its stored
// state and its fresh result is dropped, and so it is when the finish write
// finds it final. A batch with backfill documents marks them first, because
// the reuse cache may spare some of them the model. The pipeline's in-hand
// heartbeat keeps the batch alive meanwhile (inhand.go).
func (pl *pipeline) runBatch(ctx context.Context, batch []*item) error {
	mark := pl.marking(batch)
	if mark == nil {
		return nil
	}
	if hasReusable(batch) {
		if err := mark.run(ctx, pl); err != nil {
			return err
		}
		mark.apply(batch)
		pl.reuse(ctx, batch)
		pl.infer(ctx, runnable(batch))
		return nil
	}
	done := make(chan error, 1)
	timer := time.AfterFunc(markAfter, func() { done <- mark.run(ctx, pl) })
	pl.infer(ctx, runnable(batch))
	if timer.Stop() {
		mark.skip(batch)
		return nil
	}
	if err := <-done; err != nil {
		return err
	}
	mark.apply(batch)
	return nil
}

func runnable(batch []*item) []*item {
	var out []*item
	for _, it := range batch {
		if it.outcome == pending {
			out = append(out, it)
		}
	}
	return out
}

// hasReusable reports whether a runnable item of the batch may find its
// result in the reuse cache.
func hasReusable(batch []*item) bool {
	for _, it := range batch {
		if it.outcome == pending && it.reuseKey != "" {
			return true
		}
	}
	return false
}

// marking is one Start call for the jobs of a batch that are still to run,
// taken before the model touches the batch.
type marking struct {
	jobs     []*job.Job
	attempts []int
	idx      []int
	now      time.Time
	sts      []job.Status
}

// marking snapshots the batch's runnable jobs, or returns nil when there
// are none. Jobs that are final already (canceled by their owner, or
// finished by an earlier delivery whose ack was lost) are skipped.
func (pl *pipeline) marking(batch []*item) *marking {
	m := &marking{now: time.Now()}
	for i, it := range batch {
		if it.outcome == pending {
			m.jobs = append(m.jobs, &it.msg.Job)
			m.attempts = append(m.attempts, it.msg.Attempt)
			m.idx = append(m.idx, i)
		}
	}
	if len(m.jobs) == 0 {
		return nil
	}
	return m
}

// run marks the jobs running in one round trip, holding the batch while
// the store is away (untilStored).
func (m *marking) run(ctx context.Context, pl *pipeline) error {
	return pl.untilStored(ctx, "start", func(ctx context.Context) (err error) {
		m.sts, err = pl.w.st.Start(ctx, m.jobs, m.attempts, m.now)
		return err
	})
}

// apply records the outcome of run on the batch's items.
func (m *marking) apply(batch []*item) {
	for k, i := range m.idx {
		it := batch[i]
		it.started = m.now
		it.timings.Batch = ms(m.now.Sub(it.received))
		if m.sts[k].Final() {
			it.resendStored(m.sts[k])
		}
	}
}

// skip records on the batch's items that they were never marked running:
// their finish write records when they started.
func (m *marking) skip(batch []*item) {
	for _, i := range m.idx {
		it := batch[i]
		it.started, it.unmarked = m.now, true
		it.timings.Batch = ms(m.now.Sub(it.received))
	}
}

// infer runs items through the model in the calls the batch planner cuts:
// within MaxSize and the token budget, interactive jobs first, and rows of
// similar length together so that padding stays small.
func (pl *pipeline) infer(ctx context.Context, items []*item) {
	lengths := pl.lengths[:0]
	classes := pl.classes[:0]
	rows := pl.rows[:0]
	for _, it := range items {
		lengths = append(lengths, it.prep.Tokens())
		// A long document's windows are rows of the call like short
		// documents: the planner bounds a call's rows and padded tokens.
		rows = append(rows, it.prep.Rows())
		c := batch.Bulk
		if it.msg.Job.Lane == job.LaneInteractive {
			c = batch.Interactive
		}
		classes = append(classes, c)
	}
	pl.lengths, pl.classes, pl.rows = lengths, classes, rows
	groups := pl.planner.PlanRows(lengths, rows, classes)
	calls := make([][]*item, len(groups))
	for g, idx := range groups {
		calls[g] = make([]*item, len(idx))
		for k, i := range idx {
			calls[g][k] = items[i]
		}
	}
	for _, c := range calls {
		pl.call(ctx, c)
	}
}

// call runs one model call. When the call as a whole fails, it is split in
// halves and each half retried, so that one poison document cannot fail its
// neighbours; a single document that fails on its own is retried later or,
// if the error is permanent, dead-lettered.
//
// It returns the documents that failed alone in a call that failed as a
// whole, for the caller to judge: when their neighbours succeeded, they are
// dead-lettered at once.
func (pl *pipeline) call(ctx context.Context, items []*item) (solo []*item) {
	in := make([]Prepared, len(items))
	for i, it := range items {
		in[i] = it.prep
	}
	t0 := time.Now()
	outs, st, err := pl.model.Run(ctx, in)
	if err == nil && len(outs) != len(items) {
		err = fmt.Errorf("model %s returned %d outputs for %d inputs", pl.model.Task(), len(outs), len(items))
	}
	if err != nil {
		if ctx.Err() != nil {
			for _, it := range items {
				it.retryLater(0, nil)
			}
			return nil
		}
		if len(items) > 1 {
			pl.w.m.splits.Add(1)
			h := len(items) / 2
			solo := append(pl.call(ctx, items[:h]), pl.call(ctx, items[h:])...)
			if len(solo) == 0 || !slices.ContainsFunc(items, func(it *item) bool { return it.outcome == finish }) {
				return solo
			}
			// The documents that fail alone while their neighbours run are
			// poison: no retry will help them.
			for _, it := range solo {
				it.deadWith(job.CodeModelError, fmt.Errorf("the model fails on this document alone: %s", it.err.Message))
			}
			return nil
		}
		pl.failed(items[0], err)
		if items[0].outcome == retry && !errors.As(err, new(*job.RetryError)) {
			return items[:1]
		}
		return nil
	}
	pl.w.m.observeRun(ctx, pl.model.Task(), st, len(items))
	done := time.Now()
	pl.observeCost(st, done.Sub(t0))
	perDoc := ms(done.Sub(t0))
	for i, it := range items {
		it.timings.Infer = perDoc
		it.inferred = done
		if outs[i].Err != nil {
			pl.failed(it, outs[i].Err)
			continue
		}
		it.finishWith(job.StatusSucceeded, outs[i].Result, nil)
	}
	return nil
}

// observeCost feeds one successful call to the model's cost. RunStats is
// the one account of a call's rows and padded tokens (a document split into
// windows counts each window as a row).
func (pl *pipeline) observeCost(st RunStats, d time.Duration) {
	pl.costMu.Lock()
	pl.cost.Observe(st.Rows, st.PaddedTokens, d)
	pl.costMu.Unlock()
}

// bulkCap is the latency budget in padded tokens, 0 for no cap.
func (pl *pipeline) bulkCap() int {
	if pl.w.cfg.LatencyBudget <= 0 {
		return 0
	}
	pl.costMu.Lock()
	defer pl.costMu.Unlock()
	return pl.cost.TokensWithin(pl.w.cfg.LatencyBudget)
}

// failed records a per-document failure as the dead-letter policy
// (job.Judge) decides.
func (pl *pipeline) failed(it *item, err error) {
	pl.judged(it, err, job.CodeModelError)
}

// judged moves the item to dead or to a retry, as job.Judge decides for
// err; fallback is the code of an error that does not name one.
func (pl *pipeline) judged(it *item, err error, fallback string) {
	if v := job.Judge(err, it.msg.Attempt, pl.w.cfg.RetryBase, fallback); v.Dead {
		it.deadWith(v.Err.Code, err)
	} else {
		it.retryLater(v.Delay, v.Err)
	}
}

// reuse answers the runnable items whose text was already run under the
// same model version and options from the reuse cache, in one round trip;
// such items never reach the model. A cache that does not answer only
// costs the saving.
func (pl *pipeline) reuse(ctx context.Context, batch []*item) {
	var keys []string
	var its []*item
	for _, it := range batch {
		if it.outcome != pending || it.reuseKey == "" {
			continue
		}
		keys = append(keys, it.reuseKey)
		its = append(its, it)
	}
	if len(keys) == 0 {
		return
	}
	res, err := pl.w.st.Reusable(ctx, keys)
	if err != nil {
		pl.w.log.WarnContext(ctx, "reuse cache unavailable", slog.String("task", pl.model.Task()), slog.Any("error", err))
		return
	}
	for i, r := range res {
		if r != nil {
			its[i].finishWith(job.StatusSucceeded, r, nil)
			its[i].reused = true
		}
	}
}

// untilStored runs a result-store operation until it succeeds, backing off
// while the store is away. The batch waits in hand meanwhile (its messages
// are kept alive with InProgress) and the pipeline stops pulling behind it,
// so an outage of any length spends none of a job's deliveries. It gives up
// only when ctx ends (a hard stop), leaving the messages to redelivery.
func (pl *pipeline) untilStored(ctx context.Context, op string, f func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(sctx)
		cancel()
		if err == nil {
			if attempt > 1 {
				pl.w.log.InfoContext(ctx, "result store back", slog.String("task", pl.model.Task()), slog.String("op", op), slog.Int("attempts", attempt))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 || attempt%20 == 0 {
			pl.w.log.WarnContext(ctx, "result store unavailable; holding the batch", slog.String("task", pl.model.Task()),
				slog.String("op", op), slog.Int("attempts", attempt), slog.Any("error", err))
		}
		pl.w.m.storeRetries.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
