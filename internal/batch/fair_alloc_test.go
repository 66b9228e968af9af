//go:build !race

package batch_test

import (
	"testing"

	"github.com/jetinfer/jetinfer/internal/batch"
)

// A worker picks once per document of a shared lane: a pick allocates
// nothing once the round has settled, nor when a tenant leaves and comes
// back. (The race detector's own allocations would be counted.)
func TestFairPickAllocatesNothing(t *testing.T) {
	waiting := []batch.Waiting{{Tenant: "a", Cost: 3}, {Tenant: "b", Cost: 1, Weight: 2}, {Tenant: "c", Arriving: true}}
	f := batch.NewFair()
	f.Pick(waiting)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		if f.Pick(waiting[i%2:]) < 0 {
			t.Fatal("no pick")
		}
	})
	if allocs != 0 {
		t.Fatalf("a pick allocates %.1f times, want 0", allocs)
	}
}
