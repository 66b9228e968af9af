package worker

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// BenchmarkJobMetrics is what the worker records per job (received and
// settled, with the six-stage latency breakdown) and per model call, on
// the real OpenTelemetry SDK exporting to Prometheus.
func BenchmarkJobMetrics(b *testing.B) {
	prom, err := telemetry.NewMetrics()
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewExportedMetrics(prom.Meter("bench"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	j := &job.Job{ID: "j", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive}
	t := &job.Timings{Queue: 1, Batch: 2, Tokenize: 0.1, Infer: 5, Delivery: 0.5, Total: 9}
	st := RunStats{Rows: 32, Tokens: 2000, PaddedTokens: 2400}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.received(ctx, j, 1)
		m.finished(ctx, j, job.StatusSucceeded, t, time.Millisecond)
		if i%32 == 0 {
			m.observeRun(ctx, j.Task, st, 32)
		}
	}
}

// The exported counters follow what the worker counted.
func TestMetricsSnapshotCountsJobs(t *testing.T) {
	m := NewMetrics()
	ctx := context.Background()
	j := &job.Job{Tenant: "acme", Task: "ner", Lane: job.LaneBulk}
	m.finished(ctx, j, job.StatusSucceeded, &job.Timings{}, 0)
	m.finished(ctx, j, job.StatusSucceeded, nil, 0)
	m.finished(ctx, j, job.StatusDead, nil, 0)
	m.observeRun(ctx, "ner", RunStats{Rows: 3, Tokens: 10, PaddedTokens: 12}, 3)
	s := m.Snapshot()
	if s.Jobs[[2]string{"ner", "succeeded"}] != 2 || s.Jobs[[2]string{"ner", "dead"}] != 1 ||
		s.Batches != 1 || s.Rows != 3 || s.Tokens != 10 || s.PaddedTokens != 12 {
		t.Fatalf("snapshot %+v", s)
	}
}
