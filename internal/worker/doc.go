// Package worker runs jetinfer's pull → batch → infer → deliver → ack loop.
//
// For each model it serves, a worker pulls from two durable consumers, one per
// lane, and fills each batch from the interactive lane first, so that a backfill
// on the bulk lane never starves interactive traffic. Documents are tokenized as
// they arrive, so the batch's token budget is known before the model runs; the
// batch then goes through three stages that overlap: the next batch is being
// collected while this one runs and the previous one is delivered.
//
// Interactive work also overtakes bulk work already batched: while a batch
// waits for the model, an interactive job that arrives joins it at the front
// and the last bulk job moves to the next batch. And while interactive jobs
// are arriving, each bulk-only batch first pauses (Config.BulkPause), since
// on a small machine ingest, NATS and Redis share the CPU with the worker and
// a backfill at full speed would otherwise delay synchronous calls severalfold.
//
// Backfill documents have no job record: their results go to the RESULTS
// stream before their final state is counted in the backfill's counters (see
// package store), and identical texts under the same model version reuse a
// cached result instead of running the model.
//
// Delivery is at least once and results are idempotent: a job's final state is
// written to the result store first (where the first final write wins), then
// sent to its reply subject, and only then acknowledged. A worker killed
// between those steps leaves the job to be redelivered, and the redelivery
// finds the final state already there.
//
// Errors carry instructions (package job): a permanent error dead-letters the
// job at once; a failed batch is split in halves and retried so one poison
// document cannot fail its neighbours; anything else is retried with backoff
// until MaxDeliver, after which the dead-letter mover takes the job.
package worker
