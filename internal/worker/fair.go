package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/job"
)

// TenantQueue is implemented by a queue that keeps each tenant's jobs of the
// shared lanes (job.Lane.Shared: bulk and backfill) apart, each tenant's on
// its own subject and durable consumer. A worker whose Queue implements it
// serves those lanes in fair shares between the tenants with work waiting
// (fairPuller); otherwise it pulls each lane in arrival order.
type TenantQueue interface {
	// Tenants lists the tenants (subject tokens) whose jobs of lane and task
	// are queued, waiting or in a worker's hands.
	Tenants(ctx context.Context, l job.Lane, task string) ([]string, error)
	// PullTenant starts pulling tenant's jobs of lane and task from its
	// durable consumer, creating it when missing, keeping up to prefetch
	// messages buffered.
	PullTenant(ctx context.Context, l job.Lane, task, tenant string, prefetch int) (Puller, error)
	// WatchTenants calls fn whenever a hint says a tenant's jobs of lane
	// and task arrived, until stop is called. Hints may be lost or come
	// for nothing; the worker lists tenants every TenantScan as well.
	WatchTenants(l job.Lane, task string, fn func()) (stop func(), err error)
}

// lookahead is how many messages a fairPuller holds per tenant, pulled and
// not yet handed out.
const lookahead = 4

// minScanGap is the least time between two scans of one lane: hints from
// many tenants at once cost one scan.
const minScanGap = 20 * time.Millisecond

// fairPuller is the Puller of a shared lane: it pulls from the lane's own
// consumer (what an older ingest queued on the lane subject) and from the
// consumer of each tenant with work queued, which it finds by asking the
// queue every TenantScan, and hands out their messages in the order the
// deficit round robin of batch.Fair picks, with a little look-ahead per
// tenant (lookahead messages, so that a tenant whose turn it is rarely has
// its next message still on the way). A tenant whose subject is empty is let go (drained), so that the
// server removes its idle consumer; it is pulled again once it has work.
//
// The pipeline sees one Puller as before: the collector, the lane policy
// and parking are unchanged, and a tenant's share is decided where its
// messages enter the pipeline.
type fairPuller struct {
	w    *Worker
	q    TenantQueue
	lane job.Lane
	task string

	mu       sync.Mutex
	fair     *batch.Fair
	members  map[string]*member // by tenant token; "" is the lane's own consumer
	draining bool
	stopped  bool
	waiting  []batch.Waiting // Next's scratch
	picks    []*member

	// held are the tenants whose consumer is stopped while they hold their
	// share of RESULTS (hold); a scan does not pull them.
	held map[string]bool

	wake      chan struct{} // a nudge to Next: a head arrived or a member ended
	rescan    chan struct{} // a nudge to the scan loop: a held tenant was released
	stop      chan struct{} // closed by Stop
	stopOnce  sync.Once
	closeScan context.CancelFunc
}

// member is one consumer a fairPuller pulls from.
type member struct {
	tenant string
	weight int // its share against the other members (batch.Waiting.Weight)
	p      Puller
	// heads are the messages pulled and not yet handed out, oldest first;
	// free holds a token per place left in heads, which the member's pump
	// takes to pull the next.
	heads []*Msg
	free  chan struct{}
	// leaving: drained because its tenant had nothing queued; done: its
	// puller ended.
	leaving, done bool
}

// newFairPuller starts sharing lane l of task between tenants, beginning
// with the lane's own consumer base.
func newFairPuller(ctx context.Context, w *Worker, q TenantQueue, l job.Lane, task string, base Puller) *fairPuller {
	sctx, cancel := context.WithCancel(ctx)
	f := &fairPuller{w: w, q: q, lane: l, task: task, fair: &batch.Fair{Quantum: w.cfg.FairQuantum}, members: map[string]*member{},
		wake: make(chan struct{}, 1), rescan: make(chan struct{}, 1), stop: make(chan struct{}), closeScan: cancel}
	f.join("", base, 1)
	go f.scanLoop(sctx)
	return f
}

