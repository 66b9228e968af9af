package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

// progressBar shows a backfill's progress: a bar redrawn in place on a
// terminal, or a plain line every ten polls otherwise (logs, CI).
type progressBar struct {
	w    io.Writer
	tty  bool
	poll time.Duration

	sent, duplicates, rejected counter
	exported                   counter // result lines in the results file

	mu    sync.Mutex
	drawn bool
	last  time.Time
}

// counter is a count that both the uploader and the poller touch.
type counter struct{ v atomic.Int64 }

func (c *counter) add(n int64) int64 { return c.v.Add(n) }
func (c *counter) load() int64       { return c.v.Load() }

func newProgressBar(w io.Writer, mode string, poll time.Duration) *progressBar {
	tty := false
	switch mode {
	case "yes":
		tty = true
	case "auto":
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				tty = true
			}
		}
	}
	return &progressBar{w: w, tty: tty, poll: max(poll, 100*time.Millisecond)}
}

// printf writes a message line without tearing the bar.
func (b *progressBar) printf(format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
	fmt.Fprintf(b.w, format+"\n", a...)
}

// follow polls the progress until ctx ends.
func (b *progressBar) follow(ctx context.Context, api *apiClient, id string) {
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p, err := api.progress(ctx, id); err == nil {
			b.show(p)
		}
	}
}

// awaitFinal polls until the backfill is completed or canceled.
func (b *progressBar) awaitFinal(ctx context.Context, api *apiClient, id string) (backfill.Progress, error) {
	for {
		p, err := api.progress(ctx, id)
		if err != nil {
			return p, err
		}
		if p.State == backfill.StateCompleted || p.State == backfill.StateCanceled {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(b.poll):
		}
	}
}

func (b *progressBar) show(p backfill.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := b.line(p)
	if b.tty {
		fmt.Fprint(b.w, "\r\033[K"+line)
		b.drawn = true
		return
	}
	if time.Since(b.last) >= 10*b.poll {
		b.last = time.Now()
		fmt.Fprintln(b.w, line)
	}
}

func (b *progressBar) line(p backfill.Progress) string {
	done := p.Done()
	frac := 0.0
	if p.Submitted > 0 {
		frac = float64(done) / float64(p.Submitted)
	}
	eta := "?"
	if p.EtaS != nil {
		eta = (time.Duration(*p.EtaS) * time.Second).String()
	}
	s := fmt.Sprintf("%5.1f%% %d/%d done (%d reused, %d failed, %d dead) %.0f docs/s ETA %s; sent %d, duplicates %d, rejected %d; exported %d",
		100*frac, done, p.Submitted, p.Reused, p.Failed, p.Dead, p.DocsPerS, eta, b.sent.load(), b.duplicates.load(), b.rejected.load(),
		b.exported.load())
	if !b.tty {
		return string(p.State) + " " + s
	}
	const width = 30
	n := int(frac * width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] " + s
}

func (b *progressBar) finish(p backfill.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
	fmt.Fprintln(b.w, b.line(p))
}
