package ingest

import (
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestCapWindowsOnlyLowers: the tenant's cap lowers a request's
// max_windows, treats 0 (the model's cap) as more than any cap, and never
// raises a request asking for fewer.
func TestCapWindowsOnlyLowers(t *testing.T) {
	for _, tc := range []struct{ asked, tenantCap, want int }{
		{0, 0, 0},
		{7, 0, 7},
		{0, 4, 4},
		{10, 4, 4},
		{3, 4, 3},
		{4, 4, 4},
	} {
		o := job.Options{MaxWindows: tc.asked}
		capWindows(&o, tc.tenantCap)
		if o.MaxWindows != tc.want {
			t.Errorf("asked %d, tenant cap %d: got %d, want %d", tc.asked, tc.tenantCap, o.MaxWindows, tc.want)
		}
	}
}

func TestExportLimit(t *testing.T) {
	for _, tc := range []struct{ tenantCap, ceiling, want int }{
		{0, 8, 8},  // no tenant cap: the server's ceiling
		{2, 8, 2},  // a tenant's cap lowers it
		{20, 8, 8}, // and never raises it
		{8, 8, 8},
	} {
		if got := exportLimit(tc.tenantCap, tc.ceiling); got != tc.want {
			t.Errorf("exportLimit(%d, %d) = %d, want %d", tc.tenantCap, tc.ceiling, got, tc.want)
		}
	}
}

// TestRememberKeepsTheLastAdmission: what remember keeps is what the
// tenant's last admission said, changed or not, and each tenant's own.
func TestRememberKeepsTheLastAdmission(t *testing.T) {
	var s Server
	for _, ttl := range []int64{60, 60, 3600, 60} {
		remember(&s.tenantTTL, "acme", ttl)
		if got, _ := s.tenantTTL.Load("acme"); got != ttl {
			t.Fatalf("remembered ttl %v, want %d", got, ttl)
		}
	}
	remember(&s.tenantTTL, "globex", int64(5))
	if a, _ := s.tenantTTL.Load("acme"); a != int64(60) {
		t.Fatalf("acme's ttl %v after globex's admission, want 60", a)
	}
}

// BenchmarkRememberAdmission is what every job admitted costs the
// server's memory of its tenant's last admission (admitAndRecord): its
// result TTL and cap on windows remembered, nearly always the same as
// the last job's.
func BenchmarkRememberAdmission(b *testing.B) {
	var s Server
	tenant := string([]byte("acme")) // a claim's, made at run time
	ttl := int64(24 * time.Hour / time.Second)
	b.ReportAllocs()
	for b.Loop() {
		remember(&s.tenantTTL, tenant, ttl)
		remember(&s.tenantWindows, tenant, 16)
	}
}
