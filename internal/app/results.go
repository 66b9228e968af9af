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
// the same shares (tenant records, when the deployment has them; without,
// every tenant has the default share).
func resultShares(rdb redis.UniversalClient, st *store.Store, q *queue.Client, records bool) *tenant.ResultShares {
	var ts *tenant.Store
	if records {
		ts = tenant.NewStore(rdb)
	}
	return tenant.NewResultShares(ts, st.ResultsUsage, func(ctx context.Context) (int64, error) {
		u, err := q.StreamUsage(ctx, job.StreamResults)
		return u.MaxBytes, err
	})
}
