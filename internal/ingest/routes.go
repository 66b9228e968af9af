package ingest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// AdmitMode says when the gate admits a route's requests against the
// tenant. Its zero value declares nothing, and a route that declares
// nothing makes New panic: a route cannot exist without admission.
type AdmitMode int

// The admission modes.
const (
	admitUndeclared AdmitMode = iota
	// AdmitFirst: the gate admits the request, costing Route.Cost
	// documents of quota and one request of the rate limit, before the
	// handler runs (reads, cancels, replays, uploads).
	AdmitFirst
	// AdmitAfterDecode: the handler decodes and validates its body first
	// and then admits it through the same admitRequest, so that only valid
	// work costs quota and the tenant's body limit can be applied.
	AdmitAfterDecode
	// AdmitPublic: no token, no tenant (health, readiness, the OpenAPI
	// document). Only routes outside /v1 may be public.
	AdmitPublic
)

func (m AdmitMode) String() string {
	switch m {
	case AdmitFirst:
		return "first"
	case AdmitAfterDecode:
		return "after-decode"
	case AdmitPublic:
		return "public"
	}
	return "undeclared"
}

// TaskSource says how a route names the task it touches, so that the gate
// can hold the token's tasks claim against it. Its zero value declares
// nothing, which New refuses.
type TaskSource int

// The task sources.
const (
	taskUndeclared TaskSource = iota
	// TaskNone: the route touches no task's data (the model catalog,
	// creating nothing).
	TaskNone
	// TaskPath: the {task} path parameter.
	TaskPath
	// TaskBody: the body names the task; the handler's validation refuses
	// a task the token does not allow (403 task_not_allowed) before
	// anything is admitted or enqueued.
	TaskBody
	// TaskJob: the job {id}'s record, which the gate loads.
	TaskJob
	// TaskBackfill: the backfill {id}, which the gate loads.
	TaskBackfill
	// TaskDeadLetter: the dead letter of job {id} (or of webhook event
	// {id}), which the gate loads.
	TaskDeadLetter
	// TaskListed: the route lists items of several tasks and shows only
	// those of tasks the token allows.
	TaskListed
	// TaskModel: the {id} path parameter is an OpenAI model id, a task; one
	// the token does not allow is answered 404, as a model the caller
	// cannot see (OpenAI's behaviour).
	TaskModel
	// TaskBatch: an OpenAI file or batch id (the {id} path parameter, or
	// input_file_id of the body) names a backfill; batchBackfill loads it
	// and refuses a task the token does not allow (403 task_not_allowed).
	TaskBatch
)

func (t TaskSource) String() string {
	switch t {
	case TaskNone:
		return "none"
	case TaskPath:
		return "path"
	case TaskBody:
		return "body"
	case TaskJob:
		return "job"
	case TaskBackfill:
		return "backfill"
	case TaskDeadLetter:
		return "dead-letter"
	case TaskListed:
		return "listed"
	case TaskModel:
		return "model"
	case TaskBatch:
		return "batch"
	}
	return "undeclared"
}

// Route is one entry of the API's route table: what it serves, and what
// the gate does before its handler runs.
type Route struct {
	// Pattern is the net/http ServeMux pattern, method included.
	Pattern string
	// Scope is the token scope the route requires; "" means any valid
	// token of the tenant.
	Scope string
	// Admit says when the request is admitted against its tenant.
	Admit AdmitMode
	// Cost is the documents of quota an AdmitFirst route costs.
	Cost int64
	// Task says how the route names the task it touches.
	Task TaskSource

	handler http.HandlerFunc
}

// Routes lists the API's route table, in registration order. Tests
// enumerate it so that a route without admission or without a task
// declaration cannot go unnoticed.
func (s *Server) Routes() []Route {
	out := slices.Clone(s.table)
	for i := range out {
		out[i].handler = nil
	}
	return out
}

