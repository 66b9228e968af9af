package backfill

import (
	"math"
	"time"
)

// Progress is what GET /v1/backfills/{id} answers.
type Progress struct {
	ID    string `json:"id"`
	Task  string `json:"task"`
	Name  string `json:"name,omitempty"`
	State State  `json:"state"`
	Counters
	Pending int64 `json:"pending"`
	// DocsPerS is the rate at which documents reached a final state, from
	// the first to the latest (or, while documents are pending, to now).
	DocsPerS float64 `json:"docs_per_s"`
	// EtaS estimates the seconds until nothing is pending at that rate; it
	// is absent while no rate is known.
	EtaS     *float64  `json:"eta_s,omitempty"`
	Created  time.Time `json:"created_at"`
	Sealed   time.Time `json:"sealed_at,omitzero"`
	Finished time.Time `json:"finished_at,omitzero"`
	// Webhook and ProgressEvery are the backfill's (see Backfill).
	Webhook       string `json:"webhook,omitempty"`
	ProgressEvery int64  `json:"progress_every,omitempty"`
}

// ProgressOf computes b's progress at now.
func ProgressOf(b *Backfill, now time.Time) Progress {
	p := Progress{ID: b.ID, Task: b.Task, Name: b.Name, State: b.State, Counters: b.Counters,
		Pending: b.Pending(), Created: b.Created, Sealed: b.Sealed, Finished: b.Finished,
		Webhook: b.Webhook, ProgressEvery: b.ProgressEvery}
	p.DocsPerS = Rate(b.Done()-b.Canceled, b.First, b.Last, p.Pending > 0 && b.State != StateCanceled, now)
	if b.State == StateCompleted || b.State == StateCanceled {
		zero := 0.0
		p.EtaS = &zero
	} else if p.DocsPerS > 0 {
		eta := math.Round(float64(p.Pending)/p.DocsPerS*10) / 10
		p.EtaS = &eta
	}
	return p
}

// Rate is done documents over the time from first to last, or to now while
// running (so that a stalled backfill's rate decays instead of freezing). A
// single instant gives no rate.
func Rate(done int64, first, last time.Time, running bool, now time.Time) float64 {
	if done <= 0 || first.IsZero() {
		return 0
	}
	end := last
	if running && now.After(end) {
		end = now
	}
	secs := end.Sub(first).Seconds()
	if secs <= 0 {
		return 0
	}
	return math.Round(float64(done)/secs*10) / 10
}
