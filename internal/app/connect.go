package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
)

// openQueue connects to NATS as name; the caller closes the connection.
func openQueue(c config.NATS, name string, log *slog.Logger) (*nats.Conn, *queue.Client, error) {
	q, err := queue.Connect(c.URL, natsOptions(c, name, log)...)
	if err != nil {
		return nil, nil, err
	}
	return q.Conn(), q, nil
}

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
