package worker

import (
	"sync"
	"sync/atomic"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Metrics counts what a worker did. It is safe for concurrent use and cheap
// to update on the hot path; telemetry exports it.
type Metrics struct {
	batches, rows, tokens, paddedTokens atomic.Int64
	splits, retries, heartbeats         atomic.Int64

	mu   sync.Mutex
	jobs map[[2]string]int64
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics { return &Metrics{jobs: map[[2]string]int64{}} }

func (m *Metrics) observeRun(st RunStats, docs int) {
	m.batches.Add(1)
	m.rows.Add(int64(st.Rows))
	m.tokens.Add(int64(st.Tokens))
	m.paddedTokens.Add(int64(st.PaddedTokens))
}

func (m *Metrics) finished(task string, s job.Status) {
	m.mu.Lock()
	m.jobs[[2]string{task, string(s)}]++
	m.mu.Unlock()
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Batches, Rows, Tokens, PaddedTokens int64
	Splits, Retries, Heartbeats         int64
	// Jobs counts finished jobs by task and status.
	Jobs map[[2]string]int64
}

// Snapshot returns the current counters.
func (m *Metrics) Snapshot() Snapshot {
	s := Snapshot{Batches: m.batches.Load(), Rows: m.rows.Load(), Tokens: m.tokens.Load(),
		PaddedTokens: m.paddedTokens.Load(), Splits: m.splits.Load(), Retries: m.retries.Load(),
		Heartbeats: m.heartbeats.Load(), Jobs: map[[2]string]int64{}}
	m.mu.Lock()
	for k, v := range m.jobs {
		s.Jobs[k] = v
	}
	m.mu.Unlock()
	return s
}
