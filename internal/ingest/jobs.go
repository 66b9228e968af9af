package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Task    string      `json:"task"`
	Input   job.Input   `json:"input"`
	Lane    job.Lane    `json:"lane,omitempty"`
	Options job.Options `json:"options,omitzero"`
	// CallbackURL, when set, must be the exact URL of one of the tenant's
	// registered webhook endpoints; the job's final state is pushed there.
	CallbackURL string `json:"callback_url,omitempty"`
}

// InferRequest is the body of POST /v1/infer/{task}.
type InferRequest struct {
	Text string `json:"text"`
	// TextPair makes the input a pair (see job.Input).
	TextPair string      `json:"text_pair,omitempty"`
	Options  job.Options `json:"options,omitzero"`
}

// newJobID returns a random job id, or one derived from the tenant's
// Idempotency-Key so that a retried request names the same job (and
// JetStream de-duplicates its message).
func newJobID(tenant, idemKey string) string {
	var b [16]byte
	if idemKey == "" {
		_, _ = rand.Read(b[:])
	} else {
		h := sha256.Sum256([]byte("idem\x00" + tenant + "\x00" + idemKey))
		copy(b[:], h[:16])
	}
	return job.IDEncoding.EncodeToString(b[:])
}

func requestHash(j *job.Job) string {
	h := sha256.New()
	opts, _ := json.Marshal(j.Options)
	text := j.Input.Text
	if j.Input.TextPair != "" || len(j.Input.Documents) > 0 {
		in, _ := json.Marshal(j.Input)
		text = string(in)
	}
	for _, s := range []string{j.Task, string(j.Lane), text, string(opts)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, id := range j.Input.Tokens {
		h.Write(strconv.AppendInt(nil, id, 10))
		h.Write([]byte{','})
	}
	if j.Webhook != "" {
		// Only when set, so that the digests of jobs without one stay as
		// they were.
		h.Write([]byte(j.Webhook))
	}
	return job.IDEncoding.EncodeToString(h.Sum(nil))
}

// validate checks a job before anything is enqueued.
func (s *Server) validate(c *auth.Claims, j *job.Job) *apiError {
	if j.Task == "" {
		return fieldError("task", "task is required")
	}
	info, ok := s.catalog.Lookup(j.Task)
	if !ok || !job.ValidTaskName(j.Task) {
		var tasks []string
		for _, m := range s.catalog.Models() {
			tasks = append(tasks, m.Task)
		}
		e := fieldError("task", "unknown task %q", j.Task)
		e.Code, e.Tasks = "unknown_task", tasks
		return e
	}
	if !c.AllowsTask(j.Task) {
		return errorf(http.StatusForbidden, "task_not_allowed", "token does not allow task %q", j.Task)
	}
	if j.Lane == "" {
		j.Lane = job.LaneInteractive
	}
	if !j.Lane.Requestable() {
		return fieldError("lane", "lane must be %q or %q", job.LaneInteractive, job.LaneBulk)
	}
	text, aerr := validateText("input.text", j.Input.Text, s.cfg.MaxTextBytes, j.Options.Truncate)
	j.Input.Text = text
	if aerr != nil {
		return aerr
	}
	return checkPairs(info.Kind, j, s.cfg.MaxTextBytes, j.Backfill == "")
}

// validateText checks a document's text. A text over max bytes is refused
// with 413, or, when truncate is set, cut at the last UTF-8 boundary within
// max bytes; the text to use is returned.
func validateText(field, text string, max int, truncate bool) (string, *apiError) {
	if len(text) > max && truncate {
		text = truncateUTF8(text, max)
	}
	return text, checkText(field, text, max)
}

// truncateUTF8 cuts s to at most max bytes without splitting a character.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func checkText(field, text string, max int) *apiError {
	switch {
	case text == "":
		return fieldError(field, "%s must not be empty", field)
	case len(text) > max:
		e := fieldError(field, "%s is %d bytes, more than the limit of %d; set options.truncate to cut it", field, len(text), max)
		e.Status, e.Code = http.StatusRequestEntityTooLarge, "text_too_long"
		return e
	case !utf8.ValidString(text):
		return fieldError(field, "%s is not valid UTF-8", field)
	case strings.TrimSpace(text) == "":
		return fieldError(field, "%s is only white space", field)
	}
	return nil
}

