package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

// resultsSeqTrailer names the RESULTS sequence an export read up to; it is
// ingest.ResultsSeqTrailer, repeated so that the CLI needs only the API.
const resultsSeqTrailer = "Jetinfer-Results-Seq"

// resultsReadTrailer counts the RESULTS messages an export read, what its
// limit counts; it is ingest.ResultsReadTrailer.
const resultsReadTrailer = "Jetinfer-Results-Read"

// exporter writes a backfill's results to a file in steps while the
// backfill runs: each step reads what RESULTS holds after the last step,
// appends it, syncs the file, records the step in the run's state file, and
// then (unless keep) purges what it wrote from RESULTS. A backfill whose
// results outgrow the stream therefore keeps going: RESULTS refuses new
// results when full rather than dropping old ones, and the workers hold
// their documents until a step frees space.
type exporter struct {
	api   *apiClient
	st    *runState
	save  func(edit func(*runState)) error // edits st and saves it, beside the uploader
	path  string                           // the file being written
	out   string                           // what path is renamed to once complete
	keep  bool
	step  int           // results read per step
	poll  time.Duration // pause when caught up with a running backfill
	warnf func(format string, a ...any)
	// dead, when set, is told the error of each dead document's line
	// written (and of those already in the file when it is reopened).
	dead func(code, message string)
	// exported, when set, counts the lines written (for the progress bar).
	exported *counter

	f      *os.File
	seen   map[uint64]struct{} // fingerprints of the document ids written
	purged uint64              // RESULTS sequence purged through
}

// run exports until the backfill is final and every result is written,
// then renames the file to x.out and records the export complete.
func (x *exporter) run(ctx context.Context) error {
	if x.st.Exported {
		return nil
	}
	if err := x.export(ctx); err != nil {
		return err
	}
	if err := os.Rename(x.path, x.out); err != nil {
		return err
	}
	return x.save(func(st *runState) { st.Exported = true })
}

func (x *exporter) export(ctx context.Context) error {
	if err := x.open(); err != nil {
		return err
	}
	defer x.f.Close()
	caughtUp := true
	for failures := 0; ; {
		final, read := false, 0
		var err error
		if caughtUp {
			var p backfill.Progress
			p, err = x.api.progress(ctx, x.st.Backfill)
			final = err == nil && (p.State == backfill.StateCompleted || p.State == backfill.StateCanceled)
		}
		// A worker stores a result in RESULTS before the backfill counts
		// its document, so a step that starts after the backfill was seen
		// final and is not cut short by its limit has read every result.
		if err == nil {
			read, err = x.stepOnce(ctx)
		}
		if err != nil {
			var ae *apiError
			if ctx.Err() != nil || (errors.As(err, &ae) && ae.status/100 == 4 && ae.status != http.StatusTooManyRequests) || failures >= 30 {
				return fmt.Errorf("export: %w", err)
			}
			failures++
			x.warnf("export step failed (%v); retrying", err)
			if err := sleepCtx(ctx, min(time.Duration(failures)*time.Second, 10*time.Second)); err != nil {
				return err
			}
			continue
		}
		failures = 0
		// read is the server's count of the messages it read, not the
		// lines it sent: it drops a document's second result, so fewer
		// lines than the step may still mean the step stopped at its limit.
		caughtUp = read < x.step
		if final && caughtUp {
			return nil
		}
		if read == 0 {
			if err := sleepCtx(ctx, x.poll); err != nil {
				return err
			}
		}
	}
}