// join adds a member of weight pulling from p and starts its pump. The
// caller holds no lock.
func (f *fairPuller) join(tenant string, p Puller, weight int) {
	m := &member{tenant: tenant, weight: weight, p: p, free: make(chan struct{}, lookahead)}
	for range lookahead {
		m.free <- struct{}{}
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		p.Stop()
		return
	}
	f.members[tenant] = m
	draining := f.draining
	// Held while a scan was starting it: it hands out what it has and
	// leaves, as hold would have made it.
	held := f.held[tenant]
	if held {
		m.leaving = true
	}
	f.mu.Unlock()
	if draining || held {
		p.Drain()
	}
	go f.pump(m)
}

// pump pulls m's messages into its heads while they have room.
func (f *fairPuller) pump(m *member) {
	for {
		select {
		case <-m.free:
		case <-f.stop:
			f.ended(m)
			return
		}
		msg, err := m.p.Next()
		if errors.Is(err, job.ErrStopped) {
			f.ended(m)
			return
		}
		if err != nil {
			f.w.log.Warn("pull failed", slog.String("task", f.task), slog.String("lane", string(f.lane)),
				slog.String("tenant", m.tenant), slog.Any("error", err))
			if m.tenant != "" {
				// The next scan pulls the tenant afresh (its consumer may
				// have been removed meanwhile).
				m.p.Stop()
				f.ended(m)
				return
			}
			m.free <- struct{}{}
			select {
			case <-f.stop:
			case <-time.After(time.Second):
			}
			continue
		}
		f.mu.Lock()
		m.heads = append(m.heads, msg)
		f.mu.Unlock()
		f.nudge()
	}
}

// ended records that m's puller ended; m leaves once its heads are handed
// out.
func (f *fairPuller) ended(m *member) {
	f.mu.Lock()
	m.done = true
	if len(m.heads) == 0 && f.members[m.tenant] == m {
		delete(f.members, m.tenant)
	}
	f.mu.Unlock()
	f.nudge()
}

func (f *fairPuller) nudge() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Next hands out the oldest head of the tenant batch.Fair picks among
// those that have one, waiting until one has. It returns job.ErrStopped
// after Stop, or after Drain once every member has ended and handed out its
// heads.
func (f *fairPuller) Next() (*Msg, error) {
	for {
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			return nil, job.ErrStopped
		}
		f.waiting, f.picks = f.waiting[:0], f.picks[:0]
		for _, m := range f.members {
			switch {
			case len(m.heads) > 0:
				f.waiting = append(f.waiting, batch.Waiting{Tenant: m.tenant, Weight: m.weight, Cost: len(m.heads[0].Data)})
			case !m.leaving && !m.done:
				// Its pump is pulling the next one: it keeps its place.
				f.waiting = append(f.waiting, batch.Waiting{Tenant: m.tenant, Weight: m.weight, Arriving: true})
			default:
				continue
			}
			f.picks = append(f.picks, m)
		}
		if i := f.fair.Pick(f.waiting); i >= 0 {
			m := f.picks[i]
			msg := m.heads[0]
			m.heads[0] = nil
			m.heads = m.heads[1:]
			switch {
			case !m.done:
				m.free <- struct{}{}
			case len(m.heads) == 0:
				delete(f.members, m.tenant)
			}
			f.mu.Unlock()
			return msg, nil
		}
		if f.draining && len(f.members) == 0 {
			f.mu.Unlock()
			return nil, job.ErrStopped
		}
		f.mu.Unlock()
		select {
		case <-f.wake:
		case <-f.stop:
		}
	}
}

// Stop stops every member at once; what they buffered is left to
// redelivery.
func (f *fairPuller) Stop() {
	f.closeScan()
	f.mu.Lock()
	f.stopped = true
	ps := f.pullers()
	f.mu.Unlock()
	f.stopOnce.Do(func() { close(f.stop) })
	for _, p := range ps {
		p.Stop()
	}
}

// Drain stops pulling but lets Next hand out what the members buffered.
func (f *fairPuller) Drain() {
	f.closeScan()
	f.mu.Lock()
	f.draining = true
	ps := f.pullers()
	f.mu.Unlock()
	for _, p := range ps {
		p.Drain()
	}
	f.nudge()
}

