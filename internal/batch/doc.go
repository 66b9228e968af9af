// Package batch is jetinfer's batching and lane-scheduling policy: given the
// jobs a worker has pulled for one task, each already tokenized, it decides
// how far a batch grows, when it yields to interactive work, and which jobs
// share one model call. It does no I/O, starts no goroutines and reads no
// clock: callers pass the current time, so every rule is tested with plain
// values.
//
// Lanes shares one model between the interactive lane and the bulk lanes.
// Each of its rules is a method (InteractiveAbout, InteractiveRecent,
// Limit, Cut, PauseFor, GrowWhileWaiting, OnInteractive, Overflow), taking
// the batch being formed as a Shape and the time; the worker's collect loop
// only waits on channels and acts on the answers. Cost learns a model's
// cost per padded token and per row from its calls, so that bulk batches
// can be held to a latency budget while interactive traffic is recent.
//
// A Policy bounds one model call by rows (MaxSize) and by padded tokens
// (MaxTokens: rows × longest row, because a batch is padded to its longest
// row). A Planner cuts a window of items into calls under it: it orders
// items by class first, so bulk (backfill) items never run before
// interactive ones, then by length within a class, so that each call holds
// similar lengths; then it cuts that order into contiguous calls, choosing
// the cuts that minimise padded tokens plus a fixed cost per call
// (BatchOverhead). The last interactive call may be topped up with bulk
// items: interactive items are sorted longest first and bulk items shortest
// first, so the two meet at similar lengths. Planning a window of 128 news
// documents (DefaultWindowBatches calls) this way keeps padding under 10%,
// against about 48% in arrival order.
//
// Fair shares a lane between tenants by deficit round robin: given the
// tenants with work waiting (their weights, and the cost of each one's next
// document), it picks whose document goes next, so that over any stretch
// each gets its weight's share, a lone tenant gets everything and none
// starves.
//
// PaddingRatio measures one batch's padding, for the worker's metrics.
package batch
