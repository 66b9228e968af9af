// Package telemetry sets up what every jetinfer binary reports about itself:
// structured JSON logs with slog, and the small HTTP server that answers
// /healthz, /readyz and /metrics.
package telemetry
