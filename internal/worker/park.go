package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// parking holds the backfill documents whose results the RESULTS stream
// refused because it is full. Dropping older results to make room would
// lose results nobody has exported, and a nak would spend the documents'
// deliveries until they were dead-lettered for want of space. So a refused
// document stays in hand (the in-hand heartbeat keeps it alive), its result
// is offered again with a growing pause, and meanwhile the pipeline's
// backfill lane stops pulling: documents already delivered wait here, and
// none ages into a redelivery in a prefetch buffer. Interactive and bulk
// jobs, whose results do not go to RESULTS, keep flowing. Exports that
// purge what they have written (or results ageing out) free the space.
//
// A backfill document queued on the bulk lane (by an ingest older than the
// backfill lane) parks too; that lane is not paused, and what it can hold
// unacknowledged (the consumer's MaxAckPending) bounds what parks.
type parking struct {
	mu    sync.Mutex
	items []*item
	wake  chan struct{} // a nudge to the unparker: items were parked

	// paused is true while the backfill lane is stopped; resumed is closed
	// when it may pull again. lane is the backfill lane's current puller.
	paused  bool
	resumed chan struct{}
	lane    Puller
}

// park keeps refused items and stops the backfill lane.
func (pl *pipeline) park(ctx context.Context, its []*item) {
	pk := &pl.parked
	pl.w.m.resultsHeld.Add(int64(len(its)))
	pk.mu.Lock()
	pk.items = append(pk.items, its...)
	pause := !pk.paused
	var p Puller
	if pause {
		pk.paused, pk.resumed, p = true, make(chan struct{}), pk.lane
	}
	pk.mu.Unlock()
	select {
	case pk.wake <- struct{}{}:
	default:
	}
	if pause {
		pl.w.log.WarnContext(ctx, "RESULTS stream is full; holding backfill documents and pausing the backfill lane until exports purge results",
			slog.String("task", pl.model.Task()), slog.Int("held", len(its)))
		// Drain, not Stop: what is buffered is handed out and parks too.
		p.Drain()
	}
}

// unpark offers the parked results again until RESULTS takes them all,
// then resumes the backfill lane. When delivery has ended (the pipeline is
// stopping), what is still parked is nak'ed for another worker.
func (pl *pipeline) unpark(ctx context.Context, delivered <-chan struct{}) error {
	pk := &pl.parked
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pk.mu.Lock()
		n := len(pk.items)
		pk.mu.Unlock()
		if n == 0 {
			attempt, wait = 0, 100*time.Millisecond
			select {
			case <-pk.wake:
				continue
			case <-delivered:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			pl.releaseParked(context.WithoutCancel(ctx))
			return nil
		case <-delivered:
			pl.releaseParked(context.WithoutCancel(ctx))
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
		pk.mu.Lock()
		its := pk.items
		pk.items = nil
		pk.mu.Unlock()
		pl.w.m.resultsHeld.Add(-int64(len(its)))
		pl.w.m.resultsFullRetries.Add(1)
		for _, it := range its {
			it.parked = false
		}
		pl.deliver(ctx, its) // parks again what is still refused
		pk.mu.Lock()
		left := len(pk.items)
		resume := left == 0 && pk.paused
		if resume {
			pk.paused = false
			close(pk.resumed)
		}
		pk.mu.Unlock()
		if resume {
			pl.w.log.InfoContext(ctx, "RESULTS stream takes results again; resuming the backfill lane",
				slog.String("task", pl.model.Task()), slog.Int("attempts", attempt))
		} else if attempt%30 == 0 {
			pl.w.log.WarnContext(ctx, "RESULTS stream is still full; backfill documents held",
				slog.String("task", pl.model.Task()), slog.Int("held", left), slog.Int("attempts", attempt))
		}
	}
}

// releaseParked naks what is parked, for redelivery once the pipeline is
// gone.
func (pl *pipeline) releaseParked(ctx context.Context) {
	pk := &pl.parked
	pk.mu.Lock()
	its := pk.items
	pk.items = nil
	pk.mu.Unlock()
	pl.w.m.resultsHeld.Add(-int64(len(its)))
	for _, it := range its {
		it.parked = false
		it.retryLater(pl.w.retryDelay(it.msg.Attempt), nil)
		pl.settle(ctx, it)
	}
}

// pumpBackfill is pumpFrom for the backfill lane, which park may stop: it
// then waits for the lane to resume and pulls again with a fresh puller,
// unless the worker is stopping.
func (pl *pipeline) pumpBackfill(ctx context.Context, out chan<- *Msg) {
	pk := &pl.parked
	pk.mu.Lock()
	p := pk.lane
	pk.mu.Unlock()
	for {
		pl.pumpFrom(ctx, job.LaneBackfill, p, out)
		pk.mu.Lock()
		paused, resumed := pk.paused, pk.resumed
		pk.mu.Unlock()
		if !paused || pl.soft.Err() != nil || ctx.Err() != nil {
			return
		}
		select {
		case <-resumed:
		case <-pl.soft.Done():
			return
		case <-ctx.Done():
			return
		}
		np, err := pl.repull(ctx)
		if err != nil {
			return
		}
		pk.mu.Lock()
		pk.lane, p = np, np
		again := pk.paused // parked again before np was known to park
		pk.mu.Unlock()
		if again {
			np.Drain()
		}
	}
}

// repull starts a new backfill puller, retrying while JetStream is away,
// and registers it with the worker so that a soft stop drains it.
func (pl *pipeline) repull(ctx context.Context) (Puller, error) {
	for {
		p, err := pl.w.pull(ctx, job.LaneBackfill, pl.model.Task())
		if err == nil {
			if pl.w.addPuller(p, pl.soft) {
				p.Drain()
			}
			return p, nil
		}
		pl.w.log.WarnContext(ctx, "resume the backfill lane", slog.String("task", pl.model.Task()), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pl.soft.Done():
			return nil, errors.New("stopping")
		case <-time.After(time.Second):
		}
	}
}
