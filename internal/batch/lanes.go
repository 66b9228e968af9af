package batch

import "time"

// DefaultInteractiveFor is how long after an interactive job arrives the
// worker treats interactive traffic as about (Lanes.InteractiveFor).
const DefaultInteractiveFor = time.Second

// DefaultRecentFor is how long after an interactive job arrives bulk
// batches stay within the latency budget (Lanes.RecentFor): interactive
// callers come back within minutes, and one that waits for a full-size bulk
// batch of a slow model waits seconds.
const DefaultRecentFor = 5 * time.Minute

// DefaultLatencyBudget is the default latency budget of a bulk batch while
// interactive traffic is recent, suited to CPUs, where a call costs about
// its padded tokens and small calls lose little throughput. GPUs, where a
// call costs about the same whether full or not, want a larger one (1s).
const DefaultLatencyBudget = 250 * time.Millisecond

// Shape is what the lane rules need to know of a batch being formed: how
// many items it holds, their padded tokens (each item's rows × its longest
// row, summed), and whether any of them is interactive.
type Shape struct {
	Len         int
	Tokens      int
	Interactive bool
}

// Lanes is the policy by which one model is shared between the interactive
// lane and the bulk lanes (bulk jobs and backfill documents, served alike).
// It decides, from the batch being formed and the time, how far the batch
// may grow, how much of it runs now, whether it pauses, and what happens
// when an interactive job arrives while it waits for the model. The worker's
// collect loop only feeds it and acts on its answers.
//
// Its one piece of state is when the last interactive job arrived (Saw).
// A Lanes is not safe for concurrent use; each pipeline owns one.
//
// The rules, each a method:
//
//   - InteractiveAbout: interactive traffic is about while an interactive
//     job arrived within InteractiveFor.
//   - Limit: a batch with an interactive job grows to one model call; a
//     bulk batch formed while interactive traffic is about, to a quarter
//     call (QuarterSize), so that an interactive job waits behind at most a
//     small one; with only bulk work about, to Window calls, so that the
//     planner can sort similar lengths together and padding stays small.
//     While interactive traffic is recent (InteractiveRecent), a bulk
//     batch also holds at most BulkCap padded tokens: the latency budget
//     in tokens, learnt from the model's cost (Cost.TokensWithin), so that
//     an interactive job waits for about one budget even on a slow model.
//   - Cut: a bulk batch that grew past a quarter call before interactive
//     traffic appeared runs its first quarter now; the rest is carried to
//     the next batch.
//   - Pause: a bulk batch formed while interactive traffic is about waits
//     Pause before it runs (unless it is a carried batch, which made way
//     once already), leaving the CPU to the interactive jobs that share it.
//   - GrowWhileWaiting: a batch waiting for a busy model takes more bulk
//     work while it has room and no interactive traffic is about;
//     GrowWhilePaused: a paused batch fills its room meanwhile.
//   - OnInteractive: an interactive job that arrives while a batch waits
//     (paused, or for the model) preempts a bulk batch, which is carried
//     and runs next; it joins a batch that has interactive jobs already, at
//     the front, and Overflow says when that pushes a bulk item out.
type Lanes struct {
	// Size is the most items in one model call (Policy.MaxSize).
	Size int
	// Tokens is the padded token budget of one model call (Policy.MaxTokens).
	Tokens int
	// Window is how many model calls' worth of bulk work a batch may gather
	// while no interactive traffic is about. Defaults to
	// DefaultWindowBatches.
	Window int
	// Pause is how long a bulk batch formed while interactive traffic is
	// about waits before it runs; 0 runs bulk batches back to back.
	Pause time.Duration
	// InteractiveFor is how long interactive traffic counts as about after
	// an interactive job arrives. Defaults to DefaultInteractiveFor.
	InteractiveFor time.Duration
	// RecentFor is how long interactive traffic counts as recent after an
	// interactive job arrives, for BulkCap. Defaults to DefaultRecentFor.
	RecentFor time.Duration
	// BulkCap is the most padded tokens of a bulk batch while interactive
	// traffic is recent; 0 means no cap. The caller sets it from the
	// model's learnt cost and its latency budget.
	BulkCap int

	lastInteractive time.Time
}

