package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrNotFound is returned for a job that does not exist for the tenant.
var ErrNotFound = errors.New("job not found")

// Store keeps job records in Redis.
type Store struct {
	rdb        redis.UniversalClient
	defaultTTL time.Duration
	docTTL     time.Duration // backfill marks and hashes; 0 is DocTTL
	// confirm is how many replicas Finish and the Creator wait for
	// (WithWait).
	confirm Confirm
}

// New returns a store on rdb. defaultTTL is how long a record lives when the
// job names no TTL of its own.
func New(rdb redis.UniversalClient, defaultTTL time.Duration) *Store {
	if defaultTTL <= 0 {
		defaultTTL = 24 * time.Hour
	}
	return &Store{rdb: rdb, defaultTTL: defaultTTL}
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Key is the Redis key of a job's record. The tenant is a hash tag so that a
// tenant's keys share a Redis Cluster slot.
func Key(tenant, id string) string { return "ji:job:{" + tenant + "}:" + id }

func (s *Store) ttl(j *job.Job) time.Duration {
	if j.ResultTTLSeconds > 0 {
		return time.Duration(j.ResultTTLSeconds) * time.Second
	}
	return s.defaultTTL
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// createScript creates a queued record unless one exists. It answers
// {1} when it created it, or {0, req_hash, status} for the existing one.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('HMGET', KEYS[1], 'req_hash', 'status')
  return {0, v[1] or '', v[2] or ''}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'task', ARGV[1], 'lane', ARGV[2],
  'created', ARGV[3], 'req_hash', ARGV[4], 'backfill', ARGV[5], 'doc_id', ARGV[6], 'attempts', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return {1}
`)

// Created is the outcome of Create.
type Created struct {
	// New is false when a record with the same id existed already.
	New bool
	// ReqHash and Status describe the existing record when New is false.
	ReqHash string
	Status  job.Status
}

// Create writes the queued record of j unless one exists, keeping reqHash
// (a digest of the request that made the job) so that a repeated
// Idempotency-Key with a different request can be told apart.
func (s *Store) Create(ctx context.Context, j *job.Job, reqHash string) (Created, error) {
	res, err := createScript.Run(ctx, s.rdb, []string{Key(j.Tenant, j.ID)},
		j.Task, string(j.Lane), ms(j.Created), reqHash, j.Backfill, j.DocID, s.ttl(j).Milliseconds()).Slice()
	if err != nil {
		return Created{}, fmt.Errorf("create job %s: %w", j.ID, err)
	}
	if n, _ := res[0].(int64); n == 1 {
		return Created{New: true}, nil
	}
	c := Created{}
	if len(res) == 3 {
		c.ReqHash, _ = res[1].(string)
		st, _ := res[2].(string)
		c.Status = job.Status(st)
	}
	return c, nil
}

// startScript marks a job running unless it is final (canceled by its owner
// or finished by an earlier delivery). It recreates a record that is missing,
// as after a Redis restart without persistence. It answers the status the job
// now has.
var startScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'succeeded' or st == 'failed' or st == 'dead' or st == 'canceled' then
  return st
end
if not st then
  redis.call('HSET', KEYS[1], 'task', ARGV[4], 'lane', ARGV[5], 'created', ARGV[6],
    'backfill', ARGV[7], 'doc_id', ARGV[8])
end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', ARGV[1])
redis.call('HSETNX', KEYS[1], 'started', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'running'
`)

// Start marks each job running, in one round trip, and returns the status
// each now has: running, or a final status when the job must be skipped.
// With WithWait, a final status is returned only once the replicas have it
// (one more round trip, only then), since the caller acknowledges the job
// on it.
func (s *Store) Start(ctx context.Context, jobs []*job.Job, attempts []int, now time.Time) ([]job.Status, error) {
	cmds := make([]*redis.Cmd, len(jobs))
	run := func(p redis.Pipeliner) {
		for i, j := range jobs {
			if j.Backfill != "" {
				cmds[i] = s.bfStart(ctx, p, j)
				continue
			}
			cmds[i] = startScript.EvalSha(ctx, p, []string{Key(j.Tenant, j.ID)},
				attempts[i], now.UnixMilli(), s.ttl(j).Milliseconds(), j.Task, string(j.Lane), ms(j.Created), j.Backfill, j.DocID)
		}
	}
	if err := pipeline(ctx, s.rdb, run, startScript, bfStartScript); err != nil {
		return nil, fmt.Errorf("start %d jobs: %w", len(jobs), err)
	}
	out := make([]job.Status, len(jobs))
	final := false
	for i, c := range cmds {
		out[i] = job.Status(c.Val().(string))
		final = final || out[i].Final()
	}
	// A job found final is acknowledged next, without a write of its own:
	// the final state an earlier delivery wrote (whose WAIT may have
	// failed) must be on the replicas first.
	if final {
		if err := s.confirm.Sync(ctx, s.rdb); err != nil {
			return nil, fmt.Errorf("start %d jobs: %w", len(jobs), err)
		}
	}
	return out, nil
}

// finishScript writes a final state unless the job already has one; the
// first final state wins. It answers the status the job ends with.
var finishScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'succeeded' or st == 'failed' or st == 'dead' or st == 'canceled' then
  return st
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'result', ARGV[2], 'err_code', ARGV[3], 'err_msg', ARGV[4],
  'attempts', ARGV[5], 'finished', ARGV[6], 'timings', ARGV[8], 'task', ARGV[9], 'lane', ARGV[10],
  'created', ARGV[11], 'backfill', ARGV[12], 'doc_id', ARGV[13])