func validateOptions(o job.Options) *apiError {
	if o.TopK < 0 {
		return fieldError("options.top_k", "top_k must not be negative")
	}
	switch o.Aggregation {
	case "", "simple", "first", "average", "max", "none":
	default:
		return fieldError("options.aggregation", "aggregation must be \"simple\", \"first\", \"average\", \"max\" or \"none\"")
	}
	if e := o.CheckLong(); e != nil {
		return fieldError(e.Field, "%s", e.Msg)
	}
	return nil
}

// waitFor reads ?wait= (a Go duration or seconds) or Prefer: wait=N.
func (s *Server) waitFor(r *http.Request) (time.Duration, *apiError) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		for _, p := range strings.Split(r.Header.Get("Prefer"), ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "wait") {
				v = val
			}
		}
	}
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, fieldError("wait", "wait must be a duration like 5s or a number of seconds")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, fieldError("wait", "wait must not be negative")
	}
	return min(d, s.cfg.MaxWait), nil
}

func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	wait, aerr := s.waitFor(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	var req SubmitRequest
	j, created, aerr := s.accept(w, r, &req, func() *job.Job {
		return &job.Job{Task: req.Task, Input: req.Input, Lane: req.Lane, Options: req.Options}
	})
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	// Queued whether or not a worker serves the task (a ?wait= is waited
	// out and answers 202), with a warning when none does.
	warning := s.noWorkersWarning(r, j.Task)
	rec, final, aerr := s.enqueue(r, j, created, wait)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	if wait > 0 {
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait.Seconds())))
	}
	status := http.StatusAccepted
	if final {
		status = http.StatusOK
	}
	if warning != "" && rec.rec != nil {
		warn(w, warning)
		writeJSON(w, status, warnedRecord{Record: rec.rec, Warnings: []string{warning}})
		return
	}
	writeRecord(w, status, rec)
}

// warnedRecord is a job record answered with warnings (no worker serves
// its task, say).
type warnedRecord struct {
	*job.Record
	Warnings []string `json:"warnings"`
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	wait, aerr := s.waitFor(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if wait == 0 {
		wait = s.cfg.InferWait
	}
	var req InferRequest
	j, created, aerr := s.accept(w, r, &req, func() *job.Job {
		return &job.Job{Task: r.PathValue("task"), Input: job.Input{Text: req.Text, TextPair: req.TextPair}, Lane: job.LaneInteractive, Options: req.Options}
	})
	if aerr != nil {
		if aerr.Field == "input.text" || aerr.Field == "input.text_pair" {
			aerr.Field = strings.TrimPrefix(aerr.Field, "input.")
			aerr.Message = strings.ReplaceAll(aerr.Message, "input.", "")
		}
		writeError(w, aerr)
		return
	}
	rec, final, aerr := s.enqueueSync(r, j, created, wait)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	if !final {
		e := errorf(http.StatusGatewayTimeout, "timeout", "no result within %s; the job goes on, poll its Location", wait)
		e.JobID = j.ID
		writeError(w, e)
		return
	}
	status := http.StatusOK
	if rec.status() != job.StatusSucceeded {
		status = http.StatusUnprocessableEntity
	}
	writeRecord(w, status, rec)
}

// accept authenticates, admits, decodes and validates a job request.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, dst any, build func() *job.Job) (*job.Job, *recorded, *apiError) {
	key, body, aerr := s.intake(w, r, dst)
	if aerr != nil {
		return nil, nil, aerr
	}
	callbackURL := ""
	if cb, ok := dst.(callbacker); ok {
		callbackURL = cb.callback()
	}
	return s.acceptJob(w, r, key, body, build(), callbackURL)
}

