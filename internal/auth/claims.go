package auth

import (
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes a token can carry in its space-separated scope claim.
const (
	// ScopeJobsWrite allows submitting jobs (POST /v1/jobs, /v1/infer) and
	// canceling them.
	ScopeJobsWrite = "jobs:write"
	// ScopeJobsRead allows reading jobs and the served models.
	ScopeJobsRead = "jobs:read"
	// ScopeBackfillsWrite allows creating, feeding, sealing and canceling
	// backfills.
	ScopeBackfillsWrite = "backfills:write"
	// ScopeDLQAdmin allows listing and replaying the tenant's dead letters.
	ScopeDLQAdmin = "dlq:admin"
	// ScopeWebhooksAdmin allows registering, listing, rotating and deleting
	// the tenant's webhook endpoints.
	ScopeWebhooksAdmin = "webhooks:admin"
)

// Scopes lists every scope jetinfer knows, in a stable order.
var Scopes = []string{ScopeJobsWrite, ScopeJobsRead, ScopeBackfillsWrite, ScopeDLQAdmin, ScopeWebhooksAdmin}

// Claims are the claims of a jetinfer token.
type Claims struct {
	jwt.RegisteredClaims
	// Tenant is the tenant the token acts for (claim "tid"); required.
	Tenant string `json:"tid"`
	// Scope is the space-separated list of granted scopes (claim "scope").
	Scope string `json:"scope"`
	// Tasks, when not empty, lists the only task names the token may use
	// (claim "tasks").
	Tasks []string `json:"tasks,omitempty"`
}

// HasScope reports whether s is one of the space-separated scopes in c.Scope.
// It does not allocate.
func (c *Claims) HasScope(s string) bool {
	if s == "" {
		return false
	}
	rest := c.Scope
	for rest != "" {
		var f string
		f, rest, _ = strings.Cut(rest, " ")
		if f == s {
			return true
		}
	}
	return false
}

// AllowsTask reports whether the token may use task: true when Tasks is empty
// (every task) or lists task.
func (c *Claims) AllowsTask(task string) bool {
	return len(c.Tasks) == 0 || slices.Contains(c.Tasks, task)
}
