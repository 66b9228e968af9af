// Command ingest is jetinfer's HTTP API: it authenticates and validates
// requests and publishes jobs to NATS JetStream.
package main

import (
	"context"
	"log/slog"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
)

func main() {
	var cfg config.Ingest
	app.Main("ingest", cfg.RegisterFlags, &cfg.Log, func(ctx context.Context, log *slog.Logger) error {
		return app.RunIngest(ctx, cfg, log, app.Hooks{})
	})
}
