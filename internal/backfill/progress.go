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
	// Stalled, when set, says why the backfill makes no progress (see
	// StallOf); the server fills it in.
	Stalled *Stall `json:"stalled,omitempty"`
	// Warnings are said once, by the response that created the backfill or
	// added documents (no live worker serves the task, say).
	Warnings []string `json:"warnings,omitempty"`
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

// DefaultStallAfter is the default quiet time after which a backfill with
// pending documents and none finished is reported stalled (ingest's
// --backfill-stall-after).
const DefaultStallAfter = 2 * time.Minute

// The reasons of a Stall.
const (
	// StallNoWorkers: no live worker serves the backfill's task.
	StallNoWorkers = "no_workers"
	// StallNoProgress: workers serve the task, yet no document finished.
	StallNoProgress = "no_progress"
)

// Stall says why a backfill with pending documents has made no progress.
type Stall struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Since is when the backfill last made progress: its latest finished
	// document, or its creation.
	Since time.Time `json:"since"`
}

// StallOf reports whether b, at now, has had documents pending and none
// finished for at least quiet, and why: served says whether a live worker
// serves its task. A quiet of 0 or less reports nothing.
func StallOf(b *Backfill, now time.Time, quiet time.Duration, served bool) *Stall {
	if quiet <= 0 || b.Pending() <= 0 || b.State == StateCompleted || b.State == StateCanceled {
		return nil
	}
	since := b.Created
	if b.Last.After(since) {
		since = b.Last
	}
	if now.Sub(since) < quiet {
		return nil
	}
	if !served {
		return &Stall{Reason: StallNoWorkers, Since: since,
			Message: "no live worker serves task " + b.Task + "; the documents wait in the queue until one starts"}
	}
	return &Stall{Reason: StallNoProgress, Since: since,
		Message: "no document finished for " + now.Sub(since).Truncate(time.Second).String() + " though workers serve task " + b.Task +
			"; check the workers' logs and the dead letters"}
}
