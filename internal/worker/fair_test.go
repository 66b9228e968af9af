package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// fairQueue is a fakeQueue that is also a worker.TenantQueue: each tenant's
// jobs of a shared lane wait on their own channel, as on their own subject
// and consumer, and a tenant counts as queued until its messages are
// settled, as JOBS keeps a message until it is acknowledged.
type fairQueue struct {
	*fakeQueue

	tmu     sync.Mutex
	subj    map[string]chan *worker.Msg // lane/tenant → its jobs
	queued  map[string]int              // lane/tenant → pushed, not settled
	pushed  map[string]int              // lane/tenant → pushed in all
	tpulls  map[string][]*fakePuller    // lane/tenant → its pullers so far
	pulled  chan string                 // lane/tenant of each PullTenant
	drained chan string                 // lane/tenant of each tenant puller drained
	watches map[job.Lane][]func()       // WatchTenants' callbacks
}

var _ worker.TenantQueue = (*fairQueue)(nil)

func newFairQueue() *fairQueue {
	return &fairQueue{fakeQueue: newFakeQueue(), subj: map[string]chan *worker.Msg{}, queued: map[string]int{}, pushed: map[string]int{},
		tpulls: map[string][]*fakePuller{}, pulled: make(chan string, 256), drained: make(chan string, 256),
		watches: map[job.Lane][]func(){}}
}

func tenantKey(l job.Lane, tenant string) string { return string(l) + "/" + tenant }

