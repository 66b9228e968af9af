// Package worker runs jetinfer's pull → batch → infer → deliver → ack loop.
//
// For each model it serves, a worker pulls from three lanes and fills each
// batch from the interactive lane first, so that bulk work never starves
// interactive traffic; the bulk and backfill lanes it serves alike, so that a
// backfill of millions of documents does not hold up the bulk jobs queued
// after it. Within the bulk lane and within the backfill lane, tenants share
// the worker: when the queue is a TenantQueue, each tenant's jobs wait on a
// consumer of their own, and the lane's Puller (fairPuller, fair.go) pulls
// from every tenant with work and hands their messages out in the order the
// deficit round robin of batch.Fair picks, so a tenant's small backfill is
// not stuck behind another's archive. It finds tenants from the queue's
// hints and a periodic scan (Config.TenantScan) and lets go of a tenant with
// nothing queued. Documents are tokenized as
// they arrive, so the batch's token budget is known before the model runs; the
// batch then goes through three stages that overlap: the next batch is being
// collected while this one runs and the previous one is delivered.
//
// A batch is offered to the model as soon as its first job has waited
// Config.BatchWait (0 by default), and goes on growing until the runner is
// free to take it: an idle model runs a lone job at once, a busy one gets a
// batch that filled while it worked. With only bulk work about, a batch may
// grow to a window of several model calls, which the batch planner cuts so
// that documents of similar length share a call and padding stays small.
//
// Interactive work also overtakes bulk work already batched. The rules for
// it are a pure policy, batch.Lanes: while interactive jobs are about (one
// arrived within the last second), bulk batches shrink to a quarter of the
// batch size, and each bulk-only batch first pauses (Config.BulkPause); an
// interactive job that arrives during the pause, or while a bulk batch
// waits for the model, goes to it on its own, and the deferred bulk batch
// runs next without pausing again, so an interactive job waits behind at
// most one small bulk batch and the backfill is slowed, never starved. An
// interactive job that arrives while a batch with interactive jobs waits
// for a busy model joins it at the front. On a small machine, where ingest,
// NATS and Redis share the CPU with the worker, a backfill at full speed
// would otherwise delay synchronous calls severalfold.
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
// A job's state has one owner: the item that carries it through the
// pipeline changes only through the transitions in state.go (finishWith,
// deadWith, retryLater, resendStored), and records are built by
// job.RecordOf. Where an outcome goes is a sink chosen once per message: a
// job's record is replied to its caller after the store holds its final
// state; a backfill document's result line goes to RESULTS before. The
// worker is done with a job in its final state in one place, ended.
//
// Errors carry instructions (package job), and job.Judge is the dead-letter
// policy: a permanent error dead-letters the job at once; a failed batch is
// split in halves and retried so one poison document cannot fail its
// neighbours; anything else is retried with backoff until MaxDeliver, after
// which the dead-letter mover takes the job.
package worker
