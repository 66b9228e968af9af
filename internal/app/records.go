package app

import (
	"context"

	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// coalescedRecords is the result store as ingest uses it, with Create
// coalesced across concurrent requests (one pipeline per batch of requests
// instead of one round trip each).
type coalescedRecords struct {
	*store.Store
	creator *store.Creator
}

var _ ingest.Records = coalescedRecords{}

// Create implements ingest.Records.
func (r coalescedRecords) Create(ctx context.Context, j *job.Job, reqHash string) (store.Created, error) {
	return r.creator.Create(ctx, j, reqHash)
}
