package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reasons a Decision refuses a request.
const (
	// ReasonUnknownTenant means no tenant has the token's tid.
	ReasonUnknownTenant = "unknown_tenant"
	// ReasonTenantDisabled means the tenant exists but is disabled.
	ReasonTenantDisabled = "tenant_disabled"
	// ReasonTokenRevoked means the token's jti was revoked.
	ReasonTokenRevoked = "token_revoked"
	// ReasonQuotaExceeded means the documents do not fit in what is left of
	// the day's quota. A request with more documents than the whole quota
	// (docs > Decision.Limit) will never fit.
	ReasonQuotaExceeded = "quota_exceeded"
	// ReasonRateLimited means the tenant's request rate limit is exhausted.
	ReasonRateLimited = "rate_limited"
)

// Decision is the answer of Admit.
type Decision struct {
	// Allowed is true when the request may proceed; its documents are then
	// counted against the quota.
	Allowed bool
	// Reason says why a request was refused (one of the Reason constants);
	// empty when allowed.
	Reason string
	// RetryAfter is when a refused request may succeed if retried: until the
	// next UTC day for quota_exceeded, until the rate limiter has room for
	// rate_limited; 0 for refusals that waiting does not cure.
	RetryAfter time.Duration
	// Limit, Remaining and Reset describe the limit closest to exhaustion
	// after this decision: the daily quota (documents left, time to the next
	// UTC day) or the rate limit (burst, requests that could come at once
	// now, time until the limiter is fully rested). Limit is 0 when the
	// tenant has neither.
	Limit, Remaining int64
	// Reset is when Remaining returns to Limit; see Limit.
	Reset time.Duration
	// MaxBodyBytes is the tenant's body limit; 0 means ingest's default.
	MaxBodyBytes int64
	// ResultTTL is the tenant's result TTL; 0 means the store's default.
	ResultTTL time.Duration
	// MaxWindows is the tenant's cap on the windows of one document; 0
	// means none.
	MaxWindows int
	// MaxExports is the tenant's cap on its concurrent result exports; 0
	// means the server's ceiling.
	MaxExports int
}

// SetHeaders writes the draft IETF RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset headers (when the tenant has a limit) and, on a refusal
// with a RetryAfter, Retry-After; seconds are rounded up.
func (d Decision) SetHeaders(h http.Header) {
	if d.Limit > 0 {
		h.Set("RateLimit-Limit", strconv.FormatInt(d.Limit, 10))
		h.Set("RateLimit-Remaining", strconv.FormatInt(max(d.Remaining, 0), 10))
		h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	}
	if !d.Allowed && d.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(ceilSeconds(d.RetryAfter), 10))
	}
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// admitScript does every check of Admit in one call.
//
// KEYS: 1 tenant hash, 2 revoked jti, 3 day's quota counter, 4 GCRA state.
// ARGV: 1 documents, 2 now (µs since the epoch), 3 quota key TTL (ms),
// 4 "1" to check the jti.
// Returns {code, quota used, rate remaining, rate reset µs, retry µs,
// max_body_bytes, result_ttl_ms, daily_quota, burst, max_windows, max_exports}; code 0 allowed,
// 1 unknown tenant, 2 disabled, 3 revoked, 4 quota, 5 rate.
var admitScript = redis.NewScript(`
local cfg = redis.call('HMGET', KEYS[1], 'enabled', 'daily_quota', 'rate_per_sec', 'burst', 'max_body_bytes', 'result_ttl_ms', 'max_windows', 'max_exports')
if not cfg[1] then return {1} end
local maxb = tonumber(cfg[5]) or 0
local ttl = tonumber(cfg[6]) or 0
local quota = tonumber(cfg[2]) or 0
local rate = tonumber(cfg[3]) or 0
local burst = tonumber(cfg[4]) or 0
local maxw = tonumber(cfg[7]) or 0
local maxe = tonumber(cfg[8]) or 0
if burst < 1 then burst = 1 end
if rate <= 0 then burst = 0 end
if cfg[1] ~= '1' then return {2, 0, 0, 0, 0, maxb, ttl, quota, burst, maxw, maxe} end
local docs = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if ARGV[4] == '1' then
  local until_us = redis.call('GET', KEYS[2])
  if until_us and tonumber(until_us) > now then return {3, 0, 0, 0, 0, maxb, ttl, quota, burst, maxw, maxe} end
end
local used = 0
if quota > 0 then
  used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used + docs > quota then return {4, used, 0, 0, 0, maxb, ttl, quota, burst, maxw, maxe} end
end
local remaining, reset = 0, 0
if rate > 0 then
  local interval = 1000000 / rate
  local tat = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local diff = now - (new_tat - burst * interval)
  if diff < 0 then
    return {5, used, 0, math.ceil(tat - now), math.ceil(-diff), maxb, ttl, quota, burst, maxw, maxe}
  end
  remaining = math.floor(diff / interval)
  reset = math.ceil(new_tat - now)
  redis.call('SET', KEYS[4], string.format('%.0f', math.ceil(new_tat)), 'PX', math.ceil(reset / 1000) + 1000)
end
if quota > 0 and docs > 0 then
  used = redis.call('INCRBY', KEYS[3], docs)
  if used == docs then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
end
return {0, used, remaining, reset, 0, maxb, ttl, quota, burst, maxw, maxe}
`)

