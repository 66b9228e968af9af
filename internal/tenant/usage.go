package tenant

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Usage is a tenant's use of its daily quota.
type Usage struct {
	// DailyQuota is the tenant's documents per UTC day; 0 means unlimited.
	DailyQuota int64
	// Used counts the documents admitted on the current UTC day. Only a
	// tenant with a quota is counted: it is 0 for an unlimited one.
	Used int64
	// Reset is when the day's count starts again (the next UTC midnight).
	Reset time.Time
}

// Usage reads tenantID's quota and what it has used on now's UTC day, in one
// round trip. It fails with ErrNotFound when the tenant does not exist.
func (s *Store) Usage(ctx context.Context, tenantID string, now time.Time) (Usage, error) {
	if !ValidID(tenantID) {
		return Usage{}, ErrNotFound
	}
	p := s.rdb.Pipeline()
	cfg := p.HMGet(ctx, hashKey(tenantID), "enabled", "daily_quota")
	used := p.Get(ctx, quotaKey(tenantID, now))
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Usage{}, fmt.Errorf("usage of %s: %w", tenantID, err)
	}
	vals := cfg.Val()
	if len(vals) != 2 || vals[0] == nil {
		return Usage{}, ErrNotFound
	}
	u := Usage{Reset: nextUTCDay(now)}
	if q, ok := vals[1].(string); ok && q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil {
			return Usage{}, fmt.Errorf("usage of %s: daily_quota %q: %w", tenantID, q, err)
		}
		u.DailyQuota = n
	}
	if v, err := used.Int64(); err == nil {
		u.Used = v
	}
	return u, nil
}
