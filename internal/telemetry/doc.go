// Package telemetry sets up what every jetinfer binary reports about itself:
// structured JSON logs with slog; OpenTelemetry metrics exported in the
// Prometheus text format from a registry owned by the process (no global
// registries); an OpenTelemetry tracer provider; the W3C trace context carried
// in NATS message headers; and the small HTTP server that answers /healthz,
// /readyz and /metrics.
//
// The domain packages (ingest, worker) define their own instruments on the
// metric.Meter and trace.Tracer they are given; this package knows nothing
// of jobs, only of processes, HTTP and headers.
//
// A trace follows a job across processes: the HTTP middleware starts a server
// span whose parent is the request's traceparent, ingest injects that span's
// context into the job message's headers (HeaderCarrier), and the worker
// extracts it to parent a span per job and to link the batch span to every
// job it holds.
package telemetry