// admitArgs are the keys and arguments of one admission.
type admitArgs struct {
	keys []string
	args []any
	now  time.Time
}

// quotaKeyTTL keeps a day's counter a day past the day's end, so ingest
// instances whose clocks straddle midnight still share it.
const quotaKeyTTL = 48 * time.Hour

func newAdmitArgs(tenantID, jti string, docs int64, now time.Time) admitArgs {
	checkJTI := "1"
	if jti == "" {
		checkJTI = "0"
	}
	return admitArgs{
		keys: []string{hashKey(tenantID), revokedKey(tenantID, jti), quotaKey(tenantID, now), gcraKey(tenantID)},
		args: []any{docs, now.UnixMicro(), quotaKeyTTL.Milliseconds(), checkJTI},
		now:  now,
	}
}

// precheck answers what needs no Redis: malformed input.
func precheck(tenantID, jti string, docs int64) (Decision, bool, error) {
	if docs < 0 {
		return Decision{}, true, fmt.Errorf("admit: %w: negative document count %d", ErrInvalid, docs)
	}
	if !ValidID(tenantID) {
		return Decision{Reason: ReasonUnknownTenant}, true, nil
	}
	if len(jti) > 256 {
		return Decision{Reason: ReasonTokenRevoked}, true, nil
	}
	return Decision{}, false, nil
}

// Admit decides whether tenantID's request, made with the token jti ("" if
// the token has none) and carrying docs documents, may proceed at now. It
// costs one Redis round trip; an allowed request's documents are counted
// against the quota and its request against the rate limit, a refused one
// changes nothing.
func (s *Store) Admit(ctx context.Context, tenantID, jti string, docs int64, now time.Time) (Decision, error) {
	if d, done, err := precheck(tenantID, jti, docs); done {
		return d, err
	}
	a := newAdmitArgs(tenantID, jti, docs, now)
	res, err := admitScript.Run(ctx, s.rdb, a.keys, a.args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("admit %s: %w", tenantID, err)
	}
	return decide(res, now)
}

// decide turns the script's reply into a Decision.
func decide(r []int64, now time.Time) (Decision, error) {
	if len(r) == 1 && r[0] == 1 {
		return Decision{Reason: ReasonUnknownTenant}, nil
	}
	if len(r) != 11 {
		return Decision{}, fmt.Errorf("admit: unexpected script reply %v", r)
	}
	code, used, rateRem, rateReset, retry := r[0], r[1], r[2], r[3], r[4]
	quota, burst := r[7], r[8]
	d := Decision{MaxBodyBytes: r[5], ResultTTL: time.Duration(r[6]) * time.Millisecond, MaxWindows: int(r[9]), MaxExports: int(r[10])}
	us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
	toMidnight := nextUTCDay(now).Sub(now)
	switch code {
	case 0:
		d.Allowed = true
		quotaRem := quota - used
		switch {
		case quota > 0 && (burst == 0 || quotaRem <= rateRem):
			d.Limit, d.Remaining, d.Reset = quota, quotaRem, toMidnight
		case burst > 0:
			d.Limit, d.Remaining, d.Reset = burst, rateRem, us(rateReset)
		}
	case 2:
		d.Reason = ReasonTenantDisabled
	case 3:
		d.Reason = ReasonTokenRevoked
	case 4:
		d.Reason = ReasonQuotaExceeded
		d.RetryAfter = toMidnight
		d.Limit, d.Remaining, d.Reset = quota, max(quota-used, 0), toMidnight
	case 5:
		d.Reason = ReasonRateLimited
		d.RetryAfter = us(retry)
		d.Limit, d.Remaining, d.Reset = burst, 0, us(rateReset)
	default:
		return Decision{}, fmt.Errorf("admit: unexpected script code %d", code)
	}
	return d, nil
}

func nextUTCDay(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// isNoScript reports whether err says the script is not in Redis's cache
// (after a restart or SCRIPT FLUSH).
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
