package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/queue"
)

func init() {
	register(command{group: "streams", name: "setup", summary: "create or update the JetStream streams",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var nc config.NATS
			nc.RegisterFlags(fs)
			replicas := fs.Int("replicas", 1, "stream replicas (3 on a cluster)")
			return func(ctx context.Context, e *env) error {
				q, closeFn, err := connectQueue(nc)
				if err != nil {
					return err
				}
				defer closeFn()
				t := queue.DefaultTopology()
				t.Replicas = *replicas
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := q.EnsureStreams(ctx, t); err != nil {
					return err
				}
				for _, s := range t.Streams() {
					fmt.Fprintf(e.stdout, "stream %s ok (%d replicas)\n", s.Name, s.Replicas)
				}
				return nil
			}
		}})
}

// connectQueue connects to NATS for a one-shot command.
func connectQueue(c config.NATS) (*queue.Client, func(), error) {
	opts := []nats.Option{nats.Name("jetinferctl"), nats.Timeout(5 * time.Second)}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	q, err := queue.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, err
	}
	return q, q.Conn().Close, nil
}
