package app

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/store"
)

// openStore connects to Redis and checks it answers: both processes fail
// fast at start when the result store is unreachable.
func openStore(ctx context.Context, c config.Redis, ttl time.Duration) (*redis.Client, *store.Store, error) {
	opts, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	st := store.New(rdb, ttl)
	if err := st.Ping(ctx); err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return rdb, st, nil
}
