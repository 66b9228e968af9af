package queue

import (
	"fmt"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// BenchmarkHintWork is the hint a publish of a bulk job gives the workers,
// on 64 tenants' subjects, against an embedded server: nearly every call
// finds its subject hinted within the last second and sends nothing, which
// is the cost every published job pays. "parallel" publishes from as many
// goroutines as GOMAXPROCS, as ingest's handlers do.
func BenchmarkHintWork(b *testing.B) {
	c, err := New(testenv.StartNATS(b).Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	jobs := make([]*job.Job, 64)
	for i := range jobs {
		jobs[i] = &job.Job{ID: fmt.Sprint(i), Tenant: fmt.Sprintf("tenant-%02d", i), Task: "sentiment", Lane: job.LaneBulk}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.hintWork(jobs[i%len(jobs)])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				c.hintWork(jobs[i%len(jobs)])
			}
		})
	})
}