local started = ARGV[14]
if started == '0' then started = ARGV[6] end
redis.call('HSETNX', KEYS[1], 'started', started)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return ARGV[1]
`)

// Final is the final state of one job for Finish.
type Final struct {
	Job      *job.Job
	Status   job.Status
	Result   json.RawMessage
	Error    *job.Error
	Attempts int
	Timings  *job.Timings
	// Started is when the model took the job, for a record no Start call
	// marked running (a batch that finished before its Start was due);
	// zero means the time of the Finish call.
	Started time.Time
	// Reused marks a backfill document answered from the reuse cache.
	Reused bool
	// ReuseKey, for a backfill document, is where a successful result is
	// cached for identical texts (see ReuseKey); empty for none.
	ReuseKey string
	// ResultBytes, for a backfill document, is the size of the result the
	// worker published to RESULTS for it (0: none), which counting it final
	// adds to its tenant's RESULTS account (ResultsUsage).
	ResultBytes int64
	// Due is set by Finish: the webhook event of the document's backfill
	// that counting this document made due (nil for none). Exactly one
	// Finish call, across every worker, sees each event due.
	Due *BackfillEvent
}

// Finish writes each job's final state in one round trip and returns the
// status each job ends with, which differs from the one given when an earlier
// delivery or a cancellation got there first. It sets fs[i].Due for a
// backfill document whose count made one of its backfill's webhook events
// due.
func (s *Store) Finish(ctx context.Context, fs []Final, now time.Time) ([]job.Status, error) {
	cmds := make([]*redis.Cmd, len(fs))
	var wait *redis.IntCmd
	run := func(p redis.Pipeliner) {
		for i, f := range fs {
			if f.Job.Backfill != "" {
				cmds[i] = s.bfFinish(ctx, p, f, now)
				continue
			}
			var code, msg string
			if f.Error != nil {
				code, msg = f.Error.Code, f.Error.Message
			}
			var timings []byte
			if f.Timings != nil {
				timings, _ = json.Marshal(f.Timings)
			}
			j := f.Job
			cmds[i] = finishScript.EvalSha(ctx, p, []string{Key(j.Tenant, j.ID)},
				string(f.Status), []byte(f.Result), code, msg, f.Attempts, now.UnixMilli(), s.ttl(j).Milliseconds(),
				timings, j.Task, string(j.Lane), ms(j.Created), j.Backfill, j.DocID, ms(f.Started))
		}
		wait = s.confirm.queue(ctx, p)
	}
	if err := pipeline(ctx, s.rdb, run, finishScript, bfFinishScript); err != nil {
		return nil, fmt.Errorf("finish %d jobs: %w", len(fs), err)
	}
	if err := s.confirm.check(wait); err != nil {
		return nil, fmt.Errorf("finish %d jobs: %w", len(fs), err)
	}
	out := make([]job.Status, len(fs))
	for i, c := range cmds {
		if fs[i].Job.Backfill != "" {
			st, due := BackfillEventOf(c.Val(), fs[i].Job.Tenant, fs[i].Job.Backfill, now)
			out[i], fs[i].Due = job.Status(st), due
			continue
		}
		out[i] = job.Status(c.Val().(string))
	}
	return out, nil
}

// cancelScript cancels a queued job. It answers the status the job now has,
// or false when there is no such job.
var cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if st ~= 'queued' then return st end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished', ARGV[1], 'err_code', 'canceled', 'err_msg', 'canceled by the client')
return 'canceled'
`)

