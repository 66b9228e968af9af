// Package ingest is jetinfer's HTTP API: it authenticates a request, admits it
// against its tenant's limits, validates it strictly, records the job and
// publishes it, and, for synchronous calls, waits for the result on a reply
// subject of this process.
//
// # The gate
//
// Every /v1 route passes, in order:
//
//   - JWT verification (internal/auth): a missing or refused token is 401;
//   - the route's scope: a valid token without it is 403 insufficient_scope;
//   - tenant admission (Admitter, one Redis round trip): an unknown or
//     disabled tenant is 403, a revoked jti 401, an exhausted daily quota or
//     rate limit 429 with Retry-After and RateLimit-* headers. Submissions
//     are decoded and validated first (within the server's body limit) and
//     admitted after, so that only a valid job counts against the quota; a
//     tenant's own body limit can only lower the server's, and is applied
//     once admission names it;
//   - strict decoding: the body is size-limited (413 body_too_large), must be
//     valid UTF-8 (encoding/json would silently replace invalid bytes) and
//     one JSON object with no unknown fields and no wrong types (400);
//   - validation before anything is recorded or enqueued: a known task
//     (400 unknown_task listing the served tasks), one the token allows (403
//     task_not_allowed), a valid lane and options, and a non-empty text
//     within the byte limit (413 text_too_long, or cut on a UTF-8 boundary
//     when options.truncate is set).
//
// # The route table
//
// Every route is one entry of the table in routes.go (Server.Routes lists
// it), and declares, besides its pattern and scope, its admission (AdmitFirst:
// the gate admits it before the handler runs, costing Cost documents;
// AdmitAfterDecode: the handler decodes and validates first, then admits
// through the same admitRequest; AdmitPublic: no token, outside /v1 only) and
// how it names the task it touches (TaskSource: none, the {task} path
// parameter, the body, or the job, backfill or dead letter {id}, which the
// gate loads and hands to the handler). One gate wraps every authenticated
// route: token, scope, admission, then the task against the token's tasks
// claim (403 task_not_allowed). A route that declares no admission or no task
// source makes New panic, and the tests of internal/app send every route of
// the table the refused requests, so a new route is one line in the table
// and cannot skip the gate. The table holds the OpenAI-compatible surface
// (its refusals in OpenAI's shape; an OpenAI model, file or batch names its
// task too) and the console's files; nothing is registered beside it.
//
// Audit wraps the API for the audit log: one line per /v1, /v2 and
// /openai/v1 request, filled by the gate and the handlers (tenant, subject,
// token id, route pattern, task, job or backfill id) and by the wrapper
// (status, bytes, latency, the client through trusted proxies only), never
// with request text. Result exports hold one of their tenant's export slots
// while they stream (429 too_many_exports beyond it).
//
// Every error is {"error":{"code","message",...}}; a 400 or 413 names the
// field at fault ("body" for the body as a whole). Another tenant's job or
// backfill is a 404, like one that does not exist.
//
// Submissions are idempotent under Idempotency-Key: the key names the job,
// so the same key and body answer the same job, and another body under the
// same key is 409. A full JOBS stream is 503 queue_full with Retry-After; the
// job's record is removed again, so nothing is left behind and a retry with
// the same key starts afresh. DELETE /v1/jobs/{id} cancels a queued job (a
// worker then skips it); a running or finished one is 409.
//
// # The fleet
//
// Members, the workers' membership registry, tells which tasks a live
// worker serves. A synchronous call of a task none serves answers 503
// no_workers at once (or, with Config.WaitForWorkers, waits within its
// timeout for a worker to join); asynchronous jobs, batches and backfills
// are accepted with a warning. Each task's circuit breaker (Breaker, a pure
// policy given the time) answers 503 task_unavailable while the task's
// synchronous calls keep failing, lets one probe through at a time after
// Config.Breaker.OpenFor, and closes when it succeeds. A backfill's
// progress says it is stalled after Config.StallAfter without progress.
//
// The OpenAPI 3.1 document of the API, OpenAPI, is served at /openapi.json;
// the tests of internal/app validate real requests and responses against it.
//
// It depends only on the small interfaces it defines (Publisher, Records,
// Replies, Catalog, Members, Admitter, and those of the backfill and dead-letter
// routes); internal/app wires the real NATS and Redis adapters into them.
package ingest
