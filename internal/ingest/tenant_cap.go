package ingest

import (
	"sync"

	"github.com/jetinfer/jetinfer/internal/job"
)

// capWindows lowers o.MaxWindows to a tenant's cap on the windows of one
// document (tenantCap 0: the tenant sets none). A request may ask for fewer
// windows than its tenant allows, never more; asking for none (0, the
// model's cap) counts as asking for more. The worker still applies the
// model's own cap, so a job ends at the smallest of the three.
func capWindows(o *job.Options, tenantCap int) {
	if tenantCap <= 0 {
		return
	}
	if o.MaxWindows == 0 || o.MaxWindows > tenantCap {
		o.MaxWindows = tenantCap
	}
}

// remember keeps v as what tenant's last admission said in m (the
// server's tenantTTL or tenantWindows), for the tenant's next request. It
// stores only a change: a store allocates, and nearly every admission says
// what the last one did.
func remember[V comparable](m *sync.Map, tenant string, v V) {
	if old, ok := m.Load(tenant); ok {
		if prev, ok := old.(V); ok && prev == v {
			return
		}
	}
	m.Store(tenant, v)
}
