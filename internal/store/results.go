package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The RESULTS account: how many bytes of backfill results each tenant holds
// in the RESULTS stream, not yet exported and purged, so that one tenant
// over its share of the stream is refused and held alone (tenant.
// ResultShares) instead of filling the stream for every tenant.
//
// It is kept per backfill, in the backfill hash's res_bytes and res_msgs:
// the worker's finish step (bfFinishScript) adds each result it published
// as it counts the document final, and a purge of the backfill's results
// re-derives them from what the stream still holds (ResultsLeft). A tenant's
// usage is the sum over its backfills holding results, which the set
// ResultsHeldKey lists. Every key carries the tenant's hash tag, so the
// account works on Redis Cluster.
//
// What drifts, and how it is corrected:
//
//   - Results ageing out of RESULTS (its max age) are not subtracted when
//     they go. A backfill hash expires DocTTL, the stream's max age, after
//     its last write, with its counts; the usage sum drops a backfill whose
//     hash is gone (and the set itself expires with the last of them).
//     Results of a backfill that ran for longer than the max age, aged out
//     while it still ran, are counted until its next purge.
//   - A purge through a sequence frees the removed messages' share of the
//     backfill's bytes at their average size; a purge of everything frees
//     all of them exactly. Each purge re-derives the message count from the
//     stream, so errors do not accumulate over purges.
//   - A result published while a purge counts what is left may be counted
//     once too often until the next purge.
//
// Counts never go below zero.

// ResultsHeldKey is the set of tenant's backfills with results counted in
// RESULTS (res_bytes above 0 in their hash). It shares the tenant's hash
// slot with the backfill hashes.
func ResultsHeldKey(tenant string) string { return "ji:bfr:{" + tenant + "}" }

// resultsLeftScript re-derives a backfill's RESULTS account after a purge:
// ARGV[1] is how many of its results the stream still holds. It answers
// the bytes freed. A count above the account's (a result published after
// the purge and not counted yet) changes nothing: its finish counts it.
var resultsLeftScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
local h = redis.call('HMGET', KEYS[1], 'res_bytes', 'res_msgs')
local bytes, msgs = math.max(tonumber(h[1]) or 0, 0), math.max(tonumber(h[2]) or 0, 0)
local left = math.max(tonumber(ARGV[1]), 0)
if left >= msgs then
  if bytes <= 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
  return 0
end
local keep = 0
if left > 0 then keep = math.floor(bytes * left / msgs) end
redis.call('HSET', KEYS[1], 'res_bytes', keep, 'res_msgs', left)
if keep <= 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return bytes - keep
`)

// dropHeldScript removes a backfill from its tenant's set of backfills
// holding results when, checked atomically, its hash is gone or holds no
// bytes (a finish may have counted one since the caller looked).
var dropHeldScript = redis.NewScript(`
local b = tonumber(redis.call('HGET', KEYS[1], 'res_bytes') or '0') or 0
if b <= 0 then redis.call('SREM', KEYS[2], ARGV[1]) return 1 end
return 0
`)

// ResultsLeft records that RESULTS holds left results of tenant's
// backfill after a purge, and returns the bytes this freed from the
// tenant's account.
func (s *Store) ResultsLeft(ctx context.Context, tenant, backfill string, left uint64) (int64, error) {
	n, err := resultsLeftScript.Run(ctx, s.rdb, []string{BackfillKey(tenant, backfill), ResultsHeldKey(tenant)},
		strconv.FormatUint(left, 10), backfill).Int64()
	if err != nil {
		return 0, fmt.Errorf("results account of backfill %s: %w", backfill, err)
	}
	return n, nil
}

// ResultsUsage returns the bytes of backfill results tenant holds in
// RESULTS by the account, in two round trips (and a third for each
// backfill whose results are gone, which leaves the tenant's set). Its cost
// grows with the tenant's backfills holding results, not with their
// documents.
func (s *Store) ResultsUsage(ctx context.Context, tenant string) (int64, error) {
	ids, err := s.rdb.SMembers(ctx, ResultsHeldKey(tenant)).Result()
	if err != nil {
		return 0, fmt.Errorf("results account of tenant %s: %w", tenant, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, BackfillKey(tenant, id), "res_bytes")
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return 0, fmt.Errorf("results account of tenant %s: %w", tenant, err)
	}
	var sum int64
	for i, c := range cmds {
		n, _ := c.Int64()
		if n > 0 {
			sum += n
			continue
		}
		if err := dropHeldScript.Run(ctx, s.rdb, []string{BackfillKey(tenant, ids[i]), ResultsHeldKey(tenant)}, ids[i]).Err(); err != nil {
			return 0, fmt.Errorf("results account of tenant %s: %w", tenant, err)
		}
	}
	return sum, nil
}
