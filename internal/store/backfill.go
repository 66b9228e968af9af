package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Backfill documents have no job record. Their state lives in two compact
// structures per backfill (see doc.go):
//
//   - the backfill hash BackfillKey: lifecycle and counters;
//   - the document marks DocKey: 65,536 small hashes (buckets) keyed by the
//     first 16 bits of a 64-bit fingerprint of the document id, each field
//     the remaining 48 bits and each value one byte: q (submitted), s, f, d
//     or c (final: succeeded, failed, dead, canceled).
//
// The marks make "first final wins" and "a document id is processed once"
// hold without a record per document.

// DocBuckets is the number of mark buckets of a backfill.
const DocBuckets = 1 << 16

// BackfillKey is the Redis hash of a backfill's lifecycle and counters.
func BackfillKey(tenant, id string) string { return "ji:bf:{" + tenant + "}:" + id }

// BackfillIndexKey is the sorted set of a tenant's backfills, newest last:
// every member scores 0 and is the creation time in milliseconds,
// zero-padded to 13 digits, a colon and the backfill id, so that the set's
// lexical order is creation order and a member is a stable page cursor. It
// shares the tenant's hash slot with the backfill hashes.
func BackfillIndexKey(tenant string) string { return "ji:bfi:{" + tenant + "}" }

// DocMark locates the mark of one document: its bucket key and field.
type DocMark struct {
	Key   string
	Field string
}

// MarkOf returns where the mark of docID in backfill id of tenant lives.
func MarkOf(tenant, id, docID string) DocMark {
	h := sha256.Sum256([]byte(docID))
	return DocMark{
		Key:   "ji:bfd:{" + tenant + "}:" + id + ":" + hex.EncodeToString(h[:2]),
		Field: string(h[2:8]),
	}
}

// ReuseKey is the key of the cached result of an input under a model
// version and options: identical inputs reuse it instead of running the
// model. A pair's second text is part of the input (one query against many
// passages gives many results).
//
// The cache is scoped to tenant, so that a reused result tells a tenant
// only that it has run that text itself; an empty tenant gives the key
// shared by every tenant, which a deployment may choose (the worker's
// --reuse-across-tenants) where its tenants trust one another.
func ReuseKey(tenant, task, version string, in job.Input, opts job.Options) string {
	o, _ := json.Marshal(opts)
	text := in.Text
	if in.TextPair != "" || len(in.Documents) > 0 {
		d, _ := json.Marshal(in)
		text = string(d)
	}
	h := sha256.New()
	for _, s := range []string{task, version, string(o), text} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := hex.EncodeToString(h.Sum(nil)[:16])
	if tenant == "" {
		return "ji:reuse:" + task + ":" + sum
	}
	// The tenant is a hash tag, as in every other tenant key.
	return "ji:reuse:{" + tenant + "}:" + task + ":" + sum
}

// bfStartScript decides whether a backfill document runs. It answers the
// final status of a document that has one (an earlier delivery finished it),
// canceled for a document of a canceled backfill (counted once, so that the
// backfill's pending count drains), or running.
var bfStartScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
if v == 's' then return 'succeeded' elseif v == 'f' then return 'failed'
elseif v == 'd' then return 'dead' elseif v == 'c' then return 'canceled' end
if redis.call('HGET', KEYS[1], 'state') == 'canceled' then
  if not v then redis.call('HINCRBY', KEYS[1], 'submitted', 1) end
  redis.call('HSET', KEYS[2], ARGV[1], 'c')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'canceled', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 'canceled'