// pullers are the members' pullers; the caller holds f.mu.
func (f *fairPuller) pullers() []Puller {
	ps := make([]Puller, 0, len(f.members))
	for _, m := range f.members {
		ps = append(ps, m.p)
	}
	return ps
}

// hold stops pulling tenant's consumer (by subject token) until release:
// it holds its share of RESULTS. What the consumer had handed out is still
// handed out (Drain), and is held by the parking too; the other tenants'
// turns go on.
func (f *fairPuller) hold(tenant string) {
	if tenant == "" {
		return
	}
	f.mu.Lock()
	if f.held == nil {
		f.held = map[string]bool{}
	}
	f.held[tenant] = true
	var p Puller
	if m := f.members[tenant]; m != nil && !m.leaving && !m.done {
		m.leaving, p = true, m.p
	}
	f.mu.Unlock()
	if p != nil {
		p.Drain()
	}
}

// release lets the next scan, which it asks for now, pull tenant's
// consumer again.
func (f *fairPuller) release(tenant string) {
	f.mu.Lock()
	delete(f.held, tenant)
	f.mu.Unlock()
	select {
	case f.rescan <- struct{}{}:
	default:
	}
}

// tenants is how many tenants' consumers f pulls from now.
func (f *fairPuller) tenants() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.members)
	if _, ok := f.members[""]; ok {
		n--
	}
	return n
}

// scanLoop looks for tenants with work every TenantScan, and on every hint
// that one has, until ctx ends.
func (f *fairPuller) scanLoop(ctx context.Context) {
	hinted := make(chan struct{}, 1)
	stop, err := f.q.WatchTenants(f.lane, f.task, func() {
		select {
		case hinted <- struct{}{}:
		default:
		}
	})
	if err != nil {
		f.w.log.WarnContext(ctx, "watch for tenants; new tenants wait for the next scan", slog.String("task", f.task),
			slog.String("lane", string(f.lane)), slog.Any("error", err))
	} else {
		defer stop()
	}
	t := time.NewTicker(f.w.cfg.TenantScan)
	defer t.Stop()
	for {
		last := time.Now()
		f.scan(ctx)
		f.w.m.SetTenants(f.task, f.lane, int64(f.tenants()))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.rescan:
		case <-hinted:
			select {
			case <-ctx.Done():
				return
			case <-time.After(minScanGap - time.Since(last)):
			}
		}
	}
}

// scan pulls the tenants that have work queued and are not pulled yet, and
// lets go of those that have none.
func (f *fairPuller) scan(ctx context.Context) {
	queued, err := f.q.Tenants(ctx, f.lane, f.task)
	if err != nil {
		if ctx.Err() == nil {
			f.w.log.WarnContext(ctx, "list tenants with work", slog.String("task", f.task), slog.String("lane", string(f.lane)), slog.Any("error", err))
		}
		return
	}
	want := make(map[string]bool, len(queued))
	var start []string
	var leave []Puller
	f.mu.Lock()
	if f.draining || f.stopped {
		f.mu.Unlock()
		return
	}
	for _, t := range queued {
		want[t] = true
		if _, ok := f.members[t]; !ok && t != "" && !f.held[t] {
			// A member still leaving is let be: it is pulled afresh once
			// it has ended.
			start = append(start, t)
		}
	}
	for t, m := range f.members {
		if t != "" && !want[t] && !m.leaving && !m.done {
			m.leaving = true
			leave = append(leave, m.p)
		}
	}
	f.mu.Unlock()
	for _, p := range leave {
		p.Drain()
	}
	for _, t := range start {
		p, err := f.q.PullTenant(ctx, f.lane, f.task, t, f.w.cfg.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				f.w.log.WarnContext(ctx, "pull tenant", slog.String("task", f.task), slog.String("lane", string(f.lane)),
					slog.String("tenant", t), slog.Any("error", err))
			}
			continue
		}
		weight := 1
		if f.w.cfg.Weights != nil {
			weight = f.w.cfg.Weights.Weight(ctx, t)
		}
		f.join(t, p, weight)
	}
}
