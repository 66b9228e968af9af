package ingest

import (
	"net/http"
	"sync"
)

// exportRetryAfterS is the Retry-After of an export refused for its
// tenant's cap: exports run for minutes, so a client need not hurry.
const exportRetryAfterS = 5

// exportLimit is the number of concurrent exports a tenant may run: its own
// cap (0: none) under the server's ceiling.
func exportLimit(tenantCap, ceiling int) int {
	if tenantCap > 0 && tenantCap < ceiling {
		return tenantCap
	}
	return ceiling
}

// exportSlots counts the running exports of each tenant on this instance.
// Memory is bounded by the tenants exporting now: a tenant's entry goes
// when its last export ends.
type exportSlots struct {
	mu      sync.Mutex
	running map[string]int
}

// acquire takes one of tenant's limit slots; false when all are taken.
func (e *exportSlots) acquire(tenant string, limit int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running == nil {
		e.running = map[string]int{}
	}
	if e.running[tenant] >= limit {
		return false
	}
	e.running[tenant]++
	return true
}

func (e *exportSlots) release(tenant string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[tenant] <= 1 {
		delete(e.running, tenant)
		return
	}
	e.running[tenant]--
}

// exportSlot takes a slot for an export of the gate's tenant, or answers
// 429 too_many_exports with Retry-After. Call release when the export ends.
func (s *Server) exportSlot(r *http.Request, tenant string) (release func(), aerr *apiError) {
	limit := exportLimit(subjectOf(r).adm.MaxExports, s.cfg.MaxExportsPerTenant)
	if !s.exports.acquire(tenant, limit) {
		s.ins.exportsRefused.Add(r.Context(), 1)
		e := errorf(http.StatusTooManyRequests, "too_many_exports",
			"tenant %s already runs %d result exports here, its limit; end one (or let it finish) before starting another", tenant, limit)
		e.RetryAfterS = exportRetryAfterS
		return nil, e
	}
	s.ins.exportsActive.Add(r.Context(), 1)
	return func() {
		s.exports.release(tenant)
		s.ins.exportsActive.Add(r.Context(), -1)
	}, nil
}
