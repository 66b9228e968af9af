package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
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
//
// A tenant that holds its share of RESULTS (tenant.ResultShares) parks the
// same way, alone: its documents are held (heldShare) and only its
// consumer of the backfill lane stops (fairPuller.hold), while the other
// tenants' documents keep flowing. Its exports' purges bring it under its
// share; the unparker's next offer then publishes its results, and its
// consumer is pulled again. What a held tenant's documents take in a worker
// is bounded by what its consumer had handed out when it stopped (the
// fair puller's look-ahead and the consumer's prefetch). On a queue
// without per-tenant consumers, nothing can be stopped for one tenant; its
// documents park as they come, bounded by the consumer's MaxAckPending.
//
// A hold may outlast the tenant consumer's InactiveThreshold
// (queue.ConsumerConfig.TenantIdle), since nothing pulls the consumer
// meanwhile, and that is safe as long as documents are parked: the server
// counts every acknowledgement, the in-hand heartbeat's InProgress
// included, as the consumer's activity, and does not remove a consumer
// while it has deliveries within their ack wait. So the consumer, and the
// parked documents' deliveries with it, live as long as this worker holds
// them, and pulling it again on release hands none of them out a second
// time (queue's TestHeldTenantConsumerOutlivesItsIdleThreshold pins this).
// A worker that dies holding them stops its heartbeats: the consumer is
// then removed once idle, and the documents go to the next worker.
//
// Lock order: pk.mu before fairPuller.mu. The fair puller's hold and
// release are called under pk.mu only (park, releaseDone, pumpBackfill),
// so that they reach it in the order held changed; it never takes pk.mu.
type parking struct {
	mu    sync.Mutex
	items []*item
	wake  chan struct{} // a nudge to the unparker: items were parked

	// paused is true while the backfill lane is stopped; resumed is closed
	// when it may pull again. lane is the backfill lane's current puller.
	paused  bool
	resumed chan struct{}
	lane    Puller
	// held are the tenants (by subject token) whose backfill consumer is
	// stopped because they hold their share of RESULTS.
	held map[string]bool
}

// park keeps refused items; RESULTS full stops the backfill lane, a
// tenant over its share stops that tenant's consumer of it.
func (pl *pipeline) park(ctx context.Context, its []*item) {
	pk := &pl.parked
	countHeld(pl.w.m, its, 1)
	pk.mu.Lock()
	pk.items = append(pk.items, its...)
	full := slices.ContainsFunc(its, func(it *item) bool { return !it.heldShare })
	pause := full && !pk.paused
	var p Puller
	if pause {
		pk.paused, pk.resumed, p = true, make(chan struct{}), pk.lane
	}
	var hold []string
	for _, it := range its {
		if t := job.DLQTenantToken(it.msg.Job.Tenant); it.heldShare && !pk.held[t] {
			if pk.held == nil {
				pk.held = map[string]bool{}
			}
			pk.held[t] = true
			hold = append(hold, t)
		}
	}
	// Stopped before the unparker can see the hold: it releases under
	// pk.mu too, so the fair puller's held tenants follow pk.held in the
	// order the two were changed.
	pk.holdLane(hold)
	pk.mu.Unlock()
	select {
	case pk.wake <- struct{}{}:
	default:
	}
	for _, t := range hold {
		pl.w.m.tenantsHeld.Add(1)
		pl.w.log.WarnContext(ctx, "tenant holds its share of the RESULTS stream; holding its backfill documents and pausing its backfill consumer until its exports purge results",
			slog.String("task", pl.model.Task()), slog.String("tenant", t))
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
		countHeld(pl.w.m, its, -1)
		pl.w.m.resultsFullRetries.Add(1)
		for _, it := range its {
			it.parked, it.heldShare = false, false
		}
		pl.deliver(ctx, its) // parks again what is still refused
		pk.mu.Lock()
		left := len(pk.items)
		resume := pk.paused && !slices.ContainsFunc(pk.items, func(it *item) bool { return !it.heldShare })
		if resume {
			pk.paused = false
			close(pk.resumed)
		}
		pk.mu.Unlock()
		pl.releaseDone(ctx)
		if resume {
			pl.w.log.InfoContext(ctx, "RESULTS stream takes results again; resuming the backfill lane",
				slog.String("task", pl.model.Task()), slog.Int("attempts", attempt))
		} else if attempt%30 == 0 && left > 0 {
			pl.w.log.WarnContext(ctx, "RESULTS stream is still full, or tenants still hold their share of it; backfill documents held",
				slog.String("task", pl.model.Task()), slog.Int("held", left), slog.Int("attempts", attempt))
		}
	}
}

// releasable takes out of held the tenants none of whose documents is
// parked any more (their results were taken), and returns them. The caller
// holds pk.mu.
func (pk *parking) releasable() []string {
	var out []string
	for t := range pk.held {
		if !slices.ContainsFunc(pk.items, func(it *item) bool {
			return it.heldShare && job.DLQTenantToken(it.msg.Job.Tenant) == t
		}) {
			delete(pk.held, t)
			out = append(out, t)
		}
	}
	return out
}

// releaseDone pulls again the backfill consumers of the held tenants none
// of whose documents is parked any more: they are under their shares of
// RESULTS once more.
func (pl *pipeline) releaseDone(ctx context.Context) {
	pk := &pl.parked
	pk.mu.Lock()
	release := pk.releasable()
	// Under pk.mu, like park's hold: a tenant parked again meanwhile is
	// held again after this release, not before it.
	if f, ok := pk.lane.(*fairPuller); ok {
		for _, t := range release {
			f.release(t)
		}
	}
	pk.mu.Unlock()
	for _, t := range release {
		pl.w.m.tenantsHeld.Add(-1)
		pl.w.log.InfoContext(ctx, "tenant is under its share of the RESULTS stream again; resuming its backfill consumer",
			slog.String("task", pl.model.Task()), slog.String("tenant", t))
	}
}

// holdLane stops the consumers of tenants in the backfill lane's fair
// puller. The caller holds pk.mu: a fairPuller's hold and release are only
// called under it, so that they reach the fair puller in the order pk.held
// changed (fairPuller.mu is taken inside pk.mu, never the other way
// round).
func (pk *parking) holdLane(tenants []string) {
	if f, ok := pk.lane.(*fairPuller); ok {
		for _, t := range tenants {
			f.hold(t)
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
	held := len(pk.held)
	pk.held = nil
	pk.mu.Unlock()
	countHeld(pl.w.m, its, -1)
	pl.w.m.tenantsHeld.Add(-int64(held))
	for _, it := range its {
		it.parked, it.heldShare = false, false
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
		// The tenants over their shares stay stopped on the new puller,
		// under pk.mu so that no release slips in between.
		held := make([]string, 0, len(pk.held))
		for t := range pk.held {
			held = append(held, t)
		}
		pk.holdLane(held)
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

// countHeld adds sign × its to the gauges of held documents, by why each
// is held: RESULTS full (resultsHeld) or its tenant over its share
// (shareHeld).
func countHeld(m *Metrics, its []*item, sign int64) {
	var share int64
	for _, it := range its {
		if it.heldShare {
			share++
		}
	}
	m.resultsHeld.Add(sign * (int64(len(its)) - share))
	m.shareHeld.Add(sign * share)
}