// acceptJob is accept once the body is decoded into the job j; callbackURL
// is the request's callback_url, or empty.
func (s *Server) acceptJob(w http.ResponseWriter, r *http.Request, key string, body *countingReader, j *job.Job, callbackURL string) (*job.Job, *recorded, *apiError) {
	c, _ := auth.FromContext(r.Context())
	j.Tenant = c.Tenant
	noteAudit(r, func(a *auditRecord) { a.task = j.Task })
	if aerr := s.validate(c, j); aerr != nil {
		return nil, nil, aerr
	}
	if aerr := validateOptions(j.Options); aerr != nil {
		return nil, nil, aerr
	}
	if aerr := s.resolveCallback(r, j, callbackURL); aerr != nil {
		return nil, nil, aerr
	}
	j.ID = newJobID(c.Tenant, key)
	j.Created = time.Now().UTC()
	noteAudit(r, func(a *auditRecord) { a.jobID = j.ID })
	rec, aerr := s.admitAndRecord(w, r, c, j, body.n)
	if aerr != nil {
		return nil, nil, aerr
	}
	return j, rec, nil
}

// intake does what every submission does before it validates: it refuses
// while the instance drains, reads the Idempotency-Key, and decodes the body
// into dst strictly. Decoding and validation come before admission, so that
// only a valid request counts against the tenant's quota. The server's
// limit bounds what is read; a tenant's own, lower limit is applied once
// admission names it (admitBody), from the count the returned reader kept.
func (s *Server) intake(w http.ResponseWriter, r *http.Request, dst any) (key string, body *countingReader, aerr *apiError) {
	if s.draining.Load() {
		e := errorf(http.StatusServiceUnavailable, "draining", "this ingest instance is shutting down; retry")
		e.RetryAfterS = 1
		return "", nil, e
	}
	key = r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		return "", nil, fieldError("Idempotency-Key", "Idempotency-Key is longer than 255 bytes")
	}
	body = &countingReader{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)}
	if aerr := decodeStrict(body, dst); aerr != nil {
		return "", nil, aerr
	}
	return key, body, nil
}

