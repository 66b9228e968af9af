package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

// Backfills is the backfill store as ingest uses it.
type Backfills interface {
	Create(ctx context.Context, b *backfill.Backfill, now time.Time) error
	Get(ctx context.Context, tenant, id string) (*backfill.Backfill, error)
	Seal(ctx context.Context, tenant, id string, now time.Time) (backfill.State, error)
	Cancel(ctx context.Context, tenant, id string, now time.Time) (backfill.State, error)
	Known(ctx context.Context, tenant, id string, docIDs []string) ([]bool, error)
	Mark(ctx context.Context, tenant, id string, docIDs []string) (int64, error)
	// ClaimEnded returns the backfill.completed event of a backfill that
	// ended and names a webhook endpoint, once: nil for every later call
	// and for a backfill whose last count claimed it in a worker.
	ClaimEnded(ctx context.Context, tenant, id string, now time.Time) (*store.BackfillEvent, error)
	// ReleaseEnded gives back a claim whose event could not be queued.
	ReleaseEnded(ctx context.Context, tenant, id string) error
}

// BackfillEvents queues backfill webhook events on the WEBHOOKS stream,
// where the fleet's deliverers send them; ingest itself calls no receiver.
type BackfillEvents interface {
	PublishBackfill(ctx context.Context, evs []store.BackfillEvent) error
}

// BatchPublisher publishes chunks of backfill documents.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, jobs []*job.Job, reply func(*job.Job) string) []job.Published
}

// ResultReader reads the results of a backfill from the RESULTS stream and
// purges those an export has stored; StreamUsage tells how full a stream is.
type ResultReader interface {
	ReadResults(ctx context.Context, backfill string, after uint64) (job.ResultStream, error)
	PurgeResults(ctx context.Context, backfill string, through uint64) error
	StreamUsage(ctx context.Context, name string) (job.Usage, error)
}

// ResultsAccount is each tenant's account of the bytes of backfill results
// it holds in RESULTS (store.Store): a purge re-derives a backfill's from
// what the stream still holds of it (ResultsHeld, the queue's count).
type ResultsAccount interface {
	ResultsLeft(ctx context.Context, tenant, backfill string, left uint64) (int64, error)
}

// ResultsHeldCounter counts what RESULTS holds of a backfill (the queue).
type ResultsHeldCounter interface {
	ResultsHeld(ctx context.Context, backfill string) (uint64, error)
}

// resultsRoom remembers, for a second, whether RESULTS as a whole has room
// for the results of more backfill documents.
type resultsRoom struct {
	mu      sync.Mutex
	checked time.Time
	full    bool
}

// resultsFullAt is the share of RESULTS at which new backfill documents are
// refused: the documents already queued still need room for their results.
const resultsFullAt = tenant.ResultsBudget

