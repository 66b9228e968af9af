// Command worker pulls jobs from NATS JetStream, batches them, runs them
// through ONNX Runtime, and delivers each result to the result store and the
// job's reply subject.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg config.Worker
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	log := telemetry.NewLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	return app.RunWorker(ctx, cfg, log, app.Hooks{})
}
