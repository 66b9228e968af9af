// Package backfill runs bulk backfills of news archives: a backfill's
// lifecycle and counters in Redis, the streaming NDJSON and CSV readers that
// turn an upload into documents with line numbers and bounded memory, and
// the progress maths (rate and ETA).
//
// # Lifecycle
//
// A backfill is created open for one task and options; documents are
// streamed into it (POST .../documents, any number of times); sealing it
// says no more will come, and it completes when every submitted document
// is final. Canceling it makes workers skip its remaining documents
// cheaply (one script call in the batch's start round trip) and count them
// canceled, so pending drains to zero either way.
//
// # Exactly once, with bounded memory
//
// Backfill documents have no job record. Two structures per backfill hold
// what "processed once" and "counted once" need (the layout and its memory
// cost are in package store's doc): a hash of counters, and a one-byte mark
// per document under a 64-bit fingerprint of its id.
//
// Submitting a chunk of documents takes three steps: Known drops ids the
// backfill has already (the re-sent chunk after an interruption), the rest
// are published to JetStream with the message id <backfill>:<doc id> (which
// also drops a copy published within the 20-minute duplicate window, as
// after an ingest crash between publishing and marking), and Mark records
// the confirmed ones, counting each new mark as submitted. A worker that
// finishes a document before ingest has marked it counts it submitted
// itself; Mark then finds the mark and does not count it again. So
// submitted counts each document id once, for the life of the backfill,
// beyond JetStream's window.
//
// A worker publishes a document's result to results.<backfill id>, where
// the RESULTS stream keeps it (de-duplicated by message id), and only then
// turns the mark final and bumps one counter, in one script: the first
// final state wins, a redelivery finds the mark final and counts nothing.
// Counting from the RESULTS stream instead would need a reader per backfill
// and a second source of truth; the mark costs about 24 bytes a document
// and expires with the backfill.
//
// # Reuse
//
// Wire stories repeat across archives. Before running the model a worker
// looks up each backfill document in a reuse cache keyed by task, model
// version, options and a hash of the text (one round trip per batch); a hit
// is answered at once and counted in reused. Successful results are cached
// as they are stored.
//
// # Results
//
// The export reads results.<backfill id> with an ordered consumer and
// writes one line per document: {"id","status","result"} (and "error").
// Copies (a result published again after the 20-minute duplicate window)
// are dropped by a 64-bit fingerprint of the document id, which costs the
// exporting ingest about 40 bytes a document while the export runs. A
// worker publishes a result before it counts the document final, so once
// the backfill is completed every result is stored: the export ends when it
// has read up to the stream's last result for the backfill. Canceled
// documents have no result line.
package backfill
