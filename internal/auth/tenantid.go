package auth

import (
	"errors"
	"regexp"
)

// ErrInvalidTenant means the token's tid claim is not a well-formed tenant
// id (see ValidTenantID).
var ErrInvalidTenant = errors.New("token tid claim is not a valid tenant id")

// tenantIDPattern is what a tenant id may look like: no braces (they would
// break the cluster hash tag of the tenant's keys), no dots (NewJTI uses
// one as separator), no colons (key separators). It lives here, not in
// package tenant, because Verify must refuse a malformed tid before the id
// reaches a Redis key, a metric label or a log line; tenant.ValidID is
// this same rule.
var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidTenantID reports whether id can name a tenant: 1 to 63 characters
// of lowercase letters, digits, '-' and '_', starting with a letter or
// digit.
func ValidTenantID(id string) bool { return tenantIDPattern.MatchString(id) }