// resultsFull reports whether RESULTS is too full to take more backfill
// documents from any tenant. Workers hold the documents whose results a
// full RESULTS refuses, and their backfill lanes stop; documents admitted
// meanwhile would only fill JOBS, which every tenant's jobs share. A failed
// check admits.
func (s *Server) resultsFull(ctx context.Context) bool {
	rr := &s.resultsRoom
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if time.Since(rr.checked) < time.Second {
		return rr.full
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	u, err := s.bf.Results.StreamUsage(sctx, job.StreamResults)
	rr.checked = time.Now()
	if err != nil {
		// Asked again in a second; the publish itself will tell whether
		// JetStream is there.
		s.log.WarnContext(ctx, "RESULTS usage unknown; admitting backfill documents", "error", err)
		rr.full = false
		return false
	}
	rr.full = u.MaxBytes > 0 && float64(u.Bytes) >= resultsFullAt*float64(u.MaxBytes)
	return rr.full
}

// resultsRefusal is the one check of RESULTS room before a tenant's
// backfill documents are queued (POST /v1/backfills/{id}/documents and the
// OpenAI batch upload), nil to admit; what says why names what to do
// (how, for the route asking).
//
// The tenant's own share comes first: a tenant that holds its share of
// unexported results (tenant.ResultShares) is refused alone, with 429
// results_share_full naming its use and share, while the other tenants
// are admitted. 429, not 503: the service is there and the refusal is the
// tenant's own doing, like quota_exceeded; clients that wait out 429 and
// 503 alike (jetinferctl) wait either. The stream as a whole at
// resultsFullAt stays as the backstop, 503 results_full for everyone: the
// tenants' shares may add up to more than the budget.
func (s *Server) resultsRefusal(ctx context.Context, tenantID, how string) *apiError {
	if s.bf.Results == nil {
		return nil
	}
	if s.bf.Shares != nil {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		u, err := s.bf.Shares.Use(sctx, tenantID)
		cancel()
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "tenant's RESULTS use unknown; admitting backfill documents", "tenant", tenantID, "error", err)
		case u.Over():
			s.ins.resultsRefused(ctx, tenantID, "tenant")
			e := errorf(http.StatusTooManyRequests, "results_share_full",
				"tenant %s holds %d bytes of unexported backfill results in RESULTS, its share is %d: %s (or raise the tenant's results_max_bytes)",
				tenantID, u.Used, u.Share, how)
			e.RetryAfterS = 5
			return e
		}
	}
	if s.resultsFull(ctx) {
		s.ins.resultsRefused(ctx, tenantID, "stream")
		e := errorf(http.StatusServiceUnavailable, "results_full",
			"the RESULTS stream is %.0f%%+ full: %s (or raise --results-max-bytes)", resultsFullAt*100, how)
		e.RetryAfterS = 2
		return e
	}
	return nil
}

var _ Backfills = (*backfill.Store)(nil)

// BackfillDeps are what the /v1/backfills routes need; without them those
// routes answer 501.
type BackfillDeps struct {
	Store     Backfills
	Publisher BatchPublisher
	Results   ResultReader
	// Account keeps each tenant's RESULTS bytes; a purge re-derives it
	// (with Results' ResultsHeld). Nil keeps none.
	Account ResultsAccount
	// Shares tells a tenant's use of RESULTS against its share; nil
	// refuses only when the whole stream is full.
	Shares *tenant.ResultShares
	// List serves GET /v1/backfills; nil answers 501.
	List BackfillLister
	// Events queues the backfill.completed event of a backfill that a seal
	// or a cancel ended; nil queues none.
	Events BackfillEvents
	// Chunk is how many documents are published and marked together.
	// Defaults to 1024.
	Chunk int
	// MaxRejected bounds the rejected lines listed in one answer (all are
	// counted). Defaults to 1000.
	MaxRejected int
}

// CreateBackfillRequest is the body of POST /v1/backfills.
type CreateBackfillRequest struct {
	Task    string      `json:"task"`
	Name    string      `json:"name,omitempty"`
	Options job.Options `json:"options,omitzero"`
	// CallbackURL names one of the tenant's registered webhook endpoints
	// (exactly its URL, as for a job): it is told when the backfill ends,
	// and every ProgressEvery results when that is set.
	CallbackURL string `json:"callback_url,omitempty"`
	// ProgressEvery asks for a backfill.progress event at every multiple
	// of that many results (at least webhook.MinProgressEvery).
	ProgressEvery int64 `json:"progress_every,omitempty"`
}

// maxProgressEvery bounds progress_every (beyond it the event would never
// come for any backfill ingest can take).
const maxProgressEvery = 1 << 40

// DocumentsResponse answers POST /v1/backfills/{id}/documents.
type DocumentsResponse struct {
	// Accepted counts documents enqueued by this request.
	Accepted int64 `json:"accepted"`
	// Duplicates counts documents whose id the backfill had already.
	Duplicates int64 `json:"duplicates"`
	// Rejected lists rejected lines (at most MaxRejected of them);
	// RejectedTotal counts them all.
	Rejected      []backfill.LineError `json:"rejected"`
	RejectedTotal int64                `json:"rejected_total"`
	// NextLine, when the request stopped early (quota, full queue), is the
	// first line not processed: send the body again from there. Lines
	// before it are all accepted, duplicates or rejected.
	NextLine int64  `json:"next_line,omitempty"`
	Error    *Error `json:"error,omitempty"`
	// Warnings say that no live worker serves the backfill's task: the
	// documents wait in the queue until one starts.
	Warnings []string `json:"warnings,omitempty"`
}

