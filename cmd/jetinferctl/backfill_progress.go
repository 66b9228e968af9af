package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

// progressBar shows a backfill's progress: a bar redrawn in place on a
// terminal, or a plain line every ten polls otherwise (logs, CI).
//
// Percent and ETA are of the whole input, not of what was sent so far:
// while the file is still being read, its total is estimated from the
// documents read per byte of the file; once it is all sent, the server's
// count is exact. On a terminal the line is cut to the terminal's width,
// so that "\r" redraws it in place instead of wrapping.
type progressBar struct {
	w     io.Writer
	tty   bool
	poll  time.Duration
	width func() int // terminal columns

	sent, duplicates, rejected counter
	exported                   counter // result lines in the results file

	// The input: its size in bytes, the bytes read from it and the
	// documents found in them, and whether all of it was sent. The poller
	// reads them while the upload writes them.
	inputSize          atomic.Int64
	inputRead, docRead counter
	uploaded           atomic.Bool

	mu    sync.Mutex
	drawn bool
	last  time.Time
	dead  map[string]*deadReason // dead documents exported, by error code
}

// deadReason counts the dead documents of one error code and keeps the
// first message as an example.
type deadReason struct {
	n       int64
	example string
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
	return &progressBar{w: w, tty: tty, poll: max(poll, 100*time.Millisecond), width: func() int { return termWidth(w) }}
}

// noteDead counts an exported dead document under its error code.
func (b *progressBar) noteDead(code, message string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead == nil {
		b.dead = map[string]*deadReason{}
	}
	r := b.dead[code]
	if r == nil {
		r = &deadReason{example: message}
		b.dead[code] = r
	}
	r.n++
}

// deadCodes returns the error codes of dead documents, most frequent
// first (then by name). b.mu must be held.
func (b *progressBar) deadCodes() []string {
	codes := make([]string, 0, len(b.dead))
	for c := range b.dead {
		codes = append(codes, c)
	}
	slices.SortFunc(codes, func(x, y string) int {
		if d := cmp.Compare(b.dead[y].n, b.dead[x].n); d != 0 {
			return d
		}
		return strings.Compare(x, y)
	})
	return codes
}

// reasons writes the dead documents by reason, with an example message
// each: what a user reads at the end of a run to decide what to change.
func (b *progressBar) reasons(w io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.deadCodes() {
		r := b.dead[c]
		fmt.Fprintf(w, "dead %s: %d (for example: %s)\n", c, r.n, r.example)
	}
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

// total returns the documents of the whole input: exact once all of it is
// sent (the server's count), estimated while it is read (the documents read
// so far over the share of the file's bytes read), and whether it is an
// estimate.
func (b *progressBar) total(p backfill.Progress) (int64, bool) {
	size := b.inputSize.Load()
	if b.uploaded.Load() || p.State == backfill.StateCompleted || p.State == backfill.StateCanceled || size <= 0 {
		return p.Submitted, false
	}
	read, docs := b.inputRead.load(), b.docRead.load()
	if read <= 0 || docs <= 0 {
		return p.Submitted, true
	}
	est := int64(float64(docs) * float64(size) / float64(min(read, size)))
	return max(est, p.Submitted), true
}

func (b *progressBar) line(p backfill.Progress) string {
	done := p.Done()
	total, estimated := b.total(p)
	frac := 0.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	eta := "?"
	switch {
	case p.State == backfill.StateCompleted || p.State == backfill.StateCanceled:
		eta = "0s"
	case p.DocsPerS > 0 && total > 0:
		// Of the whole input at the rate so far, not of what is pending.
		eta = time.Duration(float64(total-done) / p.DocsPerS * float64(time.Second)).Round(time.Second).String()
	}
	of := strconv.FormatInt(total, 10)
	if estimated {
		of = "~" + of
	}
	dead := strconv.FormatInt(p.Dead, 10) + " dead"
	if codes := b.deadCodes(); len(codes) > 0 {
		// The reasons of those exported so far.
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = c + " " + strconv.FormatInt(b.dead[c].n, 10)
		}
		dead += ": " + strings.Join(parts, ", ")
	}
	s := fmt.Sprintf("%5.1f%% %d/%s done (%d reused, %d failed, %s) %.0f docs/s ETA %s; sent %d, duplicates %d, rejected %d; exported %d",
		100*frac, done, of, p.Reused, p.Failed, dead, p.DocsPerS, eta, b.sent.load(), b.duplicates.load(), b.rejected.load(),
		b.exported.load())
	if p.Stalled != nil {
		// First, so that a narrow terminal still shows it.
		s = "STALLED (" + p.Stalled.Reason + ") " + s
		if !b.tty {
			s += "; " + p.Stalled.Message
		}
	}
	if !b.tty {
		return string(p.State) + " " + s
	}
	return fitLine(s, frac, b.width())
}

// fitLine puts a bar of up to 30 cells before s when there is room and
// cuts the whole to width-1 columns, so that the terminal never wraps it.
func fitLine(s string, frac float64, width int) string {
	room := width - 1
	if bar := min(30, room-utf8.RuneCountInString(s)-3); bar >= 10 {
		n := int(frac * float64(bar))
		s = "[" + strings.Repeat("#", n) + strings.Repeat(".", bar-n) + "] " + s
	}
	if utf8.RuneCountInString(s) > room {
		r := []rune(s)
		s = string(r[:max(room, 0)])
	}
	return s
}

// termWidth is the width of the terminal w writes to; else $COLUMNS; else 80.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if n := fdWidth(f.Fd()); n > 0 {
			return n
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
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
