// Command worker pulls jobs from NATS JetStream, batches them, runs them
// through ONNX Runtime, and delivers each result to the result store and the
// job's reply subject.
package main

import (
	"context"
	"log/slog"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
)

func main() {
	var cfg config.Worker
	app.Main("worker", cfg.RegisterFlags, &cfg.Log, func(ctx context.Context, log *slog.Logger) error {
		return app.RunWorker(ctx, cfg, log, app.Hooks{})
	})
}
