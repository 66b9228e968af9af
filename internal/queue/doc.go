// Package queue is jetinfer's only JetStream adapter. It owns the topology (the
// JOBS work-queue stream, the RESULTS and DLQ streams, one durable pull consumer
// per lane × task, and on the shared lanes, bulk and backfill, one per lane ×
// task × tenant with work, created on demand and removed by the server once
// idle), publishing jobs with de-duplication ids (and hints that a tenant has
// work), pulling them for workers, and acknowledging them. Its key-value
// buckets are the catalog of served tasks (jetinfer-models, outliving the
// workers) and the membership registry (jetinfer-members: one entry per live
// worker, expiring by per-message TTL unless heartbeats renew it; see
// Membership).
//
// Callers see job.Job values and a small Msg type; nothing outside this package
// needs to import nats.go's jetstream package.
package queue