// admitBody admits a request of docs documents whose body was bodyBytes
// long, against the tenant's quota, rate limit and body limit.
func (s *Server) admitBody(w http.ResponseWriter, r *http.Request, c *auth.Claims, docs, bodyBytes int64) (Admission, *apiError) {
	adm, aerr := s.admitRequest(w, r, c, docs)
	if aerr == nil && adm.MaxBodyBytes > 0 && bodyBytes > adm.MaxBodyBytes {
		aerr = bodyError(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", adm.MaxBodyBytes)
	}
	return adm, aerr
}

// recorded is the result store's answer to recording a job, and the digest
// of the request it was compared with.
type recorded struct {
	store.Created
	hash string
}

// admitAndRecord admits the request and records its job as queued, in one
// round trip's time where it can: once the tenant's result TTL is known from
// an earlier admission, both go out side by side, since a synchronous call
// waits for each. A refused request's new record is removed again, so a
// refusal leaves nothing behind.
func (s *Server) admitAndRecord(w http.ResponseWriter, r *http.Request, c *auth.Claims, j *job.Job, bodyBytes int64) (*recorded, *apiError) {
	// The digest is of the request as sent, before the tenant's caps, so a
	// retry stays the same request when the tenant's settings change.
	rec := &recorded{hash: requestHash(j)}
	var cerr error
	create := func() {
		sctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
		defer cancel()
		rec.Created, cerr = s.recs.Create(sctx, j, rec.hash)
	}
	var done chan struct{}
	if ttl, ok := s.tenantTTL.Load(c.Tenant); ok {
		j.ResultTTLSeconds = ttl.(int64)
		if w, ok := s.tenantWindows.Load(c.Tenant); ok {
			capWindows(&j.Options, w.(int))
		}
		done = make(chan struct{})
		go func() { defer close(done); create() }()
	}
	adm, aerr := s.admitBody(w, r, c, jobCost(j), bodyBytes)
	if aerr == nil || adm.Allowed {
		// The admission named the tenant's TTL: remember it for the
		// next request, and use it now if the record is yet to be made.
		ttl := int64(adm.ResultTTL / time.Second)
		remember(&s.tenantTTL, c.Tenant, ttl)
		remember(&s.tenantWindows, c.Tenant, adm.MaxWindows)
		if done == nil {
			j.ResultTTLSeconds = ttl
		}
		// The job published is the one that runs: it takes this
		// admission's cap even when the record was made with an older one.
		capWindows(&j.Options, adm.MaxWindows)
	}
	if done != nil {
		<-done
		if aerr != nil {
			if cerr == nil && rec.New {
				s.abandon(r.Context(), j)
			}
			return nil, aerr
		}
	} else {
		if aerr != nil {
			return nil, aerr
		}
		create()
	}
	if cerr != nil {
		return nil, s.unavailable(r, "result store", cerr)
	}
	return rec, nil
}

func (s *Server) admitRequest(w http.ResponseWriter, r *http.Request, c *auth.Claims, docs int64) (Admission, *apiError) {
	if s.admit == nil {
		return Admission{Allowed: true}, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	adm, err := s.admit.Admit(ctx, c.Tenant, c.ID, docs)
	if err != nil {
		s.log.WarnContext(r.Context(), "admission failed", "tenant", c.Tenant, "error", err)
		e := errorf(http.StatusServiceUnavailable, "unavailable", "tenant store unavailable; retry")
		e.RetryAfterS = 1
		return adm, e
	}
	for k, v := range adm.Headers {
		w.Header()[k] = v
	}
	if !adm.Allowed {
		e := errorf(adm.Status, adm.Code, "%s", adm.Message)
		if adm.RetryAfter > 0 {
			e.RetryAfterS = int(math.Ceil(adm.RetryAfter.Seconds()))
		}
		return adm, e
	}
	return adm, nil
}

// wireRecord is a record on the wire: decoded from a worker's reply or the
// store, written to the client unchanged.
type wireRecord struct {
	raw json.RawMessage
	rec *job.Record
}

func (w wireRecord) status() job.Status {
	if w.rec != nil {
		return w.rec.Status
	}
	var v struct {
		Status job.Status `json:"status"`
	}
	_ = json.Unmarshal(w.raw, &v)
	return v.Status
}

func writeRecord(w http.ResponseWriter, status int, rec wireRecord) {
	if rec.raw != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(rec.raw)
		_, _ = w.Write([]byte("\n"))
		return
	}
	writeJSON(w, status, rec.rec)
}

// enqueue records and publishes j and, when wait > 0, waits for its result
// on a reply subject. It reports whether the record it returns is final.
func (s *Server) enqueue(r *http.Request, j *job.Job, created *recorded, wait time.Duration) (wireRecord, bool, *apiError) {
	ctx := r.Context()
	if !created.New && created.ReqHash != created.hash {
		return wireRecord{}, false, errorf(http.StatusConflict, "idempotency_conflict",
			"Idempotency-Key was used for a different request")
	}
	// A queued record may be all that is left of an earlier attempt that
	// failed before its publish went through (the store's answer was lost
	// in a Redis crash, or Redis was gone when the attempt tried to forget
	// the record): publish again rather than answer 202 for a job that is
	// in no queue. JetStream drops the copy by its message id if the first
	// publish was stored.
	if !created.New && created.Status != job.StatusQueued {
		rec, err := s.recs.Get(ctx, j.Tenant, j.ID)
		if err != nil {
			return wireRecord{}, false, s.unavailable(r, "result store", err)
		}
		return wireRecord{rec: rec}, rec.Status.Final(), nil
	}
	var reply string
	var results <-chan job.Reply
	if wait > 0 {
		var done func()
		reply, results, done = s.replies.Register(j.ID)
		defer done()
	}
	dup, err := s.publish(r, j, reply)
	if err != nil {
		// Nothing was enqueued: forget the record so that a retry with the
		// same Idempotency-Key starts afresh.
		s.abandon(ctx, j)
		if errors.Is(err, job.ErrFull) {
			e := errorf(http.StatusServiceUnavailable, "queue_full", "the job queue is full; retry later")
			e.RetryAfterS = 5
			return wireRecord{}, false, e
		}
		return wireRecord{}, false, s.unavailable(r, "job queue", err)
	}
	queued := job.RecordOf(j, job.StatusQueued)
	if dup && !created.New {
		// The job was enqueued by the earlier request, whose reply subject
		// its result goes to: answer with what the store knows now.
		if rec, err := s.recs.Get(ctx, j.Tenant, j.ID); err == nil {
			return wireRecord{rec: rec}, rec.Status.Final(), nil
		}
		return wireRecord{rec: queued}, false, nil
	}
	if wait == 0 {
		return wireRecord{rec: queued}, false, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case rep := <-results:
		s.traceReply(ctx, rep)
		return wireRecord{raw: rep.Data}, true, nil
	case <-t.C:
	case <-ctx.Done():
	}
	rec, err := s.recs.Get(context.WithoutCancel(ctx), j.Tenant, j.ID)
	if err != nil {
		return wireRecord{rec: queued}, false, nil
	}
	return wireRecord{rec: rec}, rec.Status.Final(), nil
}

// enqueueSync is enqueue for a synchronous call, whose only answer is the
// result: a new job is refused at once, and its record forgotten, when no
// live worker serves its task or the task's breaker is open
// (syncRefused), and the call's outcome is told to the breaker. A retried
// request (the job exists already) goes straight on to its answer.
func (s *Server) enqueueSync(r *http.Request, j *job.Job, created *recorded, wait time.Duration) (rec wireRecord, final bool, aerr *apiError) {
	if !created.New {
		return s.enqueue(r, j, created, wait)
	}
	report, waited, aerr := s.syncRefused(r, j.Task, wait)
	if aerr != nil {
		s.abandon(r.Context(), j)
		return wireRecord{}, false, aerr
	}
	defer func() {
		judged := outcomeNeutral // the caller went away, or the queue refused the job
		if aerr == nil && r.Context().Err() == nil {
			judged = outcomeOf(rec, final, wait >= s.cfg.InferWait)
		}
		report(judged)
	}()
	return s.enqueue(r, j, created, max(wait-waited, time.Millisecond))
}

// abandon forgets the record of job j, which was not enqueued, so that a
// retry with the same Idempotency-Key starts afresh.
func (s *Server) abandon(ctx context.Context, j *job.Job) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	_ = s.recs.Abandon(actx, j.Tenant, j.ID)
}

