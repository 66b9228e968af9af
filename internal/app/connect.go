package app

import (
	"context"
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

// openStore connects to Redis (one node, Sentinel or Cluster, as the URL
// says) and checks it answers. A Redis that is loading
// its data set or failing over is waited for (c.StartWait, saying so in the
// log); one that keeps failing, or fails otherwise, fails the start. The
// store's acknowledging writes wait for replicas as w says.
func openStore(ctx context.Context, c config.Redis, w config.RedisWait, ttl time.Duration, log *slog.Logger) (redis.UniversalClient, *store.Store, error) {
	rdb, err := store.Open(ctx, c.URL, c.StartWait, log)
	if err != nil {
		return nil, nil, err
	}
	return rdb, store.New(rdb, ttl).WithWait(w.Replicas, w.Timeout), nil
}
