package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// runScript runs one script with EVALSHA, loading it on NOSCRIPT.
func runScript(ctx context.Context, rdb redis.Scripter, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return s.Run(ctx, rdb, keys, args...)
}

// pipeline runs fill's EVALSHAs of script in one round trip. When Redis has
// lost its script cache (a restart), it loads the script and runs the
// pipeline once more: the scripts are idempotent, so a partial first run is
// harmless.
func pipeline(ctx context.Context, rdb redis.UniversalClient, fill func(redis.Pipeliner), script *redis.Script) error {
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := script.Load(ctx, rdb).Err(); err != nil {
			return err
		}
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
	}
	return err
}
