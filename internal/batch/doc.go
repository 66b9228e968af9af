// Package batch is jetinfer's dynamic batching policy: given the jobs a
// worker has pulled for one task, each already tokenized, it decides which
// of them run together in one model call, and when. It does no I/O, starts
// no goroutines and reads no clock, so every rule is tested with plain
// values.
//
// A Policy bounds a batch by rows (MaxSize) and by padded tokens
// (MaxTokens: rows × longest row, because a batch is padded to its longest
// row), says how long the first item may wait for company (MaxWait), and
// how many items are planned together (Window).
//
// A Collector holds the waiting items. The worker adds each message with
// its token length and Class (Interactive or Bulk) and the current time,
// arms a timer at Collector.Deadline, and flushes when Collector.Ready says
// so: the window is full, or its oldest item has waited MaxWait.
//
// Flushing runs a Planner over the window. The Planner orders items by
// class first, so bulk (backfill) items never run before interactive ones,
// then by length within a class, so that each batch holds similar lengths;
// then it cuts that order into contiguous batches, choosing the cuts that
// minimise padded tokens plus a fixed cost per batch (BatchOverhead). The
// last interactive batch may be topped up with bulk items: interactive
// items are sorted longest first and bulk items shortest first, so the two
// meet at similar lengths. Planning a window of 128 news documents this way
// keeps padding under 10%, against about 48% in arrival order.
//
// PaddingRatio measures one batch's padding, for the worker's metrics.
package batch
