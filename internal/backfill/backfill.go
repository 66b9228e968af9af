package backfill

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// State is where a backfill stands.
type State string

// The states. Open accepts documents; Sealed accepts none and completes when
// nothing is pending; Completed and Canceled are final.
const (
	StateOpen      State = "open"
	StateSealed    State = "sealed"
	StateCompleted State = "completed"
	StateCanceled  State = "canceled"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound means the tenant has no such backfill.
	ErrNotFound = errors.New("backfill not found")
	// ErrNotOpen means the backfill no longer accepts documents.
	ErrNotOpen = errors.New("backfill not open")
)

// Backfill is one bulk run of a task over many documents, with its progress.
type Backfill struct {
	ID       string      `json:"id"`
	Tenant   string      `json:"-"`
	Task     string      `json:"task"`
	Name     string      `json:"name,omitempty"`
	Options  job.Options `json:"options,omitzero"`
	State    State       `json:"state"`
	Created  time.Time   `json:"created_at"`
	Sealed   time.Time   `json:"sealed_at,omitzero"`
	Finished time.Time   `json:"finished_at,omitzero"`
	// Webhook is the id of the tenant's registered endpoint told of the
	// backfill's progress and end; empty for none.
	Webhook string `json:"webhook,omitempty"`
	// ProgressEvery, when positive, asks for a backfill.progress event at
	// every multiple of that many results.
	ProgressEvery int64 `json:"progress_every,omitempty"`
	Counters
	// First and Last are when the first and the latest document finished.
	First time.Time `json:"-"`
	Last  time.Time `json:"-"`
}

// Counters count a backfill's documents. Every submitted document ends in
// exactly one of succeeded, failed, dead or canceled; reused counts the
// succeeded ones answered from the reuse cache.
type Counters struct {
	Submitted int64 `json:"submitted"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Dead      int64 `json:"dead"`
	Canceled  int64 `json:"canceled"`
	Reused    int64 `json:"reused"`
}

// Done is the number of documents in a final state.
func (c Counters) Done() int64 { return c.Succeeded + c.Failed + c.Dead + c.Canceled }

// Pending is the number of submitted documents not final yet.
func (c Counters) Pending() int64 { return max(c.Submitted-c.Done(), 0) }

// Store keeps backfills in Redis (key layout in package store).
type Store struct {
	rdb redis.UniversalClient
	ttl time.Duration
	// confirm is how many replicas must have a write that ingest answers
	// for (WithWait).
	confirm store.Confirm
}

// NewStore returns a store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb, ttl: store.DocTTL} }

// WithWait returns a copy of s whose writes that ingest acknowledges (a
// new backfill, documents marked submitted, a seal or a cancel) wait until
// replicas replicas have them, up to timeout, and fail wrapping
// store.ErrNotReplicated otherwise: a write acknowledged on the master
// alone is lost if a failover promotes a replica that never got it. Each is
// safe to repeat. replicas 0 does not wait.
func (s *Store) WithWait(replicas int, timeout time.Duration) *Store {
	c := *s
	c.confirm = store.Confirm{Replicas: replicas, Timeout: timeout}
	return &c
}

// WithTTL returns a copy of s whose writes keep the backfill hash and marks
// d after the latest write instead of store.DocTTL (d <= 0 keeps DocTTL).
// It must match the job store's (store.Store.WithDocTTL); tests shorten both.
func (s *Store) WithTTL(d time.Duration) *Store {
	c := *s
	if d > 0 {
		c.ttl = d
	}
	return &c
}

// Fingerprint is the 64-bit fingerprint of a document id by which a results
// export drops a document's second result (SHA-256, first 8 bytes).
func Fingerprint(docID string) uint64 {
	h := sha256.Sum256([]byte(docID))
	return binary.BigEndian.Uint64(h[:8])
}

// NewID returns a fresh backfill id: "bf_" and 20 base32 characters, usable
// as a NATS subject token.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "bf_" + job.IDEncoding.EncodeToString(b[:])
}

// createScript writes a new open backfill and indexes it, unless the id is
// taken (false): one atomic step, so that no half-written backfill is left
// by a failure between its writes. The index keeps the newest ARGV[9]
// backfills; entries whose backfill expired are dropped as List meets them.
var createScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'state', 'open') == 0 then return false end
redis.call('HSET', KEYS[1], 'task', ARGV[1], 'name', ARGV[2], 'options', ARGV[3], 'created_ms', ARGV[4],
  'webhook', ARGV[5], 'progress_every', ARGV[6], 'submitted', 0, 'succeeded', 0, 'failed', 0, 'dead', 0,
  'canceled', 0, 'reused', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], 0, ARGV[8])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[9]) - 1)
return 1
`)