end
return 'running'
`)

// bfFinishScript records a backfill document's final status unless it has
// one: the first final wins and is counted exactly once. A document whose
// submission mark is missing (ingest published it but has not marked it
// yet, or crashed in between) is counted as submitted here; ingest's mark
// then finds it and does not count it again. When the backfill is sealed
// and nothing is pending it becomes completed.
//
// The same step decides the backfill's webhook events, so that however many
// workers race, exactly one of them sees each: the document whose count
// completes the backfill makes backfill.completed due, and, when the
// backfill asks for progress every N results, the one whose count brings
// the results (succeeded, failed, dead) to a multiple of N makes
// backfill.progress due. Counts move by one per call, so every multiple is
// met exactly once. A due event is answered as a table (see bfEventOf):
// the status, the event, and the hash's fields the event reports.
//
// A document counted final whose result went to RESULTS (ARGV[6], its
// bytes there, is above 0) adds those bytes to the tenant's RESULTS
// account (results.go): the backfill hash's res_bytes and res_msgs, and the
// backfill's membership of the tenant's set of backfills holding results,
// KEYS[3]. Counting here, once per final, means a result republished by a
// redelivery (which JetStream drops as a duplicate) is not counted twice.
//
// A document already final in a completed backfill that has a webhook
// makes backfill.completed due again. That is the redelivery of a batch
// whose worker stored the completion and died before it queued the event
// and acknowledged the documents: without it the event would be lost. A
// repeat queues the same event id, which WEBHOOKS de-duplicates within its
// window and receivers by webhook-id after it.
var bfFinishScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
local final = ({s = 'succeeded', f = 'failed', d = 'dead', c = 'canceled'})[v]
if final then
  local g = redis.call('HMGET', KEYS[1], 'state', 'webhook')
  if g[1] ~= 'completed' or not g[2] or g[2] == '' then return final end
  local status, ev = final, 'completed'
` + BackfillEventLua + `
end
if redis.call('EXISTS', KEYS[1]) == 0 then return ARGV[2] end
redis.call('HSET', KEYS[2], ARGV[1], string.sub(ARGV[2], 1, 1))
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if not v then redis.call('HINCRBY', KEYS[1], 'submitted', 1) end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'reused', 1) end
if tonumber(ARGV[6]) > 0 then
  redis.call('HINCRBY', KEYS[1], 'res_bytes', ARGV[6])
  redis.call('HINCRBY', KEYS[1], 'res_msgs', 1)
  redis.call('SADD', KEYS[3], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('HSETNX', KEYS[1], 'first_ms', ARGV[3])
redis.call('HSET', KEYS[1], 'last_ms', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local h = redis.call('HMGET', KEYS[1], 'state', 'submitted', 'succeeded', 'failed', 'dead', 'canceled', 'webhook', 'progress_every')
local results = (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0) + (tonumber(h[5]) or 0)
local ev = ''
if h[1] == 'sealed' and results + (tonumber(h[6]) or 0) >= (tonumber(h[2]) or 0) then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'finished_ms', ARGV[3])
  ev = 'completed'
elseif (tonumber(h[8]) or 0) > 0 and results % tonumber(h[8]) == 0 then
  ev = 'progress'
end
if ev == 'completed' then redis.call('HSET', KEYS[1], 'ended_event', 1) end
if ev == '' or not h[7] or h[7] == '' then return ARGV[2] end
local status = ARGV[2]
` + BackfillEventLua)

// BackfillEventLua ends a script that made a backfill webhook event due:
// with the locals status (the script's own answer) and ev (the event's
// kind) set, it answers the table BackfillEventOf reads, from the backfill
// hash KEYS[1].
const BackfillEventLua = `
local f = redis.call('HMGET', KEYS[1], 'state', 'webhook', 'task', 'name', 'submitted', 'succeeded', 'failed', 'dead', 'canceled', 'reused')
return {status, ev, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '0', f[6] or '0', f[7] or '0', f[8] or '0', f[9] or '0', f[10] or '0'}
`