// NewLanes returns the lane policy for one model call of size items and
// tokens padded tokens, with Pause set to pause and every other field at its
// default.
func NewLanes(size, tokens int, pause time.Duration) *Lanes {
	return &Lanes{Size: max(size, 1), Tokens: tokens, Window: DefaultWindowBatches,
		Pause: pause, InteractiveFor: DefaultInteractiveFor, RecentFor: DefaultRecentFor}
}

// Saw records that an item of class c arrived at now.
func (l *Lanes) Saw(c Class, now time.Time) {
	if c == Interactive {
		l.lastInteractive = now
	}
}

// InteractiveAbout reports whether an interactive job arrived within
// InteractiveFor of now.
func (l *Lanes) InteractiveAbout(now time.Time) bool {
	return !l.lastInteractive.IsZero() && now.Sub(l.lastInteractive) < l.InteractiveFor
}

// InteractiveRecent reports whether an interactive job arrived within
// RecentFor of now.
func (l *Lanes) InteractiveRecent(now time.Time) bool {
	return !l.lastInteractive.IsZero() && now.Sub(l.lastInteractive) < l.RecentFor
}

// QuarterSize is the size of a bulk batch while interactive traffic is
// about: a quarter of a model call, at least one item.
func (l *Lanes) QuarterSize() int { return max(1, l.Size/4) }

// Limit is how many items and padded tokens batch b may grow to at now.
func (l *Lanes) Limit(b Shape, now time.Time) (items, tokens int) {
	switch {
	case b.Interactive:
		return l.Size, l.Tokens
	case l.InteractiveAbout(now):
		items, tokens = l.QuarterSize(), l.Tokens
	default:
		items, tokens = l.Window*l.Size, l.Window*l.Tokens
	}
	if l.BulkCap > 0 && l.InteractiveRecent(now) && (tokens <= 0 || l.BulkCap < tokens) {
		tokens = l.BulkCap
	}
	return items, tokens
}

// Room reports whether batch b may take another item at now.
func (l *Lanes) Room(b Shape, now time.Time) bool {
	n, tokens := l.Limit(b, now)
	return b.Len < n && (tokens <= 0 || b.Tokens < tokens)
}

// Cut is how many of b's items run now; the caller carries the rest,
// in order, to the next batch.
func (l *Lanes) Cut(b Shape, now time.Time) int {
	if q := l.QuarterSize(); !b.Interactive && b.Len > q && l.InteractiveAbout(now) {
		return q
	}
	return b.Len
}

// PauseFor is how long batch b waits before it is offered to the model;
// carried reports that b made way for interactive jobs once already.
func (l *Lanes) PauseFor(b Shape, carried bool, now time.Time) time.Duration {
	if l.Pause <= 0 || carried || b.Interactive || !l.InteractiveAbout(now) {
		return 0
	}
	return l.Pause
}

// GrowWhileWaiting reports whether batch b, waiting for the model or
// paused, takes more bulk work at now.
func (l *Lanes) GrowWhileWaiting(b Shape, now time.Time) bool {
	return l.Room(b, now) && !l.InteractiveAbout(now)
}

// GrowWhilePaused reports whether batch b, paused, takes more bulk work:
// the pause costs the bulk lanes latency but not batch size, and a full
// batch still waits the pause out, which is the gap interactive jobs use.
func (l *Lanes) GrowWhilePaused(b Shape, now time.Time) bool { return l.Room(b, now) }

// Arrival is what to do with an interactive job that arrives while a
// batch waits.
type Arrival uint8

// The answers of OnInteractive.
const (
	// Preempt: the waiting batch is carried to the next round and the
	// interactive job goes to the model alone.
	Preempt Arrival = iota
	// Join: the interactive job joins the waiting batch at the front.
	Join
)

// OnInteractive says what an interactive job arriving while batch b waits
// does to it.
func (l *Lanes) OnInteractive(b Shape) Arrival {
	if b.Interactive {
		return Join
	}
	return Preempt
}

// Overflow reports whether batch b, after an interactive job joined it,
// holds more than one model call: the caller then carries its last bulk
// item to the next batch.
func (l *Lanes) Overflow(b Shape) bool { return b.Len > l.Size }
