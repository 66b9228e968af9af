package webhook

import (
	"fmt"
	"net/http"
	"time"
)

// Retry defaults: the first retry after RetryBaseDefault, each wait as long
// as the event's age so far (attempts double their spacing) up to
// RetryMaxDefault, until the event is RetryMaxAgeDefault old.
const (
	RetryBaseDefault   = 5 * time.Second
	RetryMaxDefault    = time.Hour
	RetryMaxAgeDefault = 24 * time.Hour
)

// RetryPolicy decides when a failed delivery is tried again and when it is
// given up. It works from the event's age rather than a count of attempts,
// so that redeliveries which made no attempt (an endpoint at its
// concurrency limit) do not move the schedule.
type RetryPolicy struct {
	// Base is the shortest wait. Defaults to RetryBaseDefault.
	Base time.Duration
	// Max is the longest wait. Defaults to RetryMaxDefault.
	Max time.Duration
	// MaxAge is how long after its event was published a delivery is
	// still tried. Defaults to RetryMaxAgeDefault.
	MaxAge time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = RetryBaseDefault
	}
	if p.Max <= 0 {
		p.Max = RetryMaxDefault
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.MaxAge <= 0 {
		p.MaxAge = RetryMaxAgeDefault
	}
	return p
}

// Next returns how long to wait before trying an event published at
// published again, after a failure at now. hint is the wait the receiver
// asked for (Retry-After), or 0; jitter in [0,1) spreads retries of events
// that failed together by up to ±10%. giveUp is true when the next attempt
// would come after MaxAge: the event is dead-lettered instead.
func (p RetryPolicy) Next(published, now time.Time, hint time.Duration, jitter float64) (wait time.Duration, giveUp bool) {
	p = p.withDefaults()
	age := max(now.Sub(published), 0)
	wait = min(max(age, p.Base), p.Max)
	wait = time.Duration(float64(wait) * (0.9 + 0.2*min(max(jitter, 0), 1)))
	wait = max(wait, min(hint, p.Max))
	if age+wait > p.MaxAge {
		return 0, true
	}
	return wait, false
}

// Verdict is what one attempt's answer means.
type Verdict int

// The verdicts.
const (
	// Delivered: a 2xx answer; the event is done.
	Delivered Verdict = iota
	// Failed: try again later (5xx, 429, other 4xx, timeouts, refused
	// connections): a receiver being deployed or misconfigured recovers.
	Failed
	// Gone: the receiver said 410 Gone, or the address is refused; no
	// retry can succeed and the event is dead-lettered at once.
	Gone
)

// Judge returns the verdict on an attempt that got status (0 when the
// request failed with err), and a reason to record for a failure.
func Judge(status int, err error) (Verdict, string) {
	switch {
	case err != nil && isRefused(err):
		return Gone, err.Error()
	case err != nil:
		return Failed, err.Error()
	case status >= 200 && status < 300:
		return Delivered, ""
	case status == http.StatusGone:
		return Gone, "endpoint answered 410 Gone"
	default:
		return Failed, fmt.Sprintf("endpoint answered %d %s", status, http.StatusText(status))
	}
}

// EndpointPause is how long an endpoint is left alone after failures
// failed attempts in a row: Base doubled per failure up to Max. While it
// pauses, its events wait without attempts; then one event probes it, and
// only a delivery opens it to its full concurrency again. This keeps a dead
// receiver's backlog from costing a timeout per event.
func (p RetryPolicy) EndpointPause(failures int) time.Duration {
	p = p.withDefaults()
	if failures <= 0 {
		return 0
	}
	d := p.Base
	for i := 1; i < failures && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}