// unavailable answers 503 for a dependency that failed. An outage fails
// every request (every job of a batch) at once, so it is logged at most once
// a second per dependency, with the number of failures the line stands for.
func (s *Server) unavailable(r *http.Request, what string, err error) *apiError {
	v, _ := s.outages.LoadOrStore(what, new(outageLog))
	if n, ok := v.(*outageLog).note(time.Now()); ok {
		s.log.WarnContext(r.Context(), what+" unavailable", "error", err, "failures", n)
	}
	e := errorf(http.StatusServiceUnavailable, "unavailable", "%s unavailable; retry", what)
	e.RetryAfterS = 1
	return e
}

// outageLog spaces out the log lines of one dependency's failures.
type outageLog struct {
	last   atomic.Int64 // unix nanoseconds of the last line
	failed atomic.Int64 // failures since the last line
}

// note counts a failure at now and reports whether to log a line, with the
// failures it stands for.
func (o *outageLog) note(now time.Time) (int64, bool) {
	o.failed.Add(1)
	last := o.last.Load()
	if now.UnixNano()-last < int64(time.Second) || !o.last.CompareAndSwap(last, now.UnixNano()) {
		return 0, false
	}
	return o.failed.Swap(0), true
}

// traceHeaders carries the W3C trace context of the request into the job.
func traceHeaders(r *http.Request) map[string][]string {
	tp := r.Header.Get("Traceparent")
	if tp == "" {
		return nil
	}
	h := map[string][]string{"traceparent": {tp}}
	if ts := r.Header.Get("Tracestate"); ts != "" {
		h["tracestate"] = []string{ts}
	}
	return h
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, subjectOf(r).rec)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	st, err := s.recs.Cancel(ctx, c.Tenant, id, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errorf(http.StatusNotFound, "not_found", "no job %q", id))
		return
	}
	if err != nil {
		writeError(w, s.unavailable(r, "result store", err))
		return
	}
	if st != job.StatusCanceled {
		writeError(w, errorf(http.StatusConflict, "not_cancelable", "job %s is %s and can no longer be canceled", id, st))
		return
	}
	rec, err := s.recs.Get(ctx, c.Tenant, id)
	if err != nil {
		writeJSON(w, http.StatusOK, &job.Record{ID: id, Status: st})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