// table is every route of the API. A new route is one line here; its
// admission and task source are declared, never implied.
func (s *Server) routeTable() []Route {
	return []Route{
		{Pattern: "POST /v1/jobs", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.submitJob},
		{Pattern: "POST /v1/jobs/batch", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.submitBatch},
		{Pattern: "POST /v1/infer/{task}", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskPath, handler: s.infer},
		{Pattern: "POST /v1/rerank", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.rerank},
		{Pattern: "POST /v2/rerank", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.rerank},
		{Pattern: "POST /v1/tokenize/{task}", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskPath, handler: s.tokenize},
		{Pattern: "GET /v1/jobs/{id}", Scope: auth.ScopeJobsRead, Admit: AdmitFirst, Task: TaskJob, handler: s.getJob},
		{Pattern: "DELETE /v1/jobs/{id}", Scope: auth.ScopeJobsWrite, Admit: AdmitFirst, Task: TaskJob, handler: s.cancelJob},
		{Pattern: "GET /v1/models", Admit: AdmitFirst, Task: TaskNone, handler: s.listModels},
		{Pattern: "POST /v1/backfills", Scope: auth.ScopeBackfillsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.createBackfill},
		{Pattern: "GET /v1/backfills/{id}", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.getBackfill},
		{Pattern: "POST /v1/backfills/{id}/documents", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.addDocuments},
		{Pattern: "POST /v1/backfills/{id}/seal", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.sealBackfill},
		{Pattern: "GET /v1/backfills/{id}/results", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.backfillResults},
		{Pattern: "DELETE /v1/backfills/{id}/results", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.purgeBackfillResults},
		{Pattern: "DELETE /v1/backfills/{id}", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBackfill, handler: s.cancelBackfill},
		{Pattern: "GET /v1/dlq", Scope: auth.ScopeDLQAdmin, Admit: AdmitFirst, Task: TaskListed, handler: s.listDLQ},
		{Pattern: "POST /v1/dlq/{id}/replay", Scope: auth.ScopeDLQAdmin, Admit: AdmitFirst, Cost: 1, Task: TaskDeadLetter, handler: s.replayDLQ},
		{Pattern: "POST /v1/webhooks", Scope: auth.ScopeWebhooksAdmin, Admit: AdmitFirst, Task: TaskNone, handler: s.registerWebhook},
		{Pattern: "GET /v1/webhooks", Scope: auth.ScopeWebhooksAdmin, Admit: AdmitFirst, Task: TaskNone, handler: s.listWebhooks},
		{Pattern: "DELETE /v1/webhooks/{id}", Scope: auth.ScopeWebhooksAdmin, Admit: AdmitFirst, Task: TaskNone, handler: s.deleteWebhook},
		{Pattern: "POST /v1/webhooks/{id}/rotate", Scope: auth.ScopeWebhooksAdmin, Admit: AdmitFirst, Task: TaskNone, handler: s.rotateWebhook},
		{Pattern: "GET /v1/me", Admit: AdmitFirst, Task: TaskNone, handler: s.me},
		{Pattern: "GET /v1/backfills", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskListed, handler: s.listBackfills},
		{Pattern: "GET /v1/fleet", Admit: AdmitFirst, Task: TaskNone, handler: s.fleetInfo},
		{Pattern: "GET /healthz", Admit: AdmitPublic, Task: TaskNone, handler: s.healthz},
		{Pattern: "GET /readyz", Admit: AdmitPublic, Task: TaskNone, handler: s.readyz},
		{Pattern: "GET /openapi.json", Admit: AdmitPublic, Task: TaskNone, handler: serveOpenAPI},
		// The web console's files: every call the console makes carries
		// the user's token through the routes above.
		{Pattern: "GET /ui/", Admit: AdmitPublic, Task: TaskNone, handler: s.console.ServeHTTP},
		{Pattern: "GET /ui", Admit: AdmitPublic, Task: TaskNone, handler: http.RedirectHandler("/ui/", http.StatusMovedPermanently).ServeHTTP},
		// The OpenAI-compatible surface answers errors in OpenAI's shape.
		{Pattern: "POST " + OpenAIPrefix + "/embeddings", Scope: auth.ScopeJobsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.openAIEmbeddings},
		{Pattern: "GET " + OpenAIPrefix + "/models", Admit: AdmitFirst, Task: TaskListed, handler: s.openAIModels},
		{Pattern: "GET " + OpenAIPrefix + "/models/{id}", Admit: AdmitFirst, Task: TaskModel, handler: s.openAIModel},
		// The upload admits itself before it reads the file, and refuses a
		// line whose model the token does not allow.
		{Pattern: "POST " + OpenAIPrefix + "/files", Scope: auth.ScopeBackfillsWrite, Admit: AdmitAfterDecode, Task: TaskBody, handler: s.openAIUpload},
		{Pattern: "GET " + OpenAIPrefix + "/files/{id}/content", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBatch, handler: s.openAIFileContent},
		{Pattern: "POST " + OpenAIPrefix + "/batches", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBatch, handler: s.openAICreateBatch},
		{Pattern: "GET " + OpenAIPrefix + "/batches/{id}", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBatch, handler: s.openAIGetBatch},
		{Pattern: "POST " + OpenAIPrefix + "/batches/{id}/cancel", Scope: auth.ScopeBackfillsWrite, Admit: AdmitFirst, Task: TaskBatch, handler: s.openAICancelBatch},
	}
}

