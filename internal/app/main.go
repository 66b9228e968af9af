package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// Main is the main function of a jetinfer process: it reads its flags and
// JETINFER_* variables (register adds the flags; logCfg is filled by them),
// builds the logger, and calls run until SIGINT or SIGTERM ends its context.
// An error (but not -help) is printed as "name: error" and exits 1.
func Main(name string, register func(*flag.FlagSet), logCfg *config.Log, run func(context.Context, *slog.Logger) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := mainErr(ctx, name, os.Args[1:], register, logCfg, run)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		}
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, name string, args []string, register func(*flag.FlagSet), logCfg *config.Log,
	run func(context.Context, *slog.Logger) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	register(fs)
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	return run(ctx, telemetry.NewLogger(os.Stderr, logCfg.Level, logCfg.Format))
}
