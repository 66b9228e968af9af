package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// tenantAdmitter is what tenantAdmission needs from internal/tenant: a
// *tenant.Admitter (coalescing) or a *tenant.Store (one call per request).
type tenantAdmitter interface {
	Admit(ctx context.Context, tenantID, jti string, docs int64, now time.Time) (tenant.Decision, error)
}

var (
	_ tenantAdmitter  = (*tenant.Admitter)(nil)
	_ tenantAdmitter  = (*tenant.Store)(nil)
	_ ingest.Admitter = tenantAdmission{}
)

// tenantAdmission adapts tenant decisions to ingest admissions: it maps each
// refusal reason to the status a client sees and turns the decision's limits
// into RateLimit-* and Retry-After headers.
type tenantAdmission struct {
	a   tenantAdmitter
	now func() time.Time
}

// Admit implements ingest.Admitter.
func (t tenantAdmission) Admit(ctx context.Context, tenantID, jti string, docs int64) (ingest.Admission, error) {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	d, err := t.a.Admit(ctx, tenantID, jti, docs, now())
	if err != nil {
		return ingest.Admission{}, err
	}
	return admission(tenantID, d), nil
}

// admission maps a tenant decision to an ingest admission.
func admission(tenantID string, d tenant.Decision) ingest.Admission {
	h := http.Header{}
	d.SetHeaders(h)
	a := ingest.Admission{
		Allowed:      d.Allowed,
		Headers:      h,
		MaxBodyBytes: d.MaxBodyBytes,
		ResultTTL:    d.ResultTTL,
		MaxWindows:   d.MaxWindows,
		MaxExports:   d.MaxExports,
		RetryAfter:   d.RetryAfter,
	}
	if d.Allowed {
		return a
	}
	a.Code = d.Reason
	switch d.Reason {
	case tenant.ReasonUnknownTenant:
		// The token is genuine but names no tenant: valid credentials
		// without the right to act, hence 403 rather than 401.
		a.Status, a.Message = http.StatusForbidden, fmt.Sprintf("tenant %q is not known", tenantID)
	case tenant.ReasonTenantDisabled:
		a.Status, a.Message = http.StatusForbidden, fmt.Sprintf("tenant %q is disabled", tenantID)
	case tenant.ReasonTokenRevoked:
		a.Status, a.Message = http.StatusUnauthorized, "the token was revoked"
		h.Set("WWW-Authenticate", `Bearer realm="jetinfer", error="invalid_token"`)
	case tenant.ReasonQuotaExceeded:
		a.Status = http.StatusTooManyRequests
		a.Message = fmt.Sprintf("daily quota of %d documents is used up (%d left)", d.Limit, d.Remaining)
	case tenant.ReasonRateLimited:
		a.Status = http.StatusTooManyRequests
		a.Message = fmt.Sprintf("rate limit exceeded (burst %d); retry after the Retry-After delay", d.Limit)
	default:
		a.Status, a.Code, a.Message = http.StatusForbidden, "forbidden", "request refused: "+d.Reason
	}
	return a
}
