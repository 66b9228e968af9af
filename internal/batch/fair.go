package batch

import (
	"slices"
	"time"
)

// DefaultQuantum is the credit (in bytes of job data, a stand-in for the
// tokens a document costs the model) a tenant of weight 1 gains each time
// its turn comes round in a Fair lane: a few typical news documents, so
// that a turn hands a pipeline a run of one tenant's documents rather than
// one document, and the batch planner still sees similar lengths together.
const DefaultQuantum = 16 << 10

// DefaultTenantScan is how often by default a worker lists the tenants with
// work in a shared lane: publishers' hints bring a new tenant's first jobs
// at once, the scan only covers a lost hint and lets idle tenants go, so it
// can be slow and spare the JetStream API.
const DefaultTenantScan = 2 * time.Second

// Waiting is one tenant with work waiting in a shared lane, as Fair sees it.
type Waiting struct {
	// Tenant names the tenant (its subject token).
	Tenant string
	// Weight is the tenant's share relative to the others; 0 counts as 1.
	Weight int
	// Cost is what its next document costs (bytes of job data); at least 1
	// is charged.
	Cost int
	// Arriving reports that the tenant's next document is on its way but
	// not there yet (a pull in flight): the tenant keeps its place and
	// credit in the round, but its turn passes without credit.
	Arriving bool
}

// Fair shares a lane between the tenants that have work waiting in it, by
// deficit round robin: the tenants waiting take turns in the order they
// started waiting; at each turn a tenant gains Quantum × Weight credit and
// sends documents while its credit covers their cost; a tenant with nothing
// waiting leaves the round and loses its credit, so that idling buys no
// burst later. Over any stretch in which several tenants wait, each is
// served in proportion to its weight, in cost (bytes) rather than in
// documents, so short documents do not buy a tenant more of the model; a
// lone tenant gets the whole lane; and no tenant that waits starves, since
// every round gives each one credit.
//
// Fair holds only the round (the order of the tenants in it, whose turn it
// is, their credit). It is not safe for concurrent use.
type Fair struct {
	// Quantum is the credit a tenant of weight 1 gains per turn. Defaults to
	// DefaultQuantum.
	Quantum int

	round    []string
	credit   map[string]int
	turn     int  // index in round of the tenant whose turn it is
	credited bool // whether round[turn] has had this turn's credit

	// idx and inRound are sync's scratch, kept from pick to pick so that a
	// pick allocates nothing: each waiting tenant's index in waiting, and
	// whether waiting[i] is in the round already.
	idx     map[string]int
	idxPeak int // the most tenants idx has held since it was made
	inRound []bool
}

// maxIdleIdx is how many times more tenants than wait now idx may once
// have held before sync drops it for a smaller one: clearing a map costs
// what it once held, not what it holds.
const maxIdleIdx = 8

// NewFair returns a Fair with the default quantum.
func NewFair() *Fair { return &Fair{Quantum: DefaultQuantum} }

// Pick returns the index in waiting of the tenant whose document goes
// next, and charges it that document's cost; -1 when no tenant in waiting
// has a document there (none, or all Arriving). A tenant missing from
// waiting has nothing waiting: it leaves the round. The order of waiting
// does not matter; a tenant must appear in it at most once.
func (f *Fair) Pick(waiting []Waiting) int {
	idx := f.sync(waiting)
	if !slices.ContainsFunc(waiting, func(w Waiting) bool { return !w.Arriving }) {
		return -1
	}
	q := max(f.Quantum, 1)
	for {
		t := f.round[f.turn]
		w := waiting[idx[t]]
		if w.Arriving {
			f.turn, f.credited = (f.turn+1)%len(f.round), false
			continue
		}
		if !f.credited {
			f.credit[t] += q * max(w.Weight, 1)
			f.credited = true
		}
		if cost := max(w.Cost, 1); f.credit[t] >= cost {
			f.credit[t] -= cost
			return idx[t]
		}
		// Not enough credit for this document: the turn passes, the credit
		// is kept for the next one.
		f.turn, f.credited = (f.turn+1)%len(f.round), false
	}
}

// sync brings the round in line with waiting: tenants that no longer wait
// leave it (and lose their credit), new ones join at the end. When the
// tenant whose turn it was left, the turn passes to the next one that
// stayed, or round to the start. It returns each tenant's index in waiting.
func (f *Fair) sync(waiting []Waiting) map[string]int {
	if f.credit == nil {
		f.credit = map[string]int{}
	}
	if f.idx == nil || f.idxPeak > maxIdleIdx*max(len(waiting), 8) {
		f.idx, f.idxPeak = make(map[string]int, len(waiting)), 0
	} else {
		clear(f.idx)
	}
	f.idxPeak = max(f.idxPeak, len(waiting))
	idx := f.idx
	for i, w := range waiting {
		idx[w.Tenant] = i
	}
	in := slices.Grow(f.inRound[:0], len(waiting))[:len(waiting)]
	clear(in)
	f.inRound = in
	kept, turn := f.round[:0], -1
	for i, t := range f.round {
		j, ok := idx[t]
		if !ok {
			delete(f.credit, t)
			continue
		}
		in[j] = true
		switch {
		case i == f.turn:
			turn = len(kept)
		case i > f.turn && turn < 0:
			turn, f.credited = len(kept), false
		}
		kept = append(kept, t)
	}
	if turn < 0 {
		turn, f.credited = 0, false
	}
	for i, w := range waiting {
		// A tenant's index is its last in waiting: a tenant listed twice
		// joins once.
		if j := idx[w.Tenant]; !in[j] && j == i {
			kept = append(kept, w.Tenant)
			in[j] = true
		}
	}
	f.round, f.turn = kept, turn
	return idx
}

// Tenants reports how many tenants are in the round, for metrics.
func (f *Fair) Tenants() int { return len(f.round) }
