package tenant

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/coalesce"
)

// benchTenant has every check armed (quota, rate limit, revocation) but
// limits too high to refuse.
func benchSetup(b *testing.B) (*Store, string) {
	b.Helper()
	s, _ := newStore(b)
	mustCreate(b, s, Tenant{ID: "bench", Enabled: true, DailyQuota: 1 << 50, RatePerSec: 1e6, Burst: 1e6})
	jti, _ := auth.NewJTI("bench")
	return s, jti
}

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkAdmit is one caller, one round trip per admission.
func BenchmarkAdmit(b *testing.B) {
	s, jti := benchSetup(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := s.Admit(ctx, "bench", jti, 1, time.Now())
		if err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
	reportOps(b)
}

// BenchmarkAdmitParallelUncoalesced is many callers of Store.Admit: a round
// trip each, as ingest would do without an Admitter.
func BenchmarkAdmitParallelUncoalesced(b *testing.B) {
	s, jti := benchSetup(b)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			d, err := s.Admit(ctx, "bench", jti, 1, time.Now())
			if err != nil || !d.Allowed {
				b.Error(d, err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkAdmitParallel is many callers (as many as concurrent HTTP
// requests) sharing an Admitter.
func BenchmarkAdmitParallel(b *testing.B) {
	s, jti := benchSetup(b)
	a := NewAdmitter(s, coalesce.Options{})
	defer a.Close()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			d, err := a.Admit(ctx, "bench", jti, 1, time.Now())
			if err != nil || !d.Allowed {
				b.Error(d, err)
				return
			}
		}
	})
	reportOps(b)
}