// BackfillEvent is a backfill webhook event the finish step made due: the
// backfill's state and counts at that step, and the endpoint to tell.
type BackfillEvent struct {
	// Kind is "completed" or "progress".
	Kind     string
	Tenant   string
	Backfill string
	// Webhook is the id of the endpoint the backfill names.
	Webhook string
	Task    string
	Name    string
	// State is the backfill's state after the step: completed, or (for
	// progress) open or sealed; an ingest cancel reports canceled.
	State                                                string
	Submitted, Succeeded, Failed, Dead, Canceled, Reused int64
	// At is when the step ran.
	At time.Time
}

// Results is the number of documents with a result line: the count a
// progress event is due at multiples of.
func (e BackfillEvent) Results() int64 { return e.Succeeded + e.Failed + e.Dead }

// BackfillEventOf reads the answer of a script that ends with
// BackfillEventLua, run on tenant's backfill at now: the script's status
// and the event it made due, if any (a plain string answer is a status
// alone).
func BackfillEventOf(v any, tenant, backfill string, now time.Time) (string, *BackfillEvent) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	a, _ := v.([]any)
	if len(a) != 12 {
		return "", nil
	}
	str := func(i int) string { s, _ := a[i].(string); return s }
	n := func(i int) int64 { x, _ := strconv.ParseInt(str(i), 10, 64); return x }
	return str(0), &BackfillEvent{Kind: str(1), Tenant: tenant, Backfill: backfill, State: str(2),
		Webhook: str(3), Task: str(4), Name: str(5), Submitted: n(6), Succeeded: n(7), Failed: n(8), Dead: n(9),
		Canceled: n(10), Reused: n(11), At: now.UTC()}
}

// DocTTL is how long a backfill's marks and hash live after their last
// write; it matches the RESULTS stream's retention. Every script that writes
// the hash refreshes its expiry, so an active backfill never expires.
const DocTTL = 7 * 24 * time.Hour

// WithDocTTL returns a copy of s that keeps backfill marks and hashes d
// after their last write instead of DocTTL (d <= 0 keeps DocTTL). Tests use
// a short one to watch an active backfill outlive it.
func (s *Store) WithDocTTL(d time.Duration) *Store {
	c := *s
	c.docTTL = d
	return &c
}

func (s *Store) docTTLOrDefault() time.Duration {
	if s.docTTL > 0 {
		return s.docTTL
	}
	return DocTTL
}

func (s *Store) bfStart(ctx context.Context, p redis.Pipeliner, j *job.Job) *redis.Cmd {
	m := MarkOf(j.Tenant, j.Backfill, j.DocID)
	return bfStartScript.EvalSha(ctx, p, []string{BackfillKey(j.Tenant, j.Backfill), m.Key}, m.Field, s.docTTLOrDefault().Milliseconds())
}

func (s *Store) bfFinish(ctx context.Context, p redis.Pipeliner, f Final, now time.Time) *redis.Cmd {
	j := f.Job
	m := MarkOf(j.Tenant, j.Backfill, j.DocID)
	reused := "0"
	if f.Reused {
		reused = "1"
	}
	if f.ReuseKey != "" && f.Status == job.StatusSucceeded && !f.Reused {
		p.Set(ctx, f.ReuseKey, []byte(f.Result), ReuseTTL)
	}
	return bfFinishScript.EvalSha(ctx, p, []string{BackfillKey(j.Tenant, j.Backfill), m.Key, ResultsHeldKey(j.Tenant)},
		m.Field, string(f.Status), now.UnixMilli(), reused, s.docTTLOrDefault().Milliseconds(), max(f.ResultBytes, 0), j.Backfill)
}

// ReuseTTL is how long a cached result can be reused.
const ReuseTTL = 7 * 24 * time.Hour

// Reusable returns the cached result under each key, nil where there is
// none, in one round trip.
func (s *Store) Reusable(ctx context.Context, keys []string) ([]json.RawMessage, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("reusable results: %w", err)
	}
	out := make([]json.RawMessage, len(keys))
	for i, c := range cmds {
		if b, err := c.Bytes(); err == nil && len(b) > 0 {
			out[i] = json.RawMessage(b)
		}
	}
	return out, nil
}
