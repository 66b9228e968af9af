package ingest

import (
	"testing"
	"time"
)

// TestBreakerPolicy walks a breaker through its states with the time
// passed in: each step is a call (allow, then the outcome recorded at the
// same instant) or a look at the state.
func TestBreakerPolicy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at      time.Duration
		call    string // "ok", "fail", "gone" (released), "" (no outcome: still in flight)
		allowed bool
		retry   time.Duration // of a refused call
		state   BreakerState  // after the step
	}
	p := BreakerPolicy{Failures: 3, OpenFor: 10 * time.Second}
	for _, tt := range []struct {
		name  string
		p     BreakerPolicy
		steps []step
	}{
		{"failures below the threshold keep it closed", p, []step{
			{at: 0, call: "fail", allowed: true, state: BreakerClosed},
			{at: 1, call: "fail", allowed: true, state: BreakerClosed},
			{at: 2, call: "ok", allowed: true, state: BreakerClosed},
			{at: 3, call: "fail", allowed: true, state: BreakerClosed},
			{at: 4, call: "fail", allowed: true, state: BreakerClosed},
		}},
		{"failures in a row open it; it refuses until OpenFor passes", p, []step{
			{at: 0, call: "fail", allowed: true, state: BreakerClosed},
			{at: 0, call: "fail", allowed: true, state: BreakerClosed},
			{at: time.Second, call: "fail", allowed: true, state: BreakerOpen},
			{at: 4 * time.Second, call: "ok", allowed: false, retry: 7 * time.Second, state: BreakerOpen},
			{at: 11*time.Second - 1, call: "ok", allowed: false, retry: 1, state: BreakerOpen},
		}},
		{"half-open lets one probe through; its success closes", p, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true, state: BreakerOpen},
			{at: 10 * time.Second, allowed: true, state: BreakerHalfOpen},                                      // the probe, in flight
			{at: 11 * time.Second, call: "ok", allowed: false, retry: 9 * time.Second, state: BreakerHalfOpen}, // refused meanwhile
		}},
		{"a probe that fails opens it again for OpenFor", p, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true, state: BreakerOpen},
			{at: 12 * time.Second, call: "fail", allowed: true, state: BreakerOpen},
			{at: 13 * time.Second, call: "ok", allowed: false, retry: 9 * time.Second, state: BreakerOpen},
			{at: 22 * time.Second, call: "ok", allowed: true, state: BreakerClosed},
			{at: 22 * time.Second, call: "fail", allowed: true, state: BreakerClosed}, // counting starts afresh
		}},
		{"a released probe frees the slot at once", p, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true, state: BreakerOpen},
			{at: 10 * time.Second, call: "gone", allowed: true, state: BreakerHalfOpen},
			{at: 10 * time.Second, call: "ok", allowed: true, state: BreakerClosed},
		}},
		{"a probe that never reports gives up the slot after OpenFor", p, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true, state: BreakerOpen},
			{at: 10 * time.Second, allowed: true, state: BreakerHalfOpen},
			{at: 20 * time.Second, call: "ok", allowed: true, state: BreakerClosed},
		}},
		{"a late failure of a call let through before it opened does not extend it", p, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true, state: BreakerOpen},
			{at: 5 * time.Second, call: "late-fail", state: BreakerOpen},
			{at: 10 * time.Second, call: "ok", allowed: true, state: BreakerClosed},
		}},
		{"Failures 0 turns it off", BreakerPolicy{}, []step{
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true},
			{at: 0, call: "fail", allowed: true}, {at: 0, call: "fail", allowed: true, state: BreakerClosed},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBreaker(tt.p)
			for i, st := range tt.steps {
				now := at(st.at)
				if st.call == "late-fail" {
					b.Record(now, false)
				} else {
					allowed, retry := b.Allow(now)
					if allowed != st.allowed || (!allowed && retry != st.retry) {
						t.Fatalf("step %d: Allow = %v, %s; want %v, %s", i, allowed, retry, st.allowed, st.retry)
					}
					if allowed {
						switch st.call {
						case "ok":
							b.Record(now, true)
						case "fail":
							b.Record(now, false)
						case "gone":
							b.Release()
						}
					}
				}
				if got := b.State(now); got != st.state {
					t.Fatalf("step %d: state %s, want %s", i, got, st.state)
				}
			}
		})
	}
}
