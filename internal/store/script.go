package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// pipeline runs fill's EVALSHAs of scripts in one round trip. When Redis has
// lost its script cache (a restart), none of them ran: it loads the scripts
// and runs the pipeline once more. Errors of single commands stay on their
// commands; the error returned is the first one met.
func pipeline(ctx context.Context, rdb redis.UniversalClient, fill func(redis.Pipeliner), scripts ...*redis.Script) error {
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		for _, s := range scripts {
			if err := s.Load(ctx, rdb).Err(); err != nil {
				return err
			}
		}
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
	}
	return err
}