// open opens the file at the length the state vouches for (a crash after a
// write and before its state was saved leaves lines that the next step
// writes again) and rebuilds the set of ids written.
func (x *exporter) open() error {
	f, err := os.OpenFile(x.path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(x.st.ResultsBytes); err != nil {
		f.Close()
		return err
	}
	x.f, x.seen = f, map[uint64]struct{}{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var lines int64
	for sc.Scan() {
		var l exportedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			f.Close()
			return fmt.Errorf("%s: line %d: %w", x.path, lines+1, err)
		}
		x.seen[backfill.Fingerprint(l.ID)] = struct{}{}
		x.noteDead(&l)
		lines++
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", x.path, err)
	}
	if lines != x.st.ResultsLines {
		f.Close()
		return fmt.Errorf("%s holds %d results where the run's state file says %d: remove both to export afresh", x.path, lines, x.st.ResultsLines)
	}
	_, err = f.Seek(0, io.SeekEnd)
	return err
}

// stepOnce reads up to x.step results after the state's sequence, writes the
// new ones, and makes them durable before it moves the state on and
// purges. It returns how many RESULTS messages the server read for it (its
// trailer), which counts the results it dropped as a document's second and
// is what the step's limit counts.
func (x *exporter) stepOnce(ctx context.Context) (int, error) {
	path := fmt.Sprintf("/v1/backfills/%s/results?follow=false&after=%d&limit=%d", x.st.Backfill, x.st.ResultsSeq, x.step)
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := x.api.send(sctx, "GET", path, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	w := bufio.NewWriterSize(x.f, 256<<10)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	lines, written := 0, int64(0)
	var added []uint64 // forgotten again if the step fails
	var dead []exportedLine
	fail := func(err error) (int, error) { return 0, x.rewind(added, err) }
	for sc.Scan() {
		lines++
		line := bytes.TrimSpace(sc.Bytes())
		var l exportedLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fail(fmt.Errorf("results line: %w", err))
		}
		fp := backfill.Fingerprint(l.ID)
		if _, dup := x.seen[fp]; dup {
			continue // a redelivered document's second result
		}
		x.seen[fp] = struct{}{}
		added = append(added, fp)
		if l.Status == "dead" {
			dead = append(dead, l) // told once the step is saved
		}
		if _, err := w.Write(line); err != nil {
			return fail(err)
		}
		if err := w.WriteByte('\n'); err != nil {
			return fail(err)
		}
		written++
	}
	if err := sc.Err(); err != nil {
		return fail(fmt.Errorf("results: %w", err))
	}
	// Ingest sets the trailer only when the export ended as it should.
	seq, err := strconv.ParseUint(resp.Trailer.Get(resultsSeqTrailer), 10, 64)
	if err != nil {
		return fail(errors.New("results export ended early (no sequence trailer)"))
	}
	// A server without the count sent every message it read but for
	// duplicates; counting lines then could mistake a limit for caught up,
	// so such a step counts as full unless it was empty.
	read := x.step
	if lines == 0 {
		read = 0
	}
	if v := resp.Trailer.Get(resultsReadTrailer); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < uint64(lines) {
			return fail(fmt.Errorf("results export: %s trailer %q is not the count of messages read (%d lines)", resultsReadTrailer, v, lines))
		}
		read = int(min(n, uint64(x.step)+1))
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := x.f.Sync(); err != nil {
		return fail(err)
	}
	off, err := x.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if err := x.save(func(st *runState) {
		st.ResultsSeq, st.ResultsBytes, st.ResultsLines = max(seq, st.ResultsSeq), off, st.ResultsLines+written
	}); err != nil {
		// The lines are in the file and the state in memory moved on;
		// a resumed run cuts the file back to the state file's length.
		return 0, err
	}
	if x.exported != nil {
		x.exported.add(written)
	}
	for i := range dead {
		x.noteDead(&dead[i])
	}
	if through := x.st.ResultsSeq; !x.keep && through > x.purged {
		// Once the state is saved these results are never read again. A
		// failed purge is tried again by the next step, through its own
		// sequence.
		if err := x.api.do(ctx, "DELETE", fmt.Sprintf("/v1/backfills/%s/results?through=%d", x.st.Backfill, through), "", nil, nil); err != nil {
			x.warnf("purge exported results: %v", err)
		} else {
			x.purged = through
		}
	}
	return read, nil
}

// rewind drops a failed step's writes: the file goes back to the length the
// state vouches for, and the ids the step added are forgotten.
func (x *exporter) rewind(added []uint64, err error) error {
	for _, fp := range added {
		delete(x.seen, fp)
	}
	if terr := x.f.Truncate(x.st.ResultsBytes); terr != nil {
		return errors.Join(err, terr)
	}
	if _, serr := x.f.Seek(x.st.ResultsBytes, io.SeekStart); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// exportedLine is the part of a results line the exporter reads.
type exportedLine struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// noteDead tells x.dead about a dead document's line.
func (x *exporter) noteDead(l *exportedLine) {
	if x.dead == nil || l.Status != "dead" {
		return
	}
	code, msg := "unknown", ""
	if l.Error != nil {
		code, msg = l.Error.Code, l.Error.Message
	}
	x.dead(code, msg)
}
