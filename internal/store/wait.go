package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/backoff"
)

// startBackoff is how often WaitReady asks again.
var startBackoff = backoff.Backoff{Base: 50 * time.Millisecond, Max: time.Second}

// Unready tells whether err is a state Redis leaves by itself soon, and which:
// loading its data set after a restart, a replica without its master, a
// cluster re-forming, or a server that does not answer (a restart, or the
// seconds of a Sentinel failover). Any other error (a wrong password, a
// bad URL) is no reason to wait.
func Unready(err error) (reason string, ok bool) {
	switch {
	case err == nil:
		return "", false
	case redis.IsLoadingError(err):
		return "loading its data set into memory", true
	case redis.IsMasterDownError(err):
		return "a replica whose master is down", true
	case redis.IsClusterDownError(err), redis.IsTryAgainError(err):
		return "a cluster re-forming", true
	case redis.IsReadOnlyError(err):
		return "a replica (a failover is under way)", true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return "not answering", true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "not answering", true
	}
	return "", false
}

// WaitReady pings Redis until it answers, waiting out the states Unready
// names for up to patience: a process started next to a Redis that is still
// reading its AOF, or during a failover, starts late instead of failing. It
// logs once when it starts waiting and every few seconds after, and fails
// with the reason when patience runs out or at once on any other error.
// name says what is reached (an address) in messages.
func WaitReady(ctx context.Context, rdb redis.UniversalClient, name string, patience time.Duration, log *slog.Logger) error {
	start := time.Now()
	lastLog := time.Time{}
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			if attempt > 1 && log != nil {
				log.InfoContext(ctx, "redis ready", slog.String("redis", name), slog.Duration("waited", time.Since(start).Round(time.Millisecond)))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("redis %s: %w", name, ctx.Err())
		}
		reason, ok := Unready(err)
		if !ok {
			return fmt.Errorf("redis %s: %w", name, err)
		}
		waited := time.Since(start)
		if waited >= patience {
			return fmt.Errorf("redis %s is still %s after %s (%v): check its log, or give it longer with --redis-start-wait",
				name, reason, waited.Round(100*time.Millisecond), err)
		}
		if log != nil && time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			log.WarnContext(ctx, "waiting for redis: "+reason, slog.String("redis", name),
				slog.Duration("waited", waited.Round(time.Millisecond)), slog.Duration("patience", patience), slog.Any("error", err))
		}
		if err := backoff.Sleep(ctx, min(startBackoff.Delay(attempt), patience-waited)); err != nil {
			return fmt.Errorf("redis %s: %w", name, err)
		}
	}
}
