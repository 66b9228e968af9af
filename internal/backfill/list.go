package backfill

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/store"
)

// maxIndexed bounds the backfills a tenant's index lists: creating more
// drops the oldest from the list (not the backfills themselves, which stay
// reachable by id until they expire).
const maxIndexed = 10000

// Page is one page of a tenant's backfills, newest first.
type Page struct {
	Backfills []*Backfill
	// Next is the cursor of the following page; empty on the last one.
	Next string
}

// indexMember is a backfill's member in its tenant's index (see
// store.BackfillIndexKey).
func indexMember(created time.Time, id string) string {
	return fmt.Sprintf("%013d:%s", max(created.UnixMilli(), 0), id)
}

// ValidCursor reports whether c can be a cursor List returned.
func ValidCursor(c string) bool {
	ms, id, ok := strings.Cut(c, ":")
	if !ok || len(ms) != 13 || !strings.HasPrefix(id, "bf_") || len(id) > 64 {
		return false
	}
	_, err := strconv.ParseUint(ms, 10, 64)
	return err == nil
}

// List returns up to limit of the tenant's backfills, newest first, starting
// after the cursor before ("" for the newest). Backfills that expired are
// skipped and dropped from the index. It costs two round trips a page.
func (s *Store) List(ctx context.Context, tenant, before string, limit int) (Page, error) {
	if limit <= 0 {
		return Page{}, nil
	}
	index := store.BackfillIndexKey(tenant)
	start := "+"
	if before != "" {
		start = "(" + before
	}
	var page Page
	// Expired entries are skipped, so a page is read until it is full or
	// the index ends.
	for len(page.Backfills) < limit {
		want := limit - len(page.Backfills)
		members, err := s.rdb.ZRevRangeByLex(ctx, index, &redis.ZRangeBy{Max: start, Min: "-", Count: int64(want) + 1}).Result()
		if err != nil {
			return Page{}, fmt.Errorf("list backfills: %w", err)
		}
		more := len(members) > want
		if more {
			members = members[:want]
		}
		if len(members) == 0 {
			return page, nil
		}
		ids := make([]string, len(members))
		for i, m := range members {
			_, ids[i], _ = strings.Cut(m, ":")
		}
		found, err := s.getMany(ctx, tenant, ids)
		if err != nil {
			return Page{}, err
		}
		var gone []any
		for i, b := range found {
			if b == nil {
				gone = append(gone, members[i])
				continue
			}
			page.Backfills = append(page.Backfills, b)
		}
		if len(gone) > 0 {
			// Best effort: the next List drops them otherwise.
			_ = s.rdb.ZRem(ctx, index, gone...).Err()
		}
		last := members[len(members)-1]
		if !more {
			return page, nil
		}
		start = "(" + last
		if len(page.Backfills) == limit {
			page.Next = last
		}
	}
	return page, nil
}

// getMany reads the tenant's backfills ids in one round trip; a backfill
// that no longer exists is nil.
func (s *Store) getMany(ctx context.Context, tenant string, ids []string) ([]*Backfill, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, store.BackfillKey(tenant, id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	out := make([]*Backfill, len(ids))
	for i, id := range ids {
		out[i] = fromHash(tenant, id, cmds[i].Val())
	}
	return out, nil
}