func (q *fairQueue) Tenants(_ context.Context, l job.Lane, tk string) ([]string, error) {
	if tk != task {
		return nil, fmt.Errorf("unknown task %s", tk)
	}
	q.tmu.Lock()
	defer q.tmu.Unlock()
	var out []string
	for k, n := range q.queued {
		if t, ok := strings.CutPrefix(k, string(l)+"/"); ok && n > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

func (q *fairQueue) PullTenant(_ context.Context, l job.Lane, tk, tenant string, _ int) (worker.Puller, error) {
	if tk != task || !l.Shared() {
		return nil, fmt.Errorf("no consumer for %s %s", l, tk)
	}
	k := tenantKey(l, tenant)
	q.tmu.Lock()
	p := &fakePuller{q: q.fakeQueue, lane: l, stop: make(chan struct{}), src: q.subject(k),
		onDrain: func() { q.drained <- k }}
	q.tpulls[k] = append(q.tpulls[k], p)
	q.tmu.Unlock()
	q.pulled <- k
	return p, nil
}

func (q *fairQueue) WatchTenants(l job.Lane, _ string, fn func()) (func(), error) {
	q.tmu.Lock()
	defer q.tmu.Unlock()
	q.watches[l] = append(q.watches[l], fn)
	return func() {}, nil
}

// subject is k's channel; the caller holds tmu.
func (q *fairQueue) subject(k string) chan *worker.Msg {
	if q.subj[k] == nil {
		q.subj[k] = make(chan *worker.Msg, 1024)
	}
	return q.subj[k]
}

// awaitTaken waits until at most left of k's jobs wait on its subject: the
// worker's puller of k has joined and taken the others.
func (q *fairQueue) awaitTaken(t *testing.T, ctx context.Context, k string, left int) {
	t.Helper()
	for {
		q.tmu.Lock()
		n := len(q.subject(k))
		q.tmu.Unlock()
		if n <= left {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d jobs still wait", k, n)
		case <-time.After(time.Millisecond):
		}
	}
}

// pushTenant queues j on its tenant's subject.
func (q *fairQueue) pushTenant(j *job.Job, reply string) {
	k := tenantKey(j.Lane, j.Tenant)
	data, _ := json.Marshal(j)
	q.tmu.Lock()
	q.queued[k]++
	q.pushed[k]++
	ch := q.subject(k)
	hints := slices.Clone(q.watches[j.Lane])
	q.tmu.Unlock()
	ch <- &worker.Msg{Job: *j, Reply: reply, Attempt: 1, Enqueued: time.Now(), Subject: job.SubjectOf(j), Data: data,
		Settler: &countingSettler{fakeSettler: fakeSettler{q: q.fakeQueue, id: j.ID}, done: func() {
			q.tmu.Lock()
			q.queued[k]--
			q.tmu.Unlock()
		}}}
	// Publishers hint at the work, as queue.Client does.
	for _, fn := range hints {
		fn()
	}
}

// countingSettler is a fakeSettler that also calls done once the message
// is settled (acknowledged, nak'ed or terminated).
type countingSettler struct {
	fakeSettler
	done func()
}

func (s *countingSettler) Ack() error { s.done(); return s.fakeSettler.Ack() }
func (s *countingSettler) NakWithDelay(d time.Duration) error {
	s.done()
	return s.fakeSettler.NakWithDelay(d)
}
func (s *countingSettler) Term(reason string) error { s.done(); return s.fakeSettler.Term(reason) }

// setupFair is setup over a fairQueue.
func setupFair(t *testing.T, cfg worker.Config, gated bool) (*testBundle, *fairQueue) {
	t.Helper()
	q := newFairQueue()
	return start(t, cfg, gated, q.fakeQueue, q), q
}

// weights are tenants' weights in the shared lanes, 1 where unset.
type weights map[string]int

func (w weights) Weight(_ context.Context, tenant string) int { return max(w[tenant], 1) }

// backfillDoc is a document of tenant's backfill bf; every document has the
// same text, so that each costs the same share.
func backfillDoc(tenant, bf string, i int) *job.Job {
	return &job.Job{ID: fmt.Sprintf("%s:d%03d", bf, i), Tenant: tenant, Task: task, Lane: job.LaneBackfill, Backfill: bf,
		DocID: fmt.Sprintf("d%03d", i), Input: job.Input{Text: "a news document"}, Created: time.Now()}
}

// runInOrder waits until the worker pulls tenant's backfill consumer and
// its puller has taken all but left of its documents, then lets the gated
// model take its calls one at a time until n messages are settled, and
// returns the order the documents reached the model, by backfill.
//
// Before each call the pipeline is still (awaitStill): every tenant with
// documents on its subject has its look-ahead full, and the pipeline has
// taken all it takes while the model is busy. Each call then lets the
// pipeline take one batch (two documents), fewer than the look-ahead, so no
// tenant is ever passed over because its pump has not run yet, as a real
// model's calls, which take milliseconds, leave the pumps time to refill.
// Released all at once, the instant fake model raced the pumps, and on a
// loaded machine a tenant's turns went by while its next document was on
// its way.
func runInOrder(t *testing.T, b *testBundle, q *fairQueue, tenant string, left, n int) []string {
	t.Helper()
	k := tenantKey(job.LaneBackfill, tenant)
	waitFor(t, b.ctx, q.pulled, k)
	q.awaitTaken(t, b.ctx, k, left)
	for b.results() < n {
		q.awaitStill(t, b)
		select {
		case b.model.gate <- struct{}{}: // one call goes
		case <-b.ctx.Done():
			t.Fatalf("the model's next call never came; %d of %d results", b.results(), n)
		}
		// Wait for the next call to be at the gate, or for the last result.
		for started := false; !started && b.results() < n; {
			select {
			case <-b.model.started:
				started = true
			case <-time.After(time.Millisecond):
			case <-b.ctx.Done():
				t.Fatalf("%d of %d results", b.results(), n)
			}
		}
	}
	b.settled(t, n)
	var order []string
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	for _, d := range b.q.results {
		order = append(order, strings.TrimPrefix(d.Subject, "results."))
	}
	return order
}

// results is how many results the worker has published.
func (b *testBundle) results() int {
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	return len(b.q.results)
}

// held is how many documents the pipeline of a worker with BatchSize 2
// takes while its model is busy: the next batch, and the one its feeder
// holds out for the batch after.
const held = 2 + 1

// awaitStill waits until each tenant consumer the worker pulls has its
// look-ahead full, or nothing left on its subject to fill it with, and the
// worker has taken all it takes while its model is busy: held documents
// beyond those the model has been called with, or every one pushed.
func (q *fairQueue) awaitStill(t *testing.T, b *testBundle) {
	t.Helper()
	for {
		called := 0
		for _, c := range b.model.callsSoFar() {
			called += len(c)
		}
		heads := worker.FairHeads(b.w)
		var short []string
		taken, pushed := 0, 0
		q.tmu.Lock()
		for k, n := range q.pushed {
			pushed += n
			left := len(q.subject(k))
			taken += n - left - heads[k]
			if heads[k] < worker.Lookahead && left > 0 {
				short = append(short, fmt.Sprintf("%s has %d", k, heads[k]))
			}
		}
		q.tmu.Unlock()
		if len(short) == 0 && taken >= min(pushed, called+held) {
			return
		}
		select {
		case <-b.ctx.Done():
			t.Fatalf("never still: look-aheads short %v; %d documents taken, %d called, %d pushed", short, taken, called, pushed)
		case <-time.After(time.Millisecond):
		}
	}
}

// waitFor waits until want arrives on ch.
func waitFor(t *testing.T, ctx context.Context, ch <-chan string, want string) {
	t.Helper()
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s never came", want)
		}
	}
}