// ResultLine is one line of GET /v1/backfills/{id}/results.
type ResultLine struct {
	ID     string          `json:"id"`
	Status job.Status      `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *job.Error      `json:"error,omitempty"`
	// Meta is the document's meta, as submitted.
	Meta json.RawMessage `json:"meta,omitempty"`
}

func (d BackfillDeps) withDefaults() BackfillDeps {
	if d.Chunk <= 0 {
		d.Chunk = 1024
	}
	if d.MaxRejected <= 0 {
		d.MaxRejected = 1000
	}
	return d
}

// backfillFor returns the caller's backfill {id}, which the gate loaded.
func (s *Server) backfillFor(w http.ResponseWriter, r *http.Request) (*auth.Claims, *backfill.Backfill, bool) {
	c, _ := auth.FromContext(r.Context())
	b := subjectOf(r).bf
	if b == nil {
		writeError(w, errorf(http.StatusNotFound, "not_found", "no backfill %q", r.PathValue("id")))
		return c, nil, false
	}
	return c, b, true
}

func (s *Server) createBackfill(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if s.bf.Store == nil {
		writeError(w, errorf(http.StatusNotImplemented, "not_implemented", "backfills are not served here"))
		return
	}
	adm, aerr := s.admitRequest(w, r, c, 0)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	var req CreateBackfillRequest
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if aerr := decodeStrict(r.Body, &req); aerr != nil {
		writeError(w, aerr)
		return
	}
	// Validate the task and options as those of a job with some text; its
	// Backfill marks it as one whose documents (and text_pair) come later.
	probe := &job.Job{Task: req.Task, Lane: job.LaneBulk, Input: job.Input{Text: "x"}, Options: req.Options, Backfill: "new"}
	if aerr := s.validate(c, probe); aerr != nil {
		writeError(w, aerr)
		return
	}
	if aerr := validateOptions(req.Options); aerr != nil {
		writeError(w, aerr)
		return
	}
	if len(req.Name) > 200 {
		writeError(w, fieldError("name", "name is longer than 200 bytes"))
		return
	}
	switch {
	case req.ProgressEvery != 0 && req.CallbackURL == "":
		writeError(w, fieldError("progress_every", "progress_every needs callback_url, the endpoint the progress events go to"))
		return
	case req.ProgressEvery != 0 && (req.ProgressEvery < webhook.MinProgressEvery || req.ProgressEvery > maxProgressEvery):
		writeError(w, fieldError("progress_every", "progress_every must be between %d and %d results", webhook.MinProgressEvery, int64(maxProgressEvery)))
		return
	}
	probe.Tenant = c.Tenant
	if aerr := s.resolveCallback(r, probe, req.CallbackURL); aerr != nil {
		writeError(w, aerr)
		return
	}
	capWindows(&req.Options, adm.MaxWindows)
	b := &backfill.Backfill{Tenant: c.Tenant, Task: req.Task, Name: req.Name, Options: req.Options,
		Webhook: probe.Webhook, ProgressEvery: req.ProgressEvery}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	if err := s.bf.Store.Create(ctx, b, time.Now()); err != nil {
		writeError(w, s.unavailable(r, "backfill store", err))
		return
	}
	noteAudit(r, func(a *auditRecord) { a.task, a.backfillID = b.Task, b.ID })
	w.Header().Set("Location", "/v1/backfills/"+b.ID)
	p := s.progress(b, time.Now())
	if msg := s.noWorkersWarning(r, b.Task); msg != "" {
		warn(w, msg)
		p.Warnings = []string{msg}
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) getBackfill(w http.ResponseWriter, r *http.Request) {
	if _, b, ok := s.backfillFor(w, r); ok {
		writeJSON(w, http.StatusOK, s.progress(b, time.Now()))
	}
}

func (s *Server) sealBackfill(w http.ResponseWriter, r *http.Request) {
	s.transitionBackfill(w, r, Backfills.Seal)
}

func (s *Server) cancelBackfill(w http.ResponseWriter, r *http.Request) {
	s.transitionBackfill(w, r, Backfills.Cancel)
}

func (s *Server) transitionBackfill(w http.ResponseWriter, r *http.Request,
	f func(Backfills, context.Context, string, string, time.Time) (backfill.State, error)) {
	c, b, ok := s.backfillFor(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	if _, err := f(s.bf.Store, ctx, c.Tenant, b.ID, time.Now()); err != nil {
		writeError(w, s.unavailable(r, "backfill store", err))
		return
	}
	if aerr := s.backfillEnded(r, b); aerr != nil {
		writeError(w, aerr)
		return
	}
	b, err := s.bf.Store.Get(ctx, c.Tenant, b.ID)
	if err != nil {
		writeError(w, s.unavailable(r, "backfill store", err))
		return
	}
	writeJSON(w, http.StatusOK, s.progress(b, time.Now()))
}

// backfillEnded queues the backfill.completed event of b when a seal or a
// cancel ended it, unless it names no endpoint or the event was queued
// already. Were the queueing to fail, the claim is given back and the
// answer is 503: the client's retry of its seal or cancel queues it.
func (s *Server) backfillEnded(r *http.Request, b *backfill.Backfill) *apiError {
	if b.Webhook == "" || s.bf.Events == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	ev, err := s.bf.Store.ClaimEnded(ctx, b.Tenant, b.ID, time.Now())
	if err != nil {
		return s.unavailable(r, "backfill store", err)
	}
	if ev == nil {
		return nil
	}
	if err := s.bf.Events.PublishBackfill(ctx, []store.BackfillEvent{*ev}); err != nil {
		if rerr := s.bf.Store.ReleaseEnded(context.WithoutCancel(ctx), b.Tenant, b.ID); rerr != nil {
			s.log.WarnContext(ctx, "release backfill event claim", "backfill", b.ID, "error", rerr)
		}
		return s.unavailable(r, "webhook queue", err)
	}
	return nil
}

// addDocuments streams an NDJSON (or CSV, or gzipped) body into a backfill
// chunk by chunk: memory holds one chunk, never the body. Each chunk is
// admitted against the tenant's quota, stripped of known ids, published on
// the backfill lane with all publishes in flight at once, and marked.
func (s *Server) addDocuments(w http.ResponseWriter, r *http.Request) {
	c, b, ok := s.backfillFor(w, r)
	if !ok {
		return
	}
	if s.draining.Load() {
		e := errorf(http.StatusServiceUnavailable, "draining", "this ingest instance is shutting down; retry")
		e.RetryAfterS = 1
		writeError(w, e)
		return
	}
	if b.State != backfill.StateOpen {
		writeError(w, notOpen(b.ID, b.State))
		return
	}
	if e := s.resultsRefusal(r.Context(), c.Tenant,
		"export and purge backfill results (jetinferctl backfill run does as it goes) and resend from line 1"); e != nil {
		writeError(w, e)
		return
	}
	raw, err := backfill.Decompress(s.streamReads(w, r.Body))
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "invalid_body", "%v", err))
		return
	}
	// The bound is on the decompressed bytes: a small gzip body can expand
	// a thousandfold, and it is those bytes that are parsed and looked up.
	body := &uploadLimit{r: raw, left: s.uploadLimit(subjectOf(r).adm)}
	body.limit = body.left
	lim := backfill.Limits{MaxTextBytes: s.cfg.MaxTextBytes, MaxLineBytes: s.cfg.MaxTextBytes + 64<<10}
	var rd backfill.Reader
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "text/csv" {
		rd = backfill.NewCSV(body, lim)
	} else {
		rd = backfill.NewNDJSON(body, lim)
	}
	up := &upload{s: s, w: w, r: r, c: c, b: b, body: body, resp: DocumentsResponse{Rejected: []backfill.LineError{}}}
	if msg := s.noWorkersWarning(r, b.Task); msg != "" {
		warn(w, msg)
		up.resp.Warnings = []string{msg}
	}
	writeJSON(w, up.run(rd), up.resp)
}

// uploadLimit is the bound of one upload's decompressed body: the server's
// --max-upload-bytes, lowered by the tenant's body limit when it has one.
func (s *Server) uploadLimit(adm Admission) int64 {
	if adm.MaxBodyBytes > 0 && adm.MaxBodyBytes < s.cfg.MaxUploadBytes {
		return adm.MaxBodyBytes
	}
	return s.cfg.MaxUploadBytes
}

// errUploadTooLarge ends the read of a body past its upload limit.
var errUploadTooLarge = errors.New("decompressed body is over the upload limit")

// uploadLimit reads at most limit bytes, then fails with
// errUploadTooLarge (which the readers may wrap or flatten, so exceeded
// says so, whatever error surfaces).
type uploadLimit struct {
	r        io.Reader
	left     int64
	limit    int64
	exceeded bool
}

func (l *uploadLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly limit bytes from a longer one.
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			return 0, err
		}
		l.exceeded = true
		return 0, errUploadTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// run reads the body to its end, or to the first error that stops it, and
// returns the status to answer.
func (u *upload) run(rd backfill.Reader) int {
	for {
		d, line, err := rd.Next()
		var le *backfill.LineError
		switch {
		case err == nil:
			u.scan(line)
			u.docs, u.lines = append(u.docs, d), append(u.lines, line)
		case errors.As(err, &le):
			u.scan(le.Line)
			u.reject(*le)
		case errors.Is(err, io.EOF):
			if aerr := u.flush(); aerr != nil {
				return u.fail(aerr)
			}
			return http.StatusOK
		default:
			// A body that cannot be read on (broken gzip, a CSV record
			// over the limit, a body over the upload limit, a dropped
			// connection): what came before stands.
			if aerr := u.flush(); aerr != nil {
				return u.fail(aerr)
			}
			u.resp.NextLine = line + 1
			if u.body.exceeded {
				return u.fail(errorf(http.StatusRequestEntityTooLarge, "body_too_large",
					"the decompressed body exceeds the upload limit of %d bytes; send the rest from line %d in another request", u.body.limit, u.resp.NextLine))
			}
			return u.fail(errorf(http.StatusBadRequest, "invalid_body", "%v", err))
		}
		if u.scanned >= int64(u.s.bf.Chunk) {
			if aerr := u.flush(); aerr != nil {
				return u.fail(aerr)
			}
		}
	}
}

// scan counts a line read, valid or not: every Chunk lines scanned cost
// one request of the tenant's rate limit, so that a body of duplicates or
// of rejected lines cannot keep the server busy for free.
func (u *upload) scan(line int64) {
	if u.scanned == 0 {
		u.from = line
	}
	u.scanned++
}

// upload is one POST .../documents in progress.
type upload struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	c     *auth.Claims
	b     *backfill.Backfill
	body  *uploadLimit
	docs  []backfill.Doc
	lines []int64
	// scanned counts the lines read since the last admission, from line
	// from on.
	scanned, from int64
	resp          DocumentsResponse
	// readAtEnd marks the documents job.Job.ReadAtEnd (an OpenAI batch).
	readAtEnd bool
}

func (u *upload) reject(le backfill.LineError) {
	u.resp.RejectedTotal++
	if len(u.resp.Rejected) < u.s.bf.MaxRejected {
		u.resp.Rejected = append(u.resp.Rejected, le)
	}
}

// fail records why the upload stopped and returns the status to answer.
func (u *upload) fail(e *apiError) int {
	u.resp.Error = &e.Error
	if e.RetryAfterS > 0 {
		u.w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterS))
	}
	return e.Status
}

// flush publishes the chunk in hand. On an error, NextLine names the first
// line that was not enqueued.
func (u *upload) flush() *apiError {
	docs, lines := u.docs, u.lines
	u.docs, u.lines = u.docs[:0], u.lines[:0]
	if u.scanned == 0 {
		return nil
	}
	from := u.from
	u.scanned = 0
	ctx := u.r.Context()
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	var known []bool
	if len(docs) > 0 {
		// Known reads the backfill's state in the same atomic step: a seal
		// or cancel since the last chunk stops the upload here, before this
		// chunk is admitted or costs quota.
		sctx, cancel := context.WithTimeout(ctx, u.s.cfg.StoreTimeout)
		var err error
		known, err = u.s.bf.Store.Known(sctx, u.c.Tenant, u.b.ID, ids)
		cancel()
		if err != nil {
			u.resp.NextLine = lines[0]
			return u.storeError(err)
		}
	}
	var jobs []*job.Job
	var jlines []int64
	inChunk := make(map[string]bool, len(docs))
	now := time.Now().UTC()
	for i, d := range docs {
		if known[i] || inChunk[d.ID] {
			u.resp.Duplicates++
			continue
		}
		inChunk[d.ID] = true
		jobs = append(jobs, &job.Job{ID: u.b.ID + ":" + d.ID, Tenant: u.c.Tenant, Task: u.b.Task, Lane: job.LaneBackfill,
			Input: job.Input{Text: d.Text, TextPair: d.TextPair}, Options: u.b.Options, Backfill: u.b.ID, DocID: d.ID, Meta: d.Meta, ReadAtEnd: u.readAtEnd, Created: now})
		jlines = append(jlines, lines[i])
	}
	// Every chunk of lines scanned is one request of the rate limit, new
	// documents or not; only new documents cost quota.
	adm, aerr := u.s.admitRequest(u.w, u.r, u.c, int64(len(jobs)))
	if aerr != nil {
		u.resp.NextLine = from
		if len(jobs) > 0 {
			// Lines before the first new one are duplicates or rejected,
			// counted in this answer already.
			u.resp.NextLine = jlines[0]
		}
		return aerr
	}
	if len(jobs) == 0 {
		return nil
	}
	// The backfill's options took the tenant's cap when it was created;
	// a cap lowered since applies to the documents still to come.
	for _, j := range jobs {
		capWindows(&j.Options, adm.MaxWindows)
	}
	reply := job.ResultsSubject(u.b.ID)
	pubs := u.s.bf.Publisher.PublishBatch(ctx, jobs, func(*job.Job) string { return reply })
	var confirmed []string
	var firstErr error
	var fresh int64
	for i, p := range pubs {
		if p.Err != nil {
			if firstErr == nil {
				firstErr, u.resp.NextLine = p.Err, jlines[i]
			}
			continue
		}
		// Enqueued after a failed one: the client resends from NextLine,
		// and the mark below makes this one a duplicate then.
		confirmed = append(confirmed, jobs[i].DocID)
		if p.Dup {
			u.resp.Duplicates++
		} else {
			fresh++
		}
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.s.cfg.StoreTimeout)
	_, merr := u.s.bf.Store.Mark(mctx, u.c.Tenant, u.b.ID, confirmed)
	cancel()
	var noe *backfill.NotOpenError
	if errors.As(merr, &noe) {
		u.resp.Accepted += fresh
		// Sealed or canceled between this chunk's Known and its Mark: the
		// chunk is enqueued (workers count it, or cancel it), the rest of
		// the body is refused.
		if firstErr == nil && len(jlines) > 0 {
			u.resp.NextLine = jlines[len(jlines)-1] + 1
		}
		return notOpen(noe.ID, noe.State)
	}
	if merr != nil && len(confirmed) > 0 {
		// JetStream holds the documents, but the backfill does not count
		// them submitted (or its replicas do not have the count yet, and a
		// failover would lose it): a seal could then complete the backfill
		// with documents still queued. The chunk is refused from its first
		// new line; the resend finds the marks that did land (Known waits
		// for the replicas as Mark does) and JetStream drops the copies of
		// the rest by their message ids.
		u.resp.NextLine = jlines[0]
		return u.storeError(merr)
	}
	u.resp.Accepted += fresh
	if firstErr != nil {
		if errors.Is(firstErr, job.ErrFull) {
			e := errorf(http.StatusServiceUnavailable, "queue_full", "the job queue is full; resend from line %d later", u.resp.NextLine)
			e.RetryAfterS = 5
			return e
		}
		return u.s.unavailable(u.r, "job queue", firstErr)
	}
	return nil
}

// notOpen is the 409 of an upload to a backfill that takes no more
// documents, naming its state.
func notOpen(id string, st backfill.State) *apiError {
	return errorf(http.StatusConflict, "backfill_not_open", "backfill %s is %s and takes no more documents; create a new backfill for more", id, st)
}

// storeError answers an error of the backfill store during an upload.
func (u *upload) storeError(err error) *apiError {
	var noe *backfill.NotOpenError
	switch {
	case errors.As(err, &noe):
		return notOpen(noe.ID, noe.State)
	case errors.Is(err, backfill.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "no backfill %q", u.b.ID)
	}
	return u.s.unavailable(u.r, "backfill store", err)
}

// ResultsSeqTrailer is the trailer of GET /v1/backfills/{id}/results that
// names the RESULTS stream sequence the export read up to: the next export
// resumes with ?after= it, and DELETE .../results?through= it frees the
// space of what the caller has stored.
const ResultsSeqTrailer = "Jetinfer-Results-Seq"

// ResultsReadTrailer is the trailer of GET /v1/backfills/{id}/results that
// counts the RESULTS messages the export read: what ?limit= counts. It can
// exceed the lines sent (a document's second result is dropped), so a
// stepped export knows it stopped at its limit, not caught up, only from it.
const ResultsReadTrailer = "Jetinfer-Results-Read"

// maxExportDedupe bounds the document ids one results export remembers.
const maxExportDedupe = 1 << 20

// backfillResults streams the backfill's results as NDJSON, one line per
// document, read from the RESULTS stream. For a backfill that is not
// final it follows new results until the backfill completes (or, with
// ?follow=false, stops once it has caught up). ?after=<seq> starts after a
// stream sequence and ?limit=<n> stops after n results, so a client can
// export in steps and purge each step once stored.
func (s *Server) backfillResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, aerr := queryUint(q, "after", 0, 0, maxCursor, "after must be a stream sequence (an unsigned integer)")
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	limit, aerr := queryUint(q, "limit", 0, 1, math.MaxUint64, "limit must be a positive integer")
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	c, b, ok := s.backfillFor(w, r)
	if !ok {
		return
	}
	release, aerr := s.exportSlot(r, c.Tenant)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer release()
	follow := q.Get("follow") != "false"
	ctx := r.Context()
	rr, err := s.bf.Results.ReadResults(ctx, b.ID, after)
	if err != nil {
		writeError(w, s.unavailable(r, "results stream", err))
		return
	}
	defer rr.Stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", ResultsSeqTrailer+", "+ResultsReadTrailer)
	deadline := s.streamWrites(w)
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		// The status goes out at once: a client learns the export began,
		// and its connection carries it, before the first result.
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	// A document's result is in RESULTS once, but for a redelivery after
	// the message-id window: those second results are dropped by id, for
	// the first maxExportDedupe documents of a request (a bounded 20 MB or
	// so); a longer export in one request leaves that to the client, as
	// jetinferctl's stepped export does.
	docs := map[uint64]struct{}{}
	var unflushed int64
	// done is asked whenever the reader has caught up. A worker publishes a
	// document's result before it counts the document final, so once the
	// backfill is completed (or canceled), every result is stored: the
	// export ends when it has read up to the last one stored then.
	seen := after
	// The trailer goes out only when the export ends as it should: a
	// client that lacks it must not purge.
	var read uint64
	end := func() {
		w.Header().Set(ResultsSeqTrailer, strconv.FormatUint(seen, 10))
		w.Header().Set(ResultsReadTrailer, strconv.FormatUint(read, 10))
	}
	done := func() bool {
		if !follow {
			return true
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		defer cancel()
		cur, err := s.bf.Store.Get(sctx, c.Tenant, b.ID)
		if err != nil || (cur.State != backfill.StateCompleted && cur.State != backfill.StateCanceled) {
			return false
		}
		last, err := rr.LastSeq(sctx)
		return err == nil && seen >= last
	}
	// Nothing after the cursor: answer at once rather than wait out a
	// first Next that cannot be answered (an export step that has caught
	// up, or a finished backfill's last step).
	if last, err := rr.LastSeq(ctx); err == nil && last <= after && done() {
		end()
		return
	}
	for {
		deadline.extend()
		data, seq, pending, err := rr.Next(ctx, time.Second)
		if errors.Is(err, job.ErrNoResult) {
			if fl != nil && unflushed > 0 {
				fl.Flush()
				unflushed = 0
			}
			if done() {
				end()
				return
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "read backfill results", "backfill", b.ID, "error", err)
			}
			return
		}
		seen = seq
		read++
		var rec job.Record
		if json.Unmarshal(data, &rec) == nil && rec.DocID != "" {
			fp := backfill.Fingerprint(rec.DocID)
			if _, dup := docs[fp]; !dup {
				if len(docs) < maxExportDedupe {
					docs[fp] = struct{}{}
				}
				if err := enc.Encode(ResultLine{ID: rec.DocID, Status: rec.Status, Result: rec.Result, Error: rec.Error, Meta: rec.Meta}); err != nil {
					return
				}
				unflushed++
			}
		}
		if limit > 0 && read >= limit {
			end()
			return
		}
		if pending == 0 {
			if fl != nil {
				fl.Flush()
				unflushed = 0
			}
			if done() {
				end()
				return
			}
		} else if unflushed >= 256 && fl != nil {
			fl.Flush()
			unflushed = 0
		}
	}
}

// purgeBackfillResults answers DELETE /v1/backfills/{id}/results?through=<seq>:
// it removes the backfill's results up to that RESULTS sequence (the
// trailer of the export that read them), once the caller has stored them.
func (s *Server) purgeBackfillResults(w http.ResponseWriter, r *http.Request) {
	through, err := strconv.ParseUint(r.URL.Query().Get("through"), 10, 64)
	if err != nil || through == 0 {
		writeError(w, fieldError("through", "through must be the stream sequence an export read up to (its %s trailer)", ResultsSeqTrailer))
		return
	}
	_, b, ok := s.backfillFor(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.bf.Results.PurgeResults(ctx, b.ID, through); err != nil {
		writeError(w, s.unavailable(r, "results stream", err))
		return
	}
	if err := s.purgedResults(ctx, b.Tenant, b.ID); err != nil {
		// The purge is done, but the tenant's account still counts what it
		// freed, and the backfill's last purge may be this one: the client
		// repeats it (a purge is idempotent), which counts again.
		writeError(w, s.unavailable(r, "backfill store", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backfill": b.ID, "purged_through": through})
}

// purgedResults re-derives the tenant's RESULTS account of backfill from
// what the stream still holds of it after a purge, so that a tenant over
// its share is admitted again, and its held documents flow, once its
// exports have purged enough.
func (s *Server) purgedResults(ctx context.Context, tenantID, backfillID string) error {
	held, ok := s.bf.Results.(ResultsHeldCounter)
	if s.bf.Account == nil || !ok {
		return nil
	}
	left, err := held.ResultsHeld(ctx, backfillID)
	if err == nil {
		_, err = s.bf.Account.ResultsLeft(ctx, tenantID, backfillID, left)
	}
	if err != nil {
		return fmt.Errorf("re-derive the RESULTS account of %s after a purge: %w", backfillID, err)
	}
	if s.bf.Shares != nil {
		s.bf.Shares.Forget(tenantID)
	}
	return nil
}
