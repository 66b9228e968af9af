package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
)

// DeadLetters is the DLQ as the admin API uses it.
type DeadLetters interface {
	ListDead(ctx context.Context, tenant string, after uint64, limit int) (job.DeadPage, error)
	FindDead(ctx context.Context, tenant, id string) (*job.DeadEntry, error)
	DeadJob(ctx context.Context, e *job.DeadEntry) (*job.Job, error)
	Replay(ctx context.Context, e *job.DeadEntry, j *job.Job) error
	// ReplayWebhook queues a dead webhook event for delivery again.
	ReplayWebhook(ctx context.Context, e *job.DeadEntry) error
}

// DeadRecords is what a replay needs of the result store.
type DeadRecords interface {
	// Requeue resets a dead job's record to queued; ok is false, with the
	// job's status, when it is not dead.
	Requeue(ctx context.Context, j *job.Job) (prev job.Status, ok bool, err error)
	// MarkDead puts the record back when the replay could not be published.
	MarkDead(ctx context.Context, j *job.Job, e *job.Error, attempts int, now time.Time) (job.Status, error)
}

// dlqTimeout bounds the DLQ lookups and the publish of one replay.
const dlqTimeout = 15 * time.Second

// maxDLQPage caps ?limit= on GET /v1/dlq.
const maxDLQPage = 500

// listDLQ answers GET /v1/dlq?after=<cursor>&limit=<n> with the tenant's
// dead letters, oldest first: {"dead_letters":[...],"next":<cursor>}.
func (s *Server) listDLQ(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if s.dlq == nil {
		writeError(w, errorf(http.StatusNotImplemented, "not_implemented", "this ingest has no DLQ access"))
		return
	}
	q := r.URL.Query()
	after, aerr := queryUint(q, "after", 0, 0, maxCursor, "after must be the next cursor of a previous page")
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	limit, aerr := queryUint(q, "limit", 100, 1, maxDLQPage, fmt.Sprintf("limit must be 1..%d", maxDLQPage))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	page, err := s.dlq.ListDead(ctx, c.Tenant, after, int(limit))
	if err != nil {
		writeError(w, s.unavailable(r, "dead-letter queue", err))
		return
	}
	// A token limited to some tasks sees only their dead letters; the
	// cursor still moves past the others.
	page.Entries = slices.DeleteFunc(page.Entries, func(e job.DeadEntry) bool { return !c.AllowsTask(e.Task) })
	writeJSON(w, http.StatusOK, page)
}

// replayDLQ answers POST /v1/dlq/{id}/replay: the job goes back to JOBS
// under a fresh message id, its record says queued again, and its dead
// letter is removed. 202 with the record; 404 when the tenant has no such
// dead letter; 409 when the job is not dead (a replay under way).
func (s *Server) replayDLQ(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if s.dlq == nil || s.deadRecs == nil {
		writeError(w, errorf(http.StatusNotImplemented, "not_implemented", "this ingest has no DLQ access"))
		return
	}
	if s.draining.Load() {
		e := errorf(http.StatusServiceUnavailable, "draining", "this ingest instance is shutting down; retry")
		e.RetryAfterS = 1
		writeError(w, e)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), dlqTimeout)
	defer cancel()
	sub := subjectOf(r)
	e, j := sub.dead, sub.dj
	if e.Kind == job.DeadKindWebhook {
		s.replayWebhook(ctx, w, r, e)
		return
	}
	if j.Backfill != "" {
		// A backfill document is counted by its backfill, not kept as a job
		// record: replaying it here would count it twice.
		writeError(w, errorf(http.StatusConflict, "backfill_document",
			"job %s is document %q of backfill %s; backfill documents are not replayed one by one", id, j.DocID, j.Backfill))
		return
	}
	// The record goes back to queued before the job is published, so that
	// a worker fast enough to finish it first finds a state it may change.
	prev, ok, err := s.deadRecs.Requeue(ctx, j)
	if err != nil {
		writeError(w, s.unavailable(r, "result store", err))
		return
	}
	if !ok {
		writeError(w, errorf(http.StatusConflict, "not_dead", "job %s is %s, not dead; it may be replaying already", id, prev))
		return
	}
	switch err := s.dlq.Replay(ctx, e, j); {
	case errors.Is(err, job.ErrDeadLetterKept):
		// The job is queued: marking it dead would hide a job a worker is
		// about to run. The stale letter stays listed; replaying it again
		// is refused (not_dead) while the job lives.
		s.log.WarnContext(r.Context(), "dead letter replayed but not deleted", "tenant", c.Tenant, "job_id", id, "dlq_seq", e.Seq, "error", err)
		s.ins.dlqKept.Add(r.Context(), 1)
	case err != nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
		_, _ = s.deadRecs.MarkDead(actx, j, &job.Error{Code: e.Code, Message: e.Reason}, e.Attempts, time.Now())
		cancel()
		writeError(w, s.unavailable(r, "job queue", err))
		return
	default:
		s.log.InfoContext(r.Context(), "dead letter replayed", "tenant", c.Tenant, "job_id", id, "dlq_seq", e.Seq)
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, job.RecordOf(j, job.StatusQueued))
}

// replayWebhook replays the dead letter of an undeliverable webhook event:
// 202 with the event's ids; the receiver sees the same webhook-id again.
func (s *Server) replayWebhook(ctx context.Context, w http.ResponseWriter, r *http.Request, e *job.DeadEntry) {
	err := s.dlq.ReplayWebhook(ctx, e)
	if errors.Is(err, job.ErrDeadNotFound) {
		writeError(w, errorf(http.StatusNotFound, "not_found", "no dead letter for webhook %q", e.WebhookID))
		return
	}
	if err != nil {
		writeError(w, s.unavailable(r, "dead-letter queue", err))
		return
	}
	s.log.InfoContext(r.Context(), "webhook dead letter replayed", "tenant", e.Tenant, "webhook_id", e.WebhookID, "dlq_seq", e.Seq)
	writeJSON(w, http.StatusAccepted, map[string]string{"kind": job.DeadKindWebhook, "webhook_id": e.WebhookID,
		"job_id": e.JobID, "endpoint": e.Endpoint, "status": "queued"})
}