func TestWorkerFair(t *testing.T) {
	t.Parallel()

	t.Run("SmallBackfillOvertakesBigBacklog", func(t *testing.T) {
		t.Parallel()
		// No periodic scan: the hints alone bring each tenant's work.
		b, q := setupFair(t, worker.Config{BatchSize: 2, TenantScan: time.Hour, FairQuantum: 1}, true)
		q.pushTenant(backfillDoc("big", "bfbig", 0), job.ResultsSubject("bfbig"))
		<-b.model.started // the model is busy with big's first document
		for i := 1; i <= 40; i++ {
			q.pushTenant(backfillDoc("big", "bfbig", i), job.ResultsSubject("bfbig"))
		}
		for i := range 4 {
			q.pushTenant(backfillDoc("small", "bfsmall", i), job.ResultsSubject("bfsmall"))
		}
		order := runInOrder(t, b, q, "small", 0, 45)
		last := -1
		for i, bf := range order {
			if bf == "bfsmall" {
				last = i
			}
		}
		// Arrival order would run small's documents after all 41 of big's.
		// Shared, small waits for what was batched before it was found (a
		// window of four calls, 8) and then takes every other turn.
		if last < 0 || last >= 1+8+2*4+2 {
			t.Fatalf("small's last document was result %d of %d (order %v); want it within the first 19", last, len(order), order)
		}
	})

	t.Run("WeightsShareTheLane", func(t *testing.T) {
		t.Parallel()
		b, q := setupFair(t, worker.Config{BatchSize: 2, TenantScan: time.Hour, FairQuantum: 1,
			Weights: weights{"heavy": 3, "light": 1}}, true)
		q.pushTenant(backfillDoc("heavy", "bfheavy", 0), job.ResultsSubject("bfheavy"))
		<-b.model.started // the model is busy with heavy's first document
		for i := 1; i <= 40; i++ {
			q.pushTenant(backfillDoc("heavy", "bfheavy", i), job.ResultsSubject("bfheavy"))
			q.pushTenant(backfillDoc("light", "bflight", i), job.ResultsSubject("bflight"))
		}
		order := runInOrder(t, b, q, "light", 39, 81)
		first := slices.Index(order, "bflight")
		if first < 0 || first+20 > len(order) {
			t.Fatalf("light's first document was result %d of %d", first, len(order))
		}
		// While both have work, heavy takes three turns to light's one.
		heavy := 0
		for _, bf := range order[first : first+20] {
			if bf == "bfheavy" {
				heavy++
			}
		}
		if heavy < 13 || heavy > 17 {
			t.Fatalf("heavy had %d of the 20 results from light's first on (order %v); want about 15", heavy, order)
		}
	})

	t.Run("LetsIdleTenantGoAndPullsItAgain", func(t *testing.T) {
		t.Parallel()
		b, q := setupFair(t, worker.Config{TenantScan: 5 * time.Millisecond}, false)
		k := tenantKey(job.LaneBulk, "acme")
		j := &job.Job{ID: "j1", Tenant: "acme", Task: task, Lane: job.LaneBulk, Input: job.Input{Text: "x"}, Created: time.Now()}
		if _, err := b.st.Create(b.ctx, j, "h"); err != nil {
			t.Fatal(err)
		}
		q.pushTenant(j, "")
		if got := b.settled(t, 1); got["j1"].kind != "ack" {
			t.Fatalf("settled %+v", got)
		}
		// Nothing queued: the tenant's puller is let go, so that its idle
		// consumer can be removed.
		waitFor(t, b.ctx, q.drained, k)
		// It has work again: it is pulled again.
		j2 := *j
		j2.ID = "j2"
		if _, err := b.st.Create(b.ctx, &j2, "h"); err != nil {
			t.Fatal(err)
		}
		q.pushTenant(&j2, "")
		// A job an older ingest queued on the lane subject is served too.
		b.job(t, "old", "queued before the upgrade", job.LaneBulk, 1)
		if got := b.settled(t, 2); got["j2"].kind != "ack" || got["old"].kind != "ack" {
			t.Fatalf("settled %+v", got)
		}
		q.tmu.Lock()
		n := len(q.tpulls[k])
		q.tmu.Unlock()
		if n != 2 {
			t.Errorf("acme was pulled %d times, want twice (once per stretch of work)", n)
		}
		// A soft stop drains every puller, the tenants' too.
		b.stop()
		if err := <-b.done; err != nil {
			t.Fatalf("Run after a soft stop: %v", err)
		}
		b.done <- nil
		q.tmu.Lock()
		defer q.tmu.Unlock()
		for k, ps := range q.tpulls {
			for _, p := range ps {
				if !p.drained {
					t.Errorf("a puller of %s was not drained", k)
				}
			}
		}
	})
}