// Create stores a new open backfill and fills in its id and creation time.
func (s *Store) Create(ctx context.Context, b *Backfill, now time.Time) error {
	if b.ID == "" {
		b.ID = NewID()
	}
	b.State, b.Created = StateOpen, now.UTC()
	opts, err := json.Marshal(b.Options)
	if err != nil {
		return fmt.Errorf("encode options: %w", err)
	}
	_, err = s.confirm.Eval(ctx, s.rdb, createScript,
		[]string{store.BackfillKey(b.Tenant, b.ID), store.BackfillIndexKey(b.Tenant)},
		b.Task, b.Name, opts, now.UnixMilli(), b.Webhook, b.ProgressEvery, s.ttl.Milliseconds(),
		indexMember(b.Created, b.ID), maxIndexed)
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("create backfill %s: id in use", b.ID)
	}
	if err != nil {
		return fmt.Errorf("create backfill: %w", err)
	}
	return nil
}

// Get returns the tenant's backfill id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Backfill, error) {
	m, err := s.rdb.HGetAll(ctx, store.BackfillKey(tenant, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get backfill %s: %w", id, err)
	}
	b := fromHash(tenant, id, m)
	if b == nil {
		return nil, ErrNotFound
	}
	return b, nil
}

// fromHash decodes the backfill hash m; nil when m holds no backfill.
func fromHash(tenant, id string, m map[string]string) *Backfill {
	if m["state"] == "" || m["task"] == "" {
		return nil
	}
	b := &Backfill{ID: id, Tenant: tenant, Task: m["task"], Name: m["name"], State: State(m["state"]),
		Created: store.MillisTime(m["created_ms"]), Sealed: store.MillisTime(m["sealed_ms"]), Finished: store.MillisTime(m["finished_ms"]),
		First: store.MillisTime(m["first_ms"]), Last: store.MillisTime(m["last_ms"]), Webhook: m["webhook"]}
	_ = json.Unmarshal([]byte(m["options"]), &b.Options)
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	b.ProgressEvery = n("progress_every")
	b.Counters = Counters{Submitted: n("submitted"), Succeeded: n("succeeded"), Failed: n("failed"),
		Dead: n("dead"), Canceled: n("canceled"), Reused: n("reused")}
	return b
}

// sealScript seals an open backfill and completes it at once when nothing
// is pending. It answers the state the backfill now has, or false. Like
// every write to the hash, it restarts the hash's expiry (ARGV[2]).
var sealScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st ~= 'open' then return st end
redis.call('HSET', KEYS[1], 'state', 'sealed', 'sealed_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'submitted', 'succeeded', 'failed', 'dead', 'canceled')
if (tonumber(h[2]) or 0) + (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0) + (tonumber(h[5]) or 0) >= (tonumber(h[1]) or 0) then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'finished_ms', ARGV[1])
  return 'completed'
end
return 'sealed'
`)

// cancelScript cancels a backfill that is not final. Workers then skip its
// remaining documents, counting them canceled.
var cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st == 'completed' or st == 'canceled' then return st end
redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 'canceled'
`)

// Seal closes the backfill to new documents. It returns the state the
// backfill has afterwards (sealed, or completed when nothing is pending; an
// already sealed or final backfill keeps its state).
func (s *Store) Seal(ctx context.Context, tenant, id string, now time.Time) (State, error) {
	return s.transition(ctx, sealScript, tenant, id, now)
}

// Cancel cancels the backfill. It returns the state the backfill has
// afterwards: canceled, or completed when it had finished already.
func (s *Store) Cancel(ctx context.Context, tenant, id string, now time.Time) (State, error) {
	return s.transition(ctx, cancelScript, tenant, id, now)
}

func (s *Store) transition(ctx context.Context, sc *redis.Script, tenant, id string, now time.Time) (State, error) {
	cmd, err := s.confirm.Eval(ctx, s.rdb, sc, []string{store.BackfillKey(tenant, id)}, now.UnixMilli(), s.ttl.Milliseconds())
	v := cmd.Val()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("backfill %s: %w", id, err)
	}
	st, _ := v.(string)
	return State(st), nil
}

// claimEndedScript makes the backfill.completed event of a backfill that
// ended by a seal or a cancel (not by a worker's count, which claims its
// own in the same step) due exactly once: the first caller to find the
// backfill final claims it, however many ingests race or a client retries.
var claimEndedScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'webhook')
if (h[1] ~= 'completed' and h[1] ~= 'canceled') or not h[2] or h[2] == '' then return false end
if redis.call('HSETNX', KEYS[1], 'ended_event', 1) == 0 then return false end
local status, ev = h[1], 'completed'
` + store.BackfillEventLua)

// ClaimEnded returns the backfill.completed event of tenant's backfill id
// when the backfill has ended, names a webhook endpoint, and nobody has
// claimed the event yet; nil otherwise. Ingest calls it after a seal or a
// cancel and queues the event it gets.
func (s *Store) ClaimEnded(ctx context.Context, tenant, id string, now time.Time) (*store.BackfillEvent, error) {
	v, err := claimEndedScript.Run(ctx, s.rdb, []string{store.BackfillKey(tenant, id)}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backfill %s: %w", id, err)
	}
	_, ev := store.BackfillEventOf(v, tenant, id, now)
	return ev, nil
}

// ReleaseEnded gives back the claim of ClaimEnded when its event could not
// be queued, so that the next seal or cancel of the backfill claims it.
func (s *Store) ReleaseEnded(ctx context.Context, tenant, id string) error {
	if err := s.rdb.HDel(ctx, store.BackfillKey(tenant, id), "ended_event").Err(); err != nil {
		return fmt.Errorf("backfill %s: %w", id, err)
	}
	return nil
}

// NotOpenError is the error of Known and Mark for a backfill that takes no
// more documents; it wraps ErrNotOpen and names the state.
type NotOpenError struct {
	ID    string
	State State
}

func (e *NotOpenError) Error() string {
	return fmt.Sprintf("backfill %s is %s and takes no more documents", e.ID, e.State)
}

// Unwrap makes errors.Is(err, ErrNotOpen) true.
func (e *NotOpenError) Unwrap() error { return ErrNotOpen }

// knownScript answers the backfill's state and, when it is open, whether
// each document is marked already: one atomic read, so that a chunk is
// never admitted (nor charged quota) for a backfill sealed or canceled
// since the request began.
var knownScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
local out = {st}
if st ~= 'open' then return out end
for i = 2, #KEYS do
  out[i] = redis.call('HEXISTS', KEYS[i], ARGV[i - 1])
end
return out
`)

