package worker

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// benchItem keeps BenchmarkJobStates' items alive, so that the compiler
// cannot drop the work.
var benchItem *item

// errModelBench is the model error of BenchmarkJobStates' dead jobs.
var errModelBench = errors.New("the model fails on this document alone")

// BenchmarkJobStates is what every job costs the worker on its way through
// a pipeline besides the model and the stores: its sink chosen (sinkOf),
// and the transitions of its outcome (state.go) a succeeded job, a retried
// one and a dead one go through. The item itself is not counted: the
// pipeline's goroutines share it.
func BenchmarkJobStates(b *testing.B) {
	jobMsg := &Msg{Job: job.Job{ID: "j", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive}, Reply: "_INBOX.x"}
	docMsg := &Msg{Job: job.Job{ID: "d", Tenant: "acme", Task: "sentiment", Lane: job.LaneBackfill, Backfill: "bf", DocID: "7"}}
	result := json.RawMessage(`{"label":"positive"}`)
	deadErr := errorOf(job.CodeModelError, errModelBench)
	it := new(item)
	for _, c := range []struct {
		name string
		m    *Msg
	}{{"job", jobMsg}, {"backfill", docMsg}} {
		b.Run(c.name+"/succeeded", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				*it = item{msg: c.m, sink: sinkOf(c.m, true)}
				it.finishWith(job.StatusSucceeded, result, nil)
				if !it.final() {
					b.Fatal("not final")
				}
				benchItem = it
			}
		})
		b.Run(c.name+"/retried", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				*it = item{msg: c.m, sink: sinkOf(c.m, false)}
				it.retryLater(time.Second, deadErr)
				it.resendStored(job.StatusSucceeded)
				benchItem = it
			}
		})
		b.Run(c.name+"/dead", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				*it = item{msg: c.m, sink: sinkOf(c.m, false)}
				it.deadWith(job.CodeModelError, errModelBench)
				benchItem = it
			}
		})
	}
}
