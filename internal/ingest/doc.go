// Package ingest is jetinfer's HTTP API: it authenticates a request, admits it
// against its tenant's limits, validates it strictly, records the job and
// publishes it, and, for synchronous calls, waits for the result on a reply
// subject of this process.
//
// It depends only on the small interfaces it defines (Publisher, Records,
// Replies, Catalog, Admitter); cmd/ingest wires the real NATS and Redis
// adapters into them.
package ingest