// OpenAI reports whether the route belongs to the OpenAI-compatible
// surface, whose errors take OpenAI's shape.
func (rt Route) OpenAI() bool {
	_, path, _ := strings.Cut(rt.Pattern, " ")
	return strings.HasPrefix(path, OpenAIPrefix+"/")
}

// writeErr writes e in the route's error shape.
func (rt Route) writeErr(w http.ResponseWriter, e *apiError) {
	if rt.OpenAI() {
		writeOpenAIError(w, e)
		return
	}
	writeError(w, e)
}

// mount registers every route of the table behind the one gate.
func (s *Server) mount(mux *http.ServeMux) {
	// The middleware sets WWW-Authenticate itself: a bare challenge without
	// a token, error="invalid_token" for a refused one (RFC 6750 §3.1).
	authn := auth.Middleware(s.verifier, func(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
		writeError(w, errorf(status, code, "%s", msg))
	})
	openAIAuthn := auth.Middleware(s.verifier, func(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
		writeOpenAIError(w, errorf(status, code, "%s", msg))
	})
	s.table = s.routeTable()
	for _, rt := range s.table {
		if rt.Admit == admitUndeclared || rt.Task == taskUndeclared || rt.handler == nil {
			panic("ingest: route " + rt.Pattern + " declares no admission or no task source")
		}
		switch {
		case rt.Admit == AdmitPublic:
			mux.Handle(rt.Pattern, rt.handler)
		case rt.OpenAI():
			mux.Handle(rt.Pattern, auditRoute(rt.Pattern, openAIAuthn(s.gate(rt))))
		default:
			mux.Handle(rt.Pattern, auditRoute(rt.Pattern, authn(s.gate(rt))))
		}
	}
}

// auditRoute names the route in the request's audit line before the token
// is checked, so that a refused token's line names it too.
func auditRoute(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noteAudit(r, func(a *auditRecord) { a.route = pattern })
		h.ServeHTTP(w, r)
	})
}

// gate is the one admission path of every authenticated route: scope, then
// tenant admission (for AdmitFirst routes), then the task the route names
// against the token's tasks claim.
func (s *Server) gate(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.FromContext(r.Context())
		if !ok {
			rt.writeErr(w, errorf(http.StatusUnauthorized, "unauthorized", "missing credentials"))
			return
		}
		noteAudit(r, func(a *auditRecord) { a.tenant, a.subject, a.jti = c.Tenant, c.Subject, c.ID })
		if rt.Scope != "" && !c.HasScope(rt.Scope) {
			rt.writeErr(w, errorf(http.StatusForbidden, "insufficient_scope", "token lacks scope %q", rt.Scope))
			return
		}
		var adm Admission
		if rt.Admit == AdmitFirst {
			var aerr *apiError
			if adm, aerr = s.admitRequest(w, r, c, rt.Cost); aerr != nil {
				rt.writeErr(w, aerr)
				return
			}
		}
		sub, aerr := s.resolve(r, c, rt.Task)
		if aerr != nil {
			rt.writeErr(w, aerr)
			return
		}
		sub.adm = adm
		noteAudit(r, func(a *auditRecord) { a.note(sub) })
		if sub.task != "" && !c.AllowsTask(sub.task) {
			rt.writeErr(w, errorf(http.StatusForbidden, "task_not_allowed", "token does not allow task %q", sub.task))
			return
		}
		rt.handler(w, r.WithContext(context.WithValue(r.Context(), subjectKey{}, sub)))
	})
}

// subject is what the gate loaded to learn a route's task; handlers take
// it from the request's context rather than load it again.
type subject struct {
	task string
	rec  *job.Record
	bf   *backfill.Backfill
	dead *job.DeadEntry
	dj   *job.Job
	// adm is the gate's admission of an AdmitFirst route (the tenant's
	// limits).
	adm Admission
}

