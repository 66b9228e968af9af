// Package bench measures jetinfer as a whole on one machine, in one process
// tree: raw in-process model throughput, end-to-end bulk throughput through
// HTTP → JetStream → worker → results on the same model and thread budget,
// synchronous call latency minus the model's own batch-1 time, and ingest's
// acceptance rate with auth and quota while no worker consumes.
//
// It has no production code: the harness is TestBench, which runs only when
// the test binary is given -jetinfer.bench (make bench does). It prints a
// table, writes BENCHMARKS.md at the repository root, and ends with three
// machine-readable lines:
//
//	e2e/raw throughput ratio: 0.97
//	sync p50 overhead ms: 0.8
//	ingest jobs/s: 21000
package bench
