package app_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// BenchmarkFairBackfill measures how the backfill lane is shared between
// tenants: tenant big queues a backfill of 20,000 documents, and once the
// worker is busy with it tenant small submits a backfill of 500. It reports
// how long small's backfill took from creation to completion against the
// same backfill on the idle fleet (goal: at most 3×), and how many of big's
// documents finished meanwhile. Each small backfill is a tenant's first,
// after a warm-up one. Arrival order would make small wait for
// all of big's. Run it with `make bench-fair`.
func BenchmarkFairBackfill(b *testing.B) {
	const bigDocs, smallDocs = 20_000, 500
	s := startBenchStack(b)
	big := s.as(b, "big")
	bigArchive := benchArchive(b, bigDocs)
	run := 0
	// smallBackfill runs a 500-document backfill of a tenant new to the
	// fleet (its consumer is created on the way) to completion from
	// creation and returns how long it took; each run's texts are new, so
	// that none is answered from the reuse cache.
	smallBackfill := func() time.Duration {
		run++
		small := s.as(b, "small-"+strconv.Itoa(run))
		docs := make([][]byte, smallDocs)
		for i := range docs {
			docs[i], _ = json.Marshal(map[string]string{"id": "s-" + strconv.Itoa(i),
				"text": "Run " + strconv.Itoa(run) + ": the regional lender posted a quarterly loss, document " + strconv.Itoa(i) + "."})
		}
		t0 := time.Now()
		id := small.create(b)
		small.upload(b, id, docs)
		small.call(b, "POST", "/v1/backfills/"+id+"/seal", small.bfToken, "", nil, nil)
		for small.progress(b, id).State != "completed" {
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(t0)
	}
	smallBackfill() // warms the model, the store and the pipeline up
	for b.Loop() {
		alone := smallBackfill()
		id := big.create(b)
		big.upload(b, id, bigArchive)
		big.call(b, "POST", "/v1/backfills/"+id+"/seal", big.bfToken, "", nil, nil)
		for big.progress(b, id).Succeeded == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		before := big.progress(b, id)
		shared := smallBackfill()
		after := big.progress(b, id)
		for big.progress(b, id).State != "completed" {
			time.Sleep(50 * time.Millisecond)
		}
		b.ReportMetric(alone.Seconds()*1000, "small_alone_ms")
		b.ReportMetric(shared.Seconds()*1000, "small_beside_big_ms")
		b.ReportMetric(shared.Seconds()/alone.Seconds(), "slowdown")
		b.ReportMetric(float64(after.Succeeded-before.Succeeded), "big_docs_meanwhile")
		b.Logf("small's %d documents: %s alone, %s beside big's %d (big had %d done when small began, %d pending; %d finished meanwhile)",
			smallDocs, alone.Round(time.Millisecond), shared.Round(time.Millisecond), bigDocs, before.Succeeded, before.Pending,
			after.Succeeded-before.Succeeded)
	}
}
