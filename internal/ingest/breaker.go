package ingest

import (
	"sync"
	"time"
)

// BreakerState is where a task's circuit breaker stands.
type BreakerState int

// The states, in the order of the jetinfer_ingest_breaker_state gauge's
// values. Closed lets every synchronous call through; Open refuses them
// with 503 task_unavailable; HalfOpen lets one probe through at a time and
// refuses the rest.
const (
	BreakerClosed BreakerState = iota
	BreakerHalfOpen
	BreakerOpen
)

// String names the state as GET /v1/fleet does: closed, half_open, open.
func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return "closed"
}

// The defaults of the breaker flags (--breaker-failures, --breaker-open-for).
const (
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 10 * time.Second
)

// BreakerPolicy tunes a task's circuit breaker.
type BreakerPolicy struct {
	// Failures is how many synchronous calls in a row must fail (a model
	// error, or no result within the call's wait) to open the breaker; 0
	// turns the breaker off (the ingest binary's --breaker-failures
	// defaults to DefaultBreakerFailures).
	Failures int
	// OpenFor is how long an open breaker refuses every call before it lets
	// a probe through (half-open); a probe that has not reported within
	// OpenFor no longer holds the slot. Defaults to DefaultBreakerOpenFor.
	OpenFor time.Duration
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.Failures < 0 {
		p.Failures = 0
	}
	if p.OpenFor <= 0 {
		p.OpenFor = DefaultBreakerOpenFor
	}
	return p
}

// Breaker is one task's circuit breaker: a pure policy, told the time of
// each call and outcome. Synchronous calls of a task whose model fails
// every call, or whose workers crash in a loop so that calls time out,
// would otherwise each hold a connection for the whole wait: the breaker
// answers them at once instead, and lets one call at a time through to
// find out when the task works again. It is not safe for concurrent use.
type Breaker struct {
	p        BreakerPolicy
	failures int // consecutive failures while closed
	state    BreakerState
	// since is when the breaker last opened (Open), or when the probe in
	// flight was let through (HalfOpen; zero when none is).
	since time.Time
}

// NewBreaker returns a closed breaker with policy p.
func NewBreaker(p BreakerPolicy) *Breaker { return &Breaker{p: p.withDefaults()} }

// State is the breaker's state at now: an open breaker whose OpenFor has
// passed is half-open.
func (b *Breaker) State(now time.Time) BreakerState {
	if b.state == BreakerOpen && now.Sub(b.since) >= b.p.OpenFor {
		return BreakerHalfOpen
	}
	return b.state
}

// Allow reports whether a call may go through at now; a refused call is
// told how long until a probe may go. A call let through while half-open
// is the probe: the next is refused until it reports (Record) or OpenFor
// passes.
func (b *Breaker) Allow(now time.Time) (bool, time.Duration) {
	if b.p.Failures == 0 {
		return true, 0
	}
	switch b.State(now) {
	case BreakerClosed:
		return true, 0
	case BreakerOpen:
		return false, b.p.OpenFor - now.Sub(b.since)
	}
	if b.state == BreakerOpen || b.since.IsZero() || now.Sub(b.since) >= b.p.OpenFor {
		b.state, b.since = BreakerHalfOpen, now
		return true, 0
	}
	return false, b.p.OpenFor - now.Sub(b.since)
}

// Record reports the outcome of a call let through at now: a success
// closes the breaker, a failure counts towards opening it, or, for a
// probe, opens it again.
func (b *Breaker) Record(now time.Time, ok bool) {
	if b.p.Failures == 0 {
		return
	}
	if ok {
		b.state, b.failures, b.since = BreakerClosed, 0, time.Time{}
		return
	}
	switch b.state {
	case BreakerOpen:
		return // a call let through before the breaker opened
	case BreakerClosed:
		b.failures++
		if b.failures < b.p.Failures {
			return
		}
	}
	b.state, b.failures, b.since = BreakerOpen, 0, now
}

// Release gives back a call let through whose outcome says nothing of the
// task (the caller went away, or the input was at fault): a probe's slot
// is freed for the next call.
func (b *Breaker) Release() {
	if b.state == BreakerHalfOpen {
		b.since = time.Time{}
	}
}

// breakers holds the circuit breaker of each task that has had a
// synchronous call; tasks are the catalog's, so the map stays small.
type breakers struct {
	p  BreakerPolicy
	mu sync.Mutex
	m  map[string]*Breaker
}

func (bs *breakers) with(task string, f func(b *Breaker)) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[task]
	if b == nil {
		if bs.m == nil {
			bs.m = map[string]*Breaker{}
		}
		b = NewBreaker(bs.p)
		bs.m[task] = b
	}
	f(b)
}

// states returns each task's breaker state at now.
func (bs *breakers) states(now time.Time) map[string]BreakerState {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make(map[string]BreakerState, len(bs.m))
	for task, b := range bs.m {
		out[task] = b.State(now)
	}
	return out
}
