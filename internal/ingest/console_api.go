package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// The routes a console needs beside the job and backfill API: who the token
// is (GET /v1/me), the tenant's backfills (GET /v1/backfills) and what the
// fleet serves with its backlog (GET /v1/fleet).

// TenantUsage reads a tenant's daily quota and today's use of it.
type TenantUsage interface {
	Usage(ctx context.Context, tenantID string, now time.Time) (tenant.Usage, error)
}

// Backlogs lists the backlog of every lane × task consumer of JOBS.
type Backlogs interface {
	TaskBacklogs(ctx context.Context) ([]job.ConsumerBacklog, error)
}

// BackfillLister pages through a tenant's backfills, newest first.
type BackfillLister interface {
	List(ctx context.Context, tenant, before string, limit int) (backfill.Page, error)
}

var (
	_ TenantUsage    = (*tenant.Store)(nil)
	_ BackfillLister = (*backfill.Store)(nil)
)

// MeResponse answers GET /v1/me.
type MeResponse struct {
	Tenant string   `json:"tenant"`
	Scopes []string `json:"scopes"`
	// Tasks, when not empty, are the only tasks the token may use.
	Tasks     []string  `json:"tasks,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Quota is absent when this ingest does not check tenants.
	Quota *QuotaUse `json:"quota,omitempty"`
}

// QuotaUse is a tenant's use of its daily document quota.
type QuotaUse struct {
	// DailyLimit is 0 for an unlimited tenant, whose use is not counted.
	DailyLimit int64     `json:"daily_limit"`
	UsedToday  int64     `json:"used_today"`
	ResetsAt   time.Time `json:"resets_at"`
}

// me answers GET /v1/me: the token's tenant, scopes and tasks, and the
// tenant's quota use today, so that a client can show who it acts as.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	resp := MeResponse{Tenant: c.Tenant, Scopes: strings.Fields(c.Scope), Tasks: c.Tasks}
	if resp.Scopes == nil {
		resp.Scopes = []string{}
	}
	if c.ExpiresAt != nil {
		resp.ExpiresAt = c.ExpiresAt.UTC()
	}
	if s.usage != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
		defer cancel()
		u, err := s.usage.Usage(ctx, c.Tenant, time.Now())
		if errors.Is(err, tenant.ErrNotFound) {
			writeError(w, errorf(http.StatusForbidden, tenant.ReasonUnknownTenant, "tenant %q is not known", c.Tenant))
			return
		}
		if err != nil {
			writeError(w, s.unavailable(r, "tenant store", err))
			return
		}
		resp.Quota = &QuotaUse{DailyLimit: u.DailyQuota, UsedToday: u.Used, ResetsAt: u.Reset.UTC()}
	}
	writeJSON(w, http.StatusOK, resp)
}

// maxBackfillPage caps ?limit= on GET /v1/backfills.
const maxBackfillPage = 100

// BackfillList answers GET /v1/backfills.
type BackfillList struct {
	Backfills []backfill.Progress `json:"backfills"`
	// Next is the ?before= of the following page; absent on the last.
	Next string `json:"next,omitempty"`
}

// listBackfills answers GET /v1/backfills?before=<cursor>&limit=<n> with the
// tenant's backfills and their progress, newest first.
func (s *Server) listBackfills(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if s.bf.List == nil {
		writeError(w, errorf(http.StatusNotImplemented, "not_implemented", "backfills are not served here"))
		return
	}
	q := r.URL.Query()
	before := q.Get("before")
	if before != "" && !backfill.ValidCursor(before) {
		writeError(w, fieldError("before", "before must be the next cursor of a previous page"))
		return
	}
	limit, aerr := queryUint(q, "limit", 20, 1, maxBackfillPage, fmt.Sprintf("limit must be 1..%d", maxBackfillPage))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	page, err := s.bf.List.List(ctx, c.Tenant, before, int(limit))
	if err != nil {
		writeError(w, s.unavailable(r, "backfill store", err))
		return
	}
	now := time.Now()
	out := BackfillList{Backfills: make([]backfill.Progress, 0, len(page.Backfills)), Next: page.Next}
	for _, b := range page.Backfills {
		// A token limited to some tasks sees only their backfills; the
		// cursor still moves past the others.
		if c.AllowsTask(b.Task) {
			out.Backfills = append(out.Backfills, s.progress(b, now))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// FleetTask is one served task in GET /v1/fleet.
type FleetTask struct {
	ModelStatus
	// Lanes holds the backlog of each lane's consumer that exists.
	Lanes map[job.Lane]LaneBacklog `json:"lanes"`
	// Breaker is the state of the task's circuit breaker on synchronous
	// calls here: closed, half_open or open.
	Breaker string `json:"breaker"`
}

// LaneBacklog is where one lane × task consumer stands, across tenants.
type LaneBacklog struct {
	// Pending counts jobs no worker has taken yet.
	Pending uint64 `json:"pending"`
	// InFlight counts jobs handed to a worker and not yet acknowledged.
	InFlight int `json:"in_flight"`
	// Redelivered counts in-flight jobs handed out more than once.
	Redelivered int `json:"redelivered"`
}

// FleetResponse answers GET /v1/fleet.
type FleetResponse struct {
	Tasks []FleetTask `json:"tasks"`
	// Workers are the live workers, each with the tasks the token may use
	// (a worker serving none of them is left out).
	Workers []job.Member `json:"workers"`
	// BacklogError says why backlogs are missing, when they are.
	BacklogError string `json:"backlog_error,omitempty"`
}

// backlogCache keeps the fleet's backlogs for a second: every console that
// is open polls them, and listing every consumer is one request to the
// JetStream server per call.
type backlogCache struct {
	mu    sync.Mutex
	at    time.Time
	lanes map[string]map[job.Lane]LaneBacklog
	err   error
}

func (s *Server) backlogs(ctx context.Context) (map[string]map[job.Lane]LaneBacklog, error) {
	bc := &s.backlogCache
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if time.Since(bc.at) < time.Second {
		return bc.lanes, bc.err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	list, err := s.fleet.TaskBacklogs(ctx)
	bc.at, bc.err, bc.lanes = time.Now(), err, map[string]map[job.Lane]LaneBacklog{}
	for _, cb := range list {
		if bc.lanes[cb.Task] == nil {
			bc.lanes[cb.Task] = map[job.Lane]LaneBacklog{}
		}
		bc.lanes[cb.Task][cb.Lane] = LaneBacklog{Pending: cb.Pending, InFlight: cb.AckPending, Redelivered: cb.Redelivered}
	}
	return bc.lanes, bc.err
}

// fleetInfo answers GET /v1/fleet: the tasks the token may use, with version,
// kind and the backlog of each lane (shared by every tenant, counts only).
func (s *Server) fleetInfo(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	var lanes map[string]map[job.Lane]LaneBacklog
	resp := FleetResponse{Tasks: []FleetTask{}}
	if s.fleet != nil {
		var err error
		if lanes, err = s.backlogs(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "fleet backlogs", "error", err)
			resp.BacklogError = "the job queue did not answer; backlogs are missing"
		}
	}
	now, members := time.Now(), s.memberList()
	states := s.breakers.states(now)
	resp.Workers = fleetWorkers(c, members, now)
	for _, m := range s.catalog.Models() {
		if !c.AllowsTask(m.Task) {
			continue
		}
		ft := FleetTask{ModelStatus: s.modelStatus(m, members, now), Lanes: lanes[m.Task], Breaker: states[m.Task].String()}
		if ft.Lanes == nil {
			ft.Lanes = map[job.Lane]LaneBacklog{}
		}
		resp.Tasks = append(resp.Tasks, ft)
	}
	writeJSON(w, http.StatusOK, resp)
}
