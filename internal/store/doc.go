// Package store is jetinfer's Redis result store: one hash per job, keyed by
// tenant and job id so that no tenant can address another's job, moved through
// its statuses by small Lua scripts that make every transition atomic and every
// final state the only one a job ever reaches (the first final write wins, so a
// redelivered job cannot produce a second, different result).
//
// One client type serves every Redis deployment (connect.go): ParseURL
// reads a --redis-url whose scheme picks one node, a Sentinel-managed master
// or a Redis Cluster, and every package takes go-redis's UniversalClient.
// Every script's keys carry the tenant as a hash tag, so each runs in one
// Cluster slot.
//
// Workers batch their writes: a batch of 32 jobs costs one round trip to start
// and one to finish.
package store

// # Backfill documents
//
// A backfill of a million documents must not leave a million job records in
// Redis, so backfill documents have none (backfill.go). Their results go to
// the RESULTS stream; Redis keeps the backfill's counters in one hash and a
// mark per document: a one-byte value (q submitted; s, f, d, c final) under a
// 48-bit field in one of 65,536 bucket hashes chosen by 16 more bits of the
// document id's SHA-256. Buckets stay small enough for Redis's compact
// listpack encoding up to about 8 million documents: a million marks took
// 23.4 MB of Redis used_memory, buckets included (about 24 bytes a document,
// against about 1 KB for a job record with its result). They expire with the
// backfill (DocTTL). The marks give, without a record per document:
//
//   - processed once: ingest marks a document when JetStream confirms it and
//     skips ids already marked, so a re-sent id is a no-op for as long as the
//     backfill lives, not only within JetStream's 20-minute duplicate window;
//   - first final wins, counted once: the finish script counts a document
//     only when it turns its mark final, so a redelivery never counts twice.
//
// Two distinct ids whose 64-bit fingerprints collide (odds about 3e-8 for a
// million documents) would be taken for one: the second is reported as a
// duplicate. That is the price of the bounded memory.
//
// Identical texts under the same model version and options reuse a cached
// result (ReuseKey, kept ReuseTTL) instead of running the model.
