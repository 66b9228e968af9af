package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
)

const (
	// maxBatchJobs is the most jobs one POST /v1/jobs/batch may hold.
	maxBatchJobs = 1000
	// batchConcurrency bounds the jobs of one batch being recorded and
	// published at once. The result store's and the queue's round trips are
	// shared by whatever is in flight, so this many jobs cost a few round
	// trips, not this many.
	batchConcurrency = 128
)

// BatchSubmitRequest is the body of POST /v1/jobs/batch.
type BatchSubmitRequest struct {
	Jobs []SubmitRequest `json:"jobs"`
}

// BatchItem is one job's outcome in a batch: its record, or why it is in no
// queue.
type BatchItem struct {
	Job   *job.Record `json:"job,omitempty"`
	Error *Error      `json:"error,omitempty"`
}

// BatchResponse answers POST /v1/jobs/batch: one item per submitted job, in
// order.
type BatchResponse struct {
	Accepted int         `json:"accepted"`
	Failed   int         `json:"failed"`
	Jobs     []BatchItem `json:"jobs"`
	// Warnings name the tasks of accepted jobs that no live worker serves:
	// those wait in the queue until one starts.
	Warnings []string `json:"warnings,omitempty"`
}

// submitBatch queues many fire-and-forget jobs in one request: one
// authentication and one admission (quota counts every job) for all of them,
// then each job is recorded and published as POST /v1/jobs does. Every job is
// validated before anything is admitted, and an invalid one refuses the whole
// batch, naming jobs[i]. With an Idempotency-Key, job i's id derives from the
// key and i, so a retried batch names the same jobs. When some jobs could
// not be queued (a full queue, a store outage) the answer is still 202 and
// those items carry their error; when none could, it is that error.
func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if wait, aerr := s.waitFor(r); aerr != nil || wait > 0 {
		if aerr == nil {
			aerr = fieldError("wait", "a batch is not waited on: poll its jobs, or submit one job with wait")
		}
		writeError(w, aerr)
		return
	}
	var req BatchSubmitRequest
	key, body, aerr := s.intake(w, r, &req)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	n := len(req.Jobs)
	if n == 0 || n > maxBatchJobs {
		writeError(w, fieldError("jobs", "jobs must hold 1 to %d jobs, not %d", maxBatchJobs, n))
		return
	}
	now := time.Now().UTC()
	jobs := make([]*job.Job, n)
	var hooks callbackMemo
	var cost int64 // documents of quota: model rows (see jobCost)
	for i, sr := range req.Jobs {
		j := &job.Job{Task: sr.Task, Input: sr.Input, Lane: sr.Lane, Options: sr.Options, Tenant: c.Tenant, Created: now}
		aerr := s.validate(c, j)
		if aerr == nil {
			aerr = validateOptions(j.Options)
		}
		if aerr == nil {
			aerr = hooks.resolve(s, r, j, sr.CallbackURL)
		}
		if aerr != nil {
			writeError(w, inBatch(i, aerr))
			return
		}
		ik := ""
		if key != "" {
			ik = key + "\x00" + strconv.Itoa(i)
		}
		j.ID = newJobID(c.Tenant, ik)
		jobs[i] = j
		cost += jobCost(j)
	}
	adm, aerr := s.admitBody(w, r, c, cost, body.n)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ttl := int64(adm.ResultTTL / time.Second)
	remember(&s.tenantTTL, c.Tenant, ttl)

	resp := BatchResponse{Jobs: make([]BatchItem, n)}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, batchConcurrency) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				resp.Jobs[i] = s.queueOne(r, jobs[i], ttl, adm.MaxWindows)
			}
		})
	}
	wg.Wait()
	var first *Error
	for i := range resp.Jobs {
		if e := resp.Jobs[i].Error; e != nil {
			resp.Failed++
			if first == nil {
				first = e
			}
		}
	}
	resp.Accepted = n - resp.Failed
	warned := map[string]bool{}
	for i, it := range resp.Jobs {
		if it.Error == nil && !warned[jobs[i].Task] {
			warned[jobs[i].Task] = true
			if msg := s.noWorkersWarning(r, jobs[i].Task); msg != "" {
				resp.Warnings = append(resp.Warnings, msg)
			}
		}
	}
	warn(w, resp.Warnings...)
	if resp.Accepted == 0 {
		status := http.StatusServiceUnavailable
		if first.Code == "idempotency_conflict" {
			status = http.StatusConflict
		}
		writeError(w, &apiError{Status: status, Error: *first})
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// queueOne records and publishes one job of a batch, with its windows
// capped at the tenant's maxWindows (digested as sent, before the cap).
func (s *Server) queueOne(r *http.Request, j *job.Job, ttl int64, maxWindows int) BatchItem {
	j.ResultTTLSeconds = ttl
	rec := &recorded{hash: requestHash(j)}
	capWindows(&j.Options, maxWindows)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	var err error
	rec.Created, err = s.recs.Create(ctx, j, rec.hash)
	cancel()
	if err != nil {
		return BatchItem{Error: &s.unavailable(r, "result store", err).Error}
	}
	wr, _, aerr := s.enqueue(r, j, rec, 0)
	if aerr != nil {
		return BatchItem{Error: &aerr.Error}
	}
	return BatchItem{Job: wr.rec}
}

// inBatch names job i of a batch in e.
func inBatch(i int, e *apiError) *apiError {
	at := fmt.Sprintf("jobs[%d]", i)
	if e.Field != "" {
		e.Field = at + "." + e.Field
	} else {
		e.Field = at
	}
	e.Message = at + ": " + e.Message
	return e
}
