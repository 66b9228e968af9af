package app

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// resultShares tells each tenant's use of RESULTS against its share, for
// ingest (which refuses a tenant over its share) and workers (which hold
// its backfill documents): both read the same account (the store's) and
// the same shares, from tenant records where they exist (a tenant without
// one has the default share), whether or not ingest admits requests
// against them (--tenants): ingest and workers must agree.
func resultShares(rdb redis.UniversalClient, st *store.Store, q *queue.Client) *tenant.ResultShares {
	return tenant.NewResultShares(tenant.NewStore(rdb), st.ResultsUsage, func(ctx context.Context) (int64, error) {
		u, err := q.StreamUsage(ctx, job.StreamResults)
		return u.MaxBytes, err
	})
}
