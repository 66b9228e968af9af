// Package webhook pushes the results of finished jobs to endpoints that
// tenants register, signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com), so that receivers verify them with an
// existing library.
//
// The parts, each usable alone:
//
//   - Registry keeps each tenant's endpoints and signing secrets in Redis
//     (at most MaxEndpoints a tenant). A job names an endpoint by its exact
//     URL; ingest resolves it to the endpoint id the job carries, so a
//     request can never make the fleet call an address nobody registered.
//   - Targets is the address filter: which URLs may be registered and which
//     resolved addresses may be dialled. Loopback, private, link-local and
//     other internal ranges are refused unless the deployment allows them,
//     since ingest and workers sit inside a cluster. The check runs again on
//     the address each connection is about to use (DNS rebinding).
//   - Publisher turns a finished job into an event on the WEBHOOKS stream
//     (one subject per tenant and endpoint). It runs where the worker stores
//     a job's final state; a full stream drops the event rather than hold
//     up inference (the result stays readable by polling).
//   - Deliverer consumes WEBHOOKS with its own durable consumer and POSTs
//     each event, with a bounded number of requests per endpoint and a
//     timeout on each, so that a slow or dead receiver holds only its own
//     events. Failed attempts are retried through JetStream redelivery on
//     the RetryPolicy's schedule (hours by default); an event that keeps
//     failing, or whose endpoint refuses it for good, is dead-lettered with
//     the reason and can be replayed like a dead job.
//
// A webhook's id (webhook-id) is derived from its job, so every retry,
// redelivery and replay of one job's event carries the same id and a
// receiver de-duplicates by it.
//
// Backfills that name an endpoint get backfill.completed once when they
// end and, optionally, backfill.progress every N results
// (PublishBackfill). Which call queues each is decided in Redis, by the
// script that counts a document (package store) or by the claim of a seal
// or cancel that ended the backfill (package backfill); the event's id is
// derived from the backfill, and it is delivered like a job's.
package webhook
