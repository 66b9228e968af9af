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
// The TestChaosCluster scenarios run the same system on a real 3-node NATS
// cluster (testenv.Cluster, the nats/cluster configurations) with R3
// streams: the JOBS stream's leader SIGKILLed under synchronous calls and
// under a backfill, a rolling restart of the three nodes, and a node that
// comes back with its store wiped. Synchronous calls must be answered or
// get 503 with Retry-After, and each backfill document must have exactly
// one result.
//
// TestChaosFleet runs all of it together: two ingest instances, two worker
// processes, the 3-node cluster and Redis under Sentinel, under sync calls,
// async jobs and a backfill through both instances, and breaks one of each
// in turn (an ingest stopped and started, a worker SIGKILLed, the JOBS
// leader SIGKILLed, the Redis master SIGKILLed). Synchronous answers must
// come back on the inbox of the instance they were sent to.
//
// `go test ./internal/chaos` runs a short form of every scenario (a few
// hundred jobs, one or two faults each); `make chaos` sets JETINFER_CHAOS=full
// for more jobs and more rounds. Each scenario logs a line with the jobs
// sent, the jobs accounted for, and the duplicates seen.
//
// The package has no production code.
package chaos
