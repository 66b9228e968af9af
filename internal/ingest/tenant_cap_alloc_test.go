//go:build !race

package ingest

import "testing"

// An admission that says what the tenant's last one did allocates nothing
// to remember it. (The race detector's own allocations would be counted.)
func TestRememberUnchangedAllocatesNothing(t *testing.T) {
	var s Server
	tenant := string([]byte("acme")) // a claim's, made at run time
	remember(&s.tenantTTL, tenant, int64(86400))
	remember(&s.tenantWindows, tenant, 300)
	allocs := testing.AllocsPerRun(100, func() {
		remember(&s.tenantTTL, tenant, int64(86400))
		remember(&s.tenantWindows, tenant, 300)
	})
	if allocs != 0 {
		t.Fatalf("remembering an unchanged admission allocates %.1f times, want 0", allocs)
	}
}
