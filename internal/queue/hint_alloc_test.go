//go:build !race

package queue

import (
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// Every published bulk job asks for a hint: one whose subject was hinted
// at within hintEvery allocates nothing. (The race detector's own
// allocations would be counted.)
func TestHintWorkAllocatesNothing(t *testing.T) {
	c, err := New(testenv.StartNATS(t).Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	j := &job.Job{ID: "1", Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk}
	c.hintWork(j)
	if allocs := testing.AllocsPerRun(100, func() { c.hintWork(j) }); allocs != 0 {
		t.Fatalf("a hint within hintEvery allocates %.1f times, want 0", allocs)
	}
}
