package app

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"testing"

	"github.com/jetinfer/jetinfer/internal/config"
)

// TestMainErr: flags and JETINFER_* variables reach the configuration before
// run is called; -help and a bad flag stop before it.
func TestMainErr(t *testing.T) {
	t.Setenv("JETINFER_LOG_FORMAT", "text")
	var cfg config.Worker
	var got config.Worker
	run := func(ctx context.Context, log *slog.Logger) error {
		if log == nil {
			return errors.New("no logger")
		}
		got = cfg
		return nil
	}
	if err := mainErr(context.Background(), "worker", []string{"-batch-size", "7"}, cfg.RegisterFlags, &cfg.Log, run); err != nil {
		t.Fatal(err)
	}
	if got.BatchSize != 7 || got.Log.Format != "text" {
		t.Fatalf("run saw batch-size %d, log format %q; want 7 and text", got.BatchSize, got.Log.Format)
	}
	called := false
	run2 := func(context.Context, *slog.Logger) error { called = true; return nil }
	var cfg2 config.Worker
	if err := mainErr(context.Background(), "worker", []string{"-help"}, cfg2.RegisterFlags, &cfg2.Log, run2); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v", err)
	}
	var cfg3 config.Worker
	if err := mainErr(context.Background(), "worker", []string{"-no-such-flag"}, cfg3.RegisterFlags, &cfg3.Log, run2); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
	if called {
		t.Fatal("run was called after a flag error")
	}
}