// Known reports, for each document id, whether the backfill has it
// already (submitted or final), in one round trip. It answers ErrNotFound
// for a missing backfill and a *NotOpenError for one that is not open.
//
// With WithWait, what it reports known is on the replicas too: the WAIT
// that follows it (behind a fence write, see store.Confirm) covers every
// mark written before it. A chunk resent after a Mark the replicas did not
// confirm is thus not answered as stored until they have it.
func (s *Store) Known(ctx context.Context, tenant, id string, docIDs []string) ([]bool, error) {
	keys := make([]string, 1, len(docIDs)+1)
	keys[0] = store.BackfillKey(tenant, id)
	args := make([]any, 0, len(docIDs))
	for _, d := range docIDs {
		m := store.MarkOf(tenant, id, d)
		keys = append(keys, m.Key)
		args = append(args, m.Field)
	}
	cmd, err := s.confirm.Eval(ctx, s.rdb, knownScript, keys, args...)
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("known documents: %w", err)
	}
	v, err := cmd.Slice()
	if err != nil {
		return nil, fmt.Errorf("known documents: %w", err)
	}
	if st, _ := v[0].(string); State(st) != StateOpen {
		return nil, &NotOpenError{ID: id, State: State(st)}
	}
	if len(v) != len(docIDs)+1 {
		return nil, fmt.Errorf("known documents: unexpected script reply of %d items", len(v))
	}
	out := make([]bool, len(docIDs))
	for i := range docIDs {
		n, _ := v[i+1].(int64)
		out[i] = n == 1
	}
	return out, nil
}

// markScript marks the documents JetStream confirmed as submitted, each
// unless it is marked already (a re-send, or a worker that finished it
// first and counted it), and counts the new marks. It refuses, marking
// nothing, once the backfill is gone ({-1}) or not open ({-2, state}): a
// seal or cancel between the chunk's Known and its Mark is seen here, in
// the same atomic step that would count the documents. It restarts the
// expiry of the hash too, so that a backfill still receiving documents
// never expires.
var markScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {-1} end
if st ~= 'open' then return {-2, st} end
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('HSETNX', KEYS[i], ARGV[i], 'q')
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
if n > 0 then redis.call('HINCRBY', KEYS[1], 'submitted', n) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {n}
`)

// Mark records that JetStream holds the documents docIDs, counting those
// not counted yet as submitted. It returns how many it counted, or
// ErrNotFound, or a *NotOpenError when the backfill is no longer open (the
// documents are then left to the workers: they count a document of a
// canceled backfill canceled, and any other on its final status).
func (s *Store) Mark(ctx context.Context, tenant, id string, docIDs []string) (int64, error) {
	if len(docIDs) == 0 {
		return 0, nil
	}
	keys := make([]string, 1, len(docIDs)+1)
	keys[0] = store.BackfillKey(tenant, id)
	args := make([]any, 1, len(docIDs)+1)
	args[0] = s.ttl.Milliseconds()
	for _, d := range docIDs {
		m := store.MarkOf(tenant, id, d)
		keys = append(keys, m.Key)
		args = append(args, m.Field)
	}
	cmd, err := s.confirm.Eval(ctx, s.rdb, markScript, keys, args...)
	if err != nil {
		return 0, fmt.Errorf("mark documents: %w", err)
	}
	v, err := cmd.Slice()
	if err != nil {
		return 0, fmt.Errorf("mark documents: %w", err)
	}
	n, _ := v[0].(int64)
	switch {
	case n == -1:
		return 0, ErrNotFound
	case n == -2 && len(v) == 2:
		st, _ := v[1].(string)
		return 0, &NotOpenError{ID: id, State: State(st)}
	case n < 0:
		return 0, fmt.Errorf("mark documents: unexpected script reply %v", v)
	}
	return n, nil
}
