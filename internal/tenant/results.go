package tenant

import (
	"context"
	"sync"
	"time"
)

// ResultsBudget is the share of the RESULTS stream's max bytes that
// backfill results may fill: at it, ingest refuses every tenant's backfill
// documents (the documents already queued still need room for their
// results). Tenants' shares are shares of this budget.
const ResultsBudget = 0.9

// DefaultResultsShare is the share of the RESULTS budget a tenant may fill
// with unexported results when its record sets no ResultsMaxBytes (or it
// has no record): half, so that no tenant alone, by not exporting, stops
// the others' backfills. A tenant's ResultsMaxBytes replaces it, up to or
// even past the whole budget (the budget still stops everyone at 90%).
//
// Why a cap and not the tenant's weight's share among the tenants holding
// results: a cap is a number a tenant can plan its export cadence
// against, and it does not shrink under a running backfill because
// another tenant started one. Weight keeps deciding throughput (the fair
// puller); the cap decides space.
const DefaultResultsShare = 0.5

// ResultsUse is a tenant's use of RESULTS against its share.
type ResultsUse struct {
	// Used is the bytes of unexported backfill results the tenant holds.
	Used int64
	// Share is the most it may hold: its record's ResultsMaxBytes, or
	// DefaultResultsShare of the budget. 0 (no cap set and RESULTS without
	// a byte limit) means none, and Over is false.
	Share int64
}

// Over reports whether the tenant holds its share or more: its backfill
// documents are refused by ingest and held by workers until its exports
// purge results.
func (u ResultsUse) Over() bool { return u.Share > 0 && u.Used >= u.Share }

// ResultShares tells each tenant's use of the RESULTS stream against its
// share, caching each answer for a second (ingest asks per upload, workers
// per batch of backfill results). It is safe for concurrent use; what it
// caches is bounded (tenants not asked about for a while are forgotten).
type ResultShares struct {
	records  *Store
	usage    func(ctx context.Context, tenant string) (int64, error)
	maxBytes func(ctx context.Context) (int64, error)
	ttl      time.Duration

	mu      sync.Mutex
	cache   map[string]cachedUse
	max     int64
	maxAt   time.Time
	maxOnce bool
}

type cachedUse struct {
	use ResultsUse
	at  time.Time
}

// maxBytesTTL is how long the RESULTS limit is cached: it changes only
// when an operator changes the stream.
const maxBytesTTL = 30 * time.Second

// maxCached bounds the tenants a ResultShares remembers.
const maxCached = 4096

// NewResultShares tells tenants' RESULTS shares from their records
// (records may be nil: every tenant has the default share), usage (the
// store's RESULTS account, store.Store.ResultsUsage) and maxBytes (the
// RESULTS stream's byte limit, 0 for none).
func NewResultShares(records *Store, usage func(ctx context.Context, tenant string) (int64, error),
	maxBytes func(ctx context.Context) (int64, error)) *ResultShares {
	return &ResultShares{records: records, usage: usage, maxBytes: maxBytes, ttl: time.Second, cache: map[string]cachedUse{}}
}

// WithTTL sets how long an answer is cached (tests use a short one).
func (r *ResultShares) WithTTL(d time.Duration) *ResultShares {
	r.ttl = d
	return r
}

// Use returns tenant's use of RESULTS and its share. An error leaves the
// caller to admit: the publish itself tells whether RESULTS has room.
func (r *ResultShares) Use(ctx context.Context, tenant string) (ResultsUse, error) {
	now := time.Now()
	r.mu.Lock()
	if c, ok := r.cache[tenant]; ok && now.Sub(c.at) < r.ttl {
		r.mu.Unlock()
		return c.use, nil
	}
	limit, fresh := r.max, r.maxOnce && now.Sub(r.maxAt) < maxBytesTTL
	r.mu.Unlock()
	if !fresh {
		m, err := r.maxBytes(ctx)
		if err != nil {
			return ResultsUse{}, err
		}
		limit = m
		r.mu.Lock()
		r.max, r.maxAt, r.maxOnce = m, now, true
		r.mu.Unlock()
	}
	used, err := r.usage(ctx, tenant)
	if err != nil {
		return ResultsUse{}, err
	}
	u := ResultsUse{Used: used}
	u.Share = int64(ResultsBudget * DefaultResultsShare * float64(limit))
	if r.records != nil {
		if t, err := r.records.Get(ctx, tenant); err == nil && t.ResultsMaxBytes > 0 {
			u.Share = t.ResultsMaxBytes
		}
	}
	r.mu.Lock()
	if len(r.cache) >= maxCached {
		for k, c := range r.cache {
			if now.Sub(c.at) >= r.ttl {
				delete(r.cache, k)
			}
		}
	}
	if len(r.cache) < maxCached {
		r.cache[tenant] = cachedUse{use: u, at: now}
	}
	r.mu.Unlock()
	return u, nil
}

// Forget drops what is cached of tenant, so that the next Use reads the
// store: after a purge freed some of its results.
func (r *ResultShares) Forget(tenant string) {
	r.mu.Lock()
	delete(r.cache, tenant)
	r.mu.Unlock()
}