type subjectKey struct{}

// note adds what the gate loaded to an audit line.
func (a *auditRecord) note(sub *subject) {
	if sub.task != "" {
		a.task = sub.task
	}
	switch {
	case sub.rec != nil:
		a.jobID = sub.rec.ID
	case sub.dj != nil:
		a.jobID = sub.dj.ID
	case sub.dead != nil:
		a.jobID = sub.dead.JobID
	}
	if sub.bf != nil {
		a.backfillID = sub.bf.ID
	}
}

// subjectOf returns what the gate loaded for r.
func subjectOf(r *http.Request) *subject {
	if sub, ok := r.Context().Value(subjectKey{}).(*subject); ok {
		return sub
	}
	return &subject{}
}

// resolve loads what names the route's task. A missing object of the
// tenant is 404, like another tenant's.
func (s *Server) resolve(r *http.Request, c *auth.Claims, src TaskSource) (*subject, *apiError) {
	sub := &subject{}
	id := r.PathValue("id")
	switch src {
	case TaskPath:
		sub.task = r.PathValue("task")
	case TaskJob:
		rec, apiErr := lookup(s, r, s.cfg.StoreTimeout, "result store", store.ErrNotFound, "job",
			func(ctx context.Context) (*job.Record, error) { return s.recs.Get(ctx, c.Tenant, id) })
		if apiErr != nil {
			return nil, apiErr
		}
		sub.rec, sub.task = rec, rec.Task
	case TaskBackfill:
		if s.bf.Store == nil {
			return nil, errorf(http.StatusNotImplemented, "not_implemented", "backfills are not served here")
		}
		b, apiErr := lookup(s, r, s.cfg.StoreTimeout, "backfill store", backfill.ErrNotFound, "backfill",
			func(ctx context.Context) (*backfill.Backfill, error) { return s.bf.Store.Get(ctx, c.Tenant, id) })
		if apiErr != nil {
			return nil, apiErr
		}
		sub.bf, sub.task = b, b.Task
	case TaskDeadLetter:
		if s.dlq == nil || s.deadRecs == nil {
			return nil, errorf(http.StatusNotImplemented, "not_implemented", "this ingest has no DLQ access")
		}
		d, apiErr := lookup(s, r, dlqTimeout, "dead-letter queue", job.ErrDeadNotFound, "dead letter for job",
			func(ctx context.Context) (deadLetter, error) { return s.findDeadLetter(ctx, c.Tenant, id) })
		if apiErr != nil {
			return nil, apiErr
		}
		sub.dead, sub.dj, sub.task = d.entry, d.job, d.task()
	}
	return sub, nil
}

// lookup runs fetch, under timeout, for the object a route acts on. An
// error that is notFound answers 404 "no <what> <id>"; any other answers
// 503 naming dep, what fetch reads from.
func lookup[T any](s *Server, r *http.Request, timeout time.Duration, dep string, notFound error, what string,
	fetch func(context.Context) (T, error)) (T, *apiError) {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	v, err := fetch(ctx)
	if errors.Is(err, notFound) {
		var zero T
		return zero, errorf(http.StatusNotFound, "not_found", "no %s %q", what, r.PathValue("id"))
	}
	if err != nil {
		var zero T
		return zero, s.unavailable(r, dep, err)
	}
	return v, nil
}

// deadLetter is a dead letter as the gate loads it: the entry and, unless
// it is a webhook event's, the job it holds.
type deadLetter struct {
	entry *job.DeadEntry
	job   *job.Job
}

// task is the task the letter's routes act on. A webhook event's dead
// letter holds the event, not a job; its task is the reported job's, kept
// on the letter.
func (d deadLetter) task() string {
	if d.job == nil {
		return d.entry.Task
	}
	return d.job.Task
}

// findDeadLetter loads the tenant's dead letter for job id, with its job
// unless it is a webhook event's.
func (s *Server) findDeadLetter(ctx context.Context, tenant, id string) (deadLetter, error) {
	e, err := s.dlq.FindDead(ctx, tenant, id)
	if err != nil {
		return deadLetter{}, err
	}
	if e.Kind == job.DeadKindWebhook {
		return deadLetter{entry: e}, nil
	}
	dj, err := s.dlq.DeadJob(ctx, e)
	if err != nil {
		return deadLetter{}, err
	}
	return deadLetter{entry: e, job: dj}, nil
}
