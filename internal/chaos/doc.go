// Package chaos holds jetinfer's fault-injection suite: tests that run the
// real system — embedded nats-server with a file store, a real redis-server
// with an append-only file, ingest, and worker binaries as separate OS
// processes — send streams of real jobs, break something for real (SIGKILL a
// worker mid-batch, SIGTERM one, restart nats-server or redis-server on the
// same data, SIGKILL the Redis master under Sentinel during sync load and
// during a backfill, publish duplicates, inject poison documents, run a
// model slower than AckWait) and then check the reliability promise: every accepted job
// reaches exactly one final state, with its result.
//
// `go test ./internal/chaos` runs a short form of every scenario (a few
// hundred jobs, one or two faults each); `make chaos` sets JETINFER_CHAOS=full
// for more jobs and more rounds. Each scenario logs a line with the jobs
// sent, the jobs accounted for, and the duplicates seen.
//
// The package has no production code.
package chaos
