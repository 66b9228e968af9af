package ingest

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
)

// Members is the fleet's membership registry as ingest reads it
// (queue.Members): the workers that heartbeat, each with the tasks it
// serves.
type Members interface {
	// Members lists the entries, live or not (job.Member.Live decides).
	Members() []job.Member
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
	// Refresh re-reads the registry from the server.
	Refresh(ctx context.Context) error
	// LastSeen is the latest heartbeat of any worker of task, gone or not.
	LastSeen(task string) time.Time
}

// noWorkersRetryAfter is the Retry-After of 503 no_workers: about the time
// a worker takes to start and load its model.
const noWorkersRetryAfter = 10

// liveServing reports whether a live member serves task. With refresh,
// it re-reads the registry once when the view holds none, so that a
// refusal does not rest on a watch a moment behind a worker's first
// heartbeat; a mere warning does without. Without a registry (or while it
// does not answer) the fleet counts as serving: work is never refused on
// the registry's account.
func (s *Server) liveServing(ctx context.Context, r *http.Request, task string, refresh bool) bool {
	if s.members == nil {
		return true
	}
	if live := job.LiveServing(s.members.Members(), task, time.Now()); len(live) > 0 || !refresh {
		return len(live) > 0
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	if err := s.members.Refresh(rctx); err != nil {
		_ = s.unavailable(r, "membership registry", err) // logs, at most once a second
		return true
	}
	return len(job.LiveServing(s.members.Members(), task, time.Now())) > 0
}

// awaitWorkers waits until a live worker serves task, or ctx ends.
func (s *Server) awaitWorkers(ctx context.Context, task string) bool {
	for {
		changed := s.members.Changed()
		if len(job.LiveServing(s.members.Members(), task, time.Now())) > 0 {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// noWorkersWarning is the warning of an accepted asynchronous job or
// backfill whose task no live worker serves, or "" when one does. It reads
// the watched view only: a warning is not worth a round trip per job.
func (s *Server) noWorkersWarning(r *http.Request, task string) string {
	if s.liveServing(r.Context(), r, task, false) {
		return ""
	}
	return "no live worker serves task " + task + "; the work waits in the queue until one starts"
}

// warn adds a Warning header (RFC 9110's 199 miscellaneous warning) for
// each of msgs.
func warn(w http.ResponseWriter, msgs ...string) {
	for _, m := range msgs {
		if m != "" {
			w.Header().Add("Warning", `199 jetinfer "`+m+`"`)
		}
	}
}

// outcome is what a synchronous call tells of its task's health.
type outcome int

const (
	// outcomeNeutral says nothing: the caller went away, or the input
	// was at fault.
	outcomeNeutral outcome = iota
	outcomeOK
	outcomeFailed
)

// syncRefused is the refusal of a synchronous call of task before it is
// queued, or nil: 503 no_workers when no live worker serves it (unless
// Config.WaitForWorkers, which waits for one within wait), and 503
// task_unavailable while its circuit breaker is open. A call let through
// must report its outcome to done. waited is the part of wait spent
// waiting for a worker.
func (s *Server) syncRefused(r *http.Request, task string, wait time.Duration) (done func(outcome), waited time.Duration, aerr *apiError) {
	if !s.liveServing(r.Context(), r, task, true) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		served := s.cfg.WaitForWorkers && s.awaitWorkers(ctx, task)
		cancel()
		if !served {
			s.ins.refused(r.Context(), task, "no_workers")
			e := errorf(http.StatusServiceUnavailable, "no_workers",
				"no live worker serves task %q; retry once one starts, or submit the job asynchronously (POST /v1/jobs) to have it queued", task)
			e.RetryAfterS = noWorkersRetryAfter
			return nil, 0, e
		}
		waited = time.Since(start)
	}
	var allowed bool
	var retry time.Duration
	s.breakers.with(task, func(b *Breaker) { allowed, retry = b.Allow(time.Now()) })
	if !allowed {
		s.ins.refused(r.Context(), task, "task_unavailable")
		e := errorf(http.StatusServiceUnavailable, "task_unavailable",
			"task %q is failing: its recent synchronous calls failed or timed out; retry later, or submit the job asynchronously (POST /v1/jobs) to have it queued", task)
		e.RetryAfterS = max(1, int(math.Ceil(retry.Seconds())))
		return nil, 0, e
	}
	return func(o outcome) {
		s.breakers.with(task, func(b *Breaker) {
			switch o {
			case outcomeOK:
				b.Record(time.Now(), true)
			case outcomeFailed:
				b.Record(time.Now(), false)
			default:
				b.Release()
			}
		})
	}, waited, nil
}

// outcomeOf judges a synchronous call by the record it answered with. A
// call with no final record timed out, which counts as a failure when
// fullWait says it waited at least the server's --infer-wait: a client
// that asks for a shorter wait than the model needs must not open the
// breaker for everyone.
func outcomeOf(rec wireRecord, final, fullWait bool) outcome {
	if !final {
		if fullWait {
			return outcomeFailed
		}
		return outcomeNeutral
	}
	var v struct {
		Status job.Status `json:"status"`
		Error  *job.Error `json:"error"`
	}
	if rec.rec != nil {
		v.Status, v.Error = rec.rec.Status, rec.rec.Error
	} else {
		_ = json.Unmarshal(rec.raw, &v)
	}
	switch {
	case v.Status == job.StatusSucceeded:
		return outcomeOK
	case v.Status == job.StatusCanceled || v.Error == nil:
		return outcomeNeutral
	}
	switch v.Error.Code {
	case job.CodeInvalidInput, job.CodeInputTooLong, job.CodeCanceled, job.CodeUnknownTask:
		return outcomeNeutral
	}
	return outcomeFailed
}

// ModelStatus is one task in GET /v1/models: its model and the live
// workers serving it.
type ModelStatus struct {
	job.ModelInfo
	// Workers are the live workers serving the task; empty while it is
	// scaled to zero (jobs are still accepted and queued).
	Workers []ModelWorker `json:"workers"`
	// LastSeen is the latest heartbeat of any worker of the task this
	// instance saw, gone or not; absent when it saw none.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// ModelWorker is one live worker of a task.
type ModelWorker struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	Device   string    `json:"device"`
	Version  string    `json:"version,omitempty"`
	InFlight int       `json:"in_flight"`
	LastSeen time.Time `json:"last_seen"`
}

// modelStatus is task's model with its live workers at now.
func (s *Server) modelStatus(m job.ModelInfo, members []job.Member, now time.Time) ModelStatus {
	ms := ModelStatus{ModelInfo: m, Workers: []ModelWorker{}}
	if s.members == nil {
		return ms
	}
	ms.LastSeen = s.members.LastSeen(m.Task)
	for _, mem := range job.LiveServing(members, m.Task, now) {
		for _, t := range mem.Tasks {
			if t.Task == m.Task {
				ms.Workers = append(ms.Workers, ModelWorker{ID: mem.ID, Host: mem.Host, Device: mem.Device, Version: t.Version,
					InFlight: t.InFlight, LastSeen: mem.LastSeen})
			}
		}
	}
	return ms
}

// memberList is the registry's entries, none without one.
func (s *Server) memberList() []job.Member {
	if s.members == nil {
		return nil
	}
	return s.members.Members()
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	now, members := time.Now(), s.memberList()
	out := []ModelStatus{}
	for _, m := range s.catalog.Models() {
		out = append(out, s.modelStatus(m, members, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

// fleetWorkers are the live members, each with only the tasks c may use;
// a member serving none of them is left out.
func fleetWorkers(c *auth.Claims, members []job.Member, now time.Time) []job.Member {
	out := []job.Member{}
	for _, m := range members {
		if !m.Live(now) {
			continue
		}
		tasks := []job.MemberTask{}
		for _, t := range m.Tasks {
			if c.AllowsTask(t.Task) {
				tasks = append(tasks, t)
			}
		}
		if len(tasks) > 0 {
			m.Tasks = tasks
			out = append(out, m)
		}
	}
	return out
}

// progress is b's progress at now, stalled or not.
func (s *Server) progress(b *backfill.Backfill, now time.Time) backfill.Progress {
	p := backfill.ProgressOf(b, now)
	if p.Pending > 0 {
		served := true
		if s.members != nil {
			served = len(job.LiveServing(s.members.Members(), b.Task, now)) > 0
		}
		p.Stalled = backfill.StallOf(b, now, s.cfg.StallAfter, served)
	}
	return p
}

// observeFleet exports each task's live workers and breaker state:
// jetinfer_ingest_live_workers{task} and jetinfer_ingest_breaker_state{task}
// (0 closed, 1 half-open, 2 open).
func (s *Server) observeFleet(meter metric.Meter) {
	if meter == nil {
		return
	}
	live, err1 := meter.Int64ObservableGauge("jetinfer.ingest.live_workers",
		metric.WithDescription("live workers serving each task, from the membership registry"))
	state, err2 := meter.Int64ObservableGauge("jetinfer.ingest.breaker_state",
		metric.WithDescription("circuit breaker of each task's synchronous calls: 0 closed, 1 half-open (probing), 2 open (refusing)"))
	if err1 != nil || err2 != nil {
		return
	}
	_, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := time.Now()
		states := s.breakers.states(now)
		members := s.memberList()
		for _, m := range s.catalog.Models() {
			set := metric.WithAttributeSet(attribute.NewSet(attribute.String("task", m.Task)))
			if s.members != nil {
				o.ObserveInt64(live, int64(len(job.LiveServing(members, m.Task, now))), set)
			}
			o.ObserveInt64(state, int64(states[m.Task]), set)
		}
		return nil
	}, live, state)
}