// Cancel cancels a job that has not started. It returns the job's status
// afterwards: canceled, or the status that prevented it; ErrNotFound when
// the tenant has no such job.
func (s *Store) Cancel(ctx context.Context, tenant, id string, now time.Time) (job.Status, error) {
	v, err := cancelScript.Run(ctx, s.rdb, []string{Key(tenant, id)}, now.UnixMilli()).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("cancel job %s: %w", id, err)
	}
	st, _ := v.(string)
	return job.Status(st), nil
}

// Get returns the record of a tenant's job, or ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (*job.Record, error) {
	m, err := s.rdb.HGetAll(ctx, Key(tenant, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if len(m) == 0 || m["status"] == "" {
		return nil, ErrNotFound
	}
	return decodeRecord(tenant, id, m), nil
}

func decodeRecord(tenant, id string, m map[string]string) *job.Record {
	r := &job.Record{
		ID:       id,
		Tenant:   tenant,
		Task:     m["task"],
		Lane:     job.Lane(m["lane"]),
		Status:   job.Status(m["status"]),
		Backfill: m["backfill"],
		DocID:    m["doc_id"],
		Created:  MillisTime(m["created"]),
		Started:  MillisTime(m["started"]),
		Finished: MillisTime(m["finished"]),
	}
	r.Attempts, _ = strconv.Atoi(m["attempts"])
	if v := m["result"]; v != "" {
		r.Result = json.RawMessage(v)
	}
	if c := m["err_code"]; c != "" {
		r.Error = &job.Error{Code: c, Message: m["err_msg"]}
	}
	if v := m["timings"]; v != "" {
		var t job.Timings
		if json.Unmarshal([]byte(v), &t) == nil {
			r.Timings = &t
		}
	}
	return r
}

// MillisTime reads a time stored in Redis as Unix milliseconds; "" and "0"
// are the zero time.
func MillisTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// abandonScript deletes a record that is still queued.
var abandonScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Abandon deletes the record of a job that was never enqueued (its publish
// failed), so that a retry with the same Idempotency-Key starts afresh.
func (s *Store) Abandon(ctx context.Context, tenant, id string) error {
	if err := abandonScript.Run(ctx, s.rdb, []string{Key(tenant, id)}).Err(); err != nil {
		return fmt.Errorf("abandon job %s: %w", id, err)
	}
	return nil
}

// MarkDead writes the dead state of j, with why and after how many
// deliveries, unless j has a final state already. It returns the status j
// ends with.
func (s *Store) MarkDead(ctx context.Context, j *job.Job, e *job.Error, attempts int, now time.Time) (job.Status, error) {
	sts, err := s.Finish(ctx, []Final{{Job: j, Status: job.StatusDead, Error: e, Attempts: attempts}}, now)
	if err != nil {
		return "", err
	}
	return sts[0], nil
}

// requeueScript resets a dead job to queued for a replay, or recreates the
// record of a dead job whose record expired. It answers the status the job
// had: dead or false when it requeued it, anything else when it did not.
var requeueScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if st and st ~= 'dead' then return st end
redis.call('HDEL', KEYS[1], 'result', 'err_code', 'err_msg', 'started', 'finished', 'timings')
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'task', ARGV[1], 'lane', ARGV[2],
  'created', ARGV[3], 'backfill', ARGV[4], 'doc_id', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return st
`)

// Requeue resets the record of a dead job to queued so that it can be
// replayed. It returns ok false, with the job's status, when the job is not
// dead (a replay already under way, say).
func (s *Store) Requeue(ctx context.Context, j *job.Job) (prev job.Status, ok bool, err error) {
	v, err := requeueScript.Run(ctx, s.rdb, []string{Key(j.Tenant, j.ID)},
		j.Task, string(j.Lane), ms(j.Created), j.Backfill, j.DocID, s.ttl(j).Milliseconds()).Result()
	if errors.Is(err, redis.Nil) {
		return "", true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("requeue job %s: %w", j.ID, err)
	}
	st, _ := v.(string)
	return job.Status(st), job.Status(st) == job.StatusDead, nil
}
