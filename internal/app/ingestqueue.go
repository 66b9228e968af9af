package app

import (
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// The queue client is what ingest's interfaces describe; ingest itself
// does not import internal/queue.
var (
	_ ingest.Publisher      = (*queue.Client)(nil)
	_ ingest.BatchPublisher = (*queue.Client)(nil)
	_ ingest.ResultReader   = (*queue.Client)(nil)
	_ ingest.DeadLetters    = (*queue.Client)(nil)
	_ ingest.Replies        = (*queue.Replies)(nil)
	_ ingest.Backlogs       = (*queue.Client)(nil)
)
