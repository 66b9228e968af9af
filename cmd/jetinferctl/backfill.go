package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

func (a *apiClient) progress(ctx context.Context, id string) (backfill.Progress, error) {
	var p backfill.Progress
	err := a.do(ctx, "GET", "/v1/backfills/"+id, "", nil, &p)
	return p, err
}

// docsAnswer is the answer to POST .../documents.
type docsAnswer struct {
	Accepted      int64                `json:"accepted"`
	Duplicates    int64                `json:"duplicates"`
	Rejected      []backfill.LineError `json:"rejected"`
	RejectedTotal int64                `json:"rejected_total"`
	NextLine      int64                `json:"next_line"`
}

// runState is what `backfill run` keeps next to its input so that an
// interrupted run resumes where the server's confirmations ended.
type runState struct {
	URL      string `json:"url"`
	Task     string `json:"task"`
	In       string `json:"in"`
	Backfill string `json:"backfill"`
	// DoneLine is the input line up to which every document was answered
	// (accepted, duplicate or rejected) by the server.
	DoneLine int64 `json:"done_line"`
	Sealed   bool  `json:"sealed"`
	// ResultsSeq is the RESULTS sequence up to which results are in the
	// results file's first ResultsBytes bytes, ResultsLines lines.
	ResultsSeq   uint64 `json:"results_seq,omitempty"`
	ResultsBytes int64  `json:"results_bytes,omitempty"`
	ResultsLines int64  `json:"results_lines,omitempty"`
	// Exported says the results file is complete.
	Exported bool `json:"exported,omitempty"`

	mu sync.Mutex // the uploader and the exporter both save
}

func loadState(path string) (*runState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s runState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &s, nil
}

// update edits the state and saves it, one caller at a time.
func (s *runState) update(path string, edit func(*runState)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(s)
	return s.save(path)
}

func (s *runState) save(path string) error {
	data, _ := json.MarshalIndent(s, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runOpts are the flags of `backfill run`.
type runOpts struct {
	api         apiClient
	task, name  string
	in, out     string
	state       string
	chunk       int
	poll        time.Duration
	interactive string // auto, yes, no
	keepResults bool
	exportStep  int
	options     jobOptions
	// callbackURL and progressEvery name the webhook endpoint told of
	// the backfill's end (and progress).
	callbackURL   string
	progressEvery int64
}

func init() {
	register(command{group: "backfill", name: "run",
		summary: "backfill a file of documents (NDJSON or CSV, gzip allowed), resumably, and write the results",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var o runOpts
			o.api.register(fs, "backfills:write")
			fs.StringVar(&o.task, "task", "", "task to run (sentiment, ner...)")
			fs.StringVar(&o.name, "name", "", "backfill name; defaults to the input file's name")
			fs.StringVar(&o.in, "in", "", "input file: NDJSON {\"id\",\"text\",\"meta\"} a line, or CSV with id and text columns (.csv); .gz allowed")
			fs.StringVar(&o.out, "out", "", "results file (NDJSON); defaults to <in>.results.ndjson")
			fs.StringVar(&o.state, "state", "", "resume state file; defaults to <in>.backfill.json")
			fs.IntVar(&o.chunk, "chunk", 5000, "documents sent per request")
			fs.DurationVar(&o.poll, "poll", time.Second, "progress poll interval (plain progress lines every 10 polls when not on a terminal)")
			fs.StringVar(&o.interactive, "progress-bar", "auto", "draw a progress bar: auto (on a terminal), yes or no")
			fs.BoolVar(&o.keepResults, "keep-results", false, "keep results in the server's RESULTS stream once written to --out (by default each export step purges what it wrote, so that a backfill bigger than the stream goes on)")
			fs.IntVar(&o.exportStep, "export-step", 10000, "results read, written, synced and purged per export step")
			fs.StringVar(&o.callbackURL, "callback-url", "", "a registered webhook endpoint's exact URL: it gets backfill.completed when the backfill ends")
			fs.Int64Var(&o.progressEvery, "progress-every", 0, "with --callback-url: also send backfill.progress every this many results (at least 100)")
			o.options.register(fs)
			return func(ctx context.Context, e *env) error { return runBackfill(ctx, o, e) }
		}})
	register(command{group: "backfill", name: "status", summary: "show a backfill's progress",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "backfills:write")
			id := fs.String("id", "", "backfill id")
			return func(ctx context.Context, e *env) error {
				p, err := a.progress(ctx, *id)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
		}})
	register(command{group: "backfill", name: "cancel", summary: "cancel a backfill",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "backfills:write")
			id := fs.String("id", "", "backfill id")
			return func(ctx context.Context, e *env) error {
				var p backfill.Progress
				if err := a.do(ctx, "DELETE", "/v1/backfills/"+*id, "", nil, &p); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s %s: %d succeeded, %d failed, %d dead, %d canceled\n", p.ID, p.State, p.Succeeded, p.Failed, p.Dead, p.Canceled)
				return nil
			}
		}})
	register(command{group: "backfill", name: "results", summary: "write a backfill's results (NDJSON) still in RESULTS to stdout or a file (backfill run purges what it exported, unless --keep-results)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "backfills:write")
			id := fs.String("id", "", "backfill id")
			out := fs.String("out", "", "results file; stdout when empty")
			purge := fs.Bool("purge", false, "with --out: export in steps while the backfill runs, as backfill run does, purging each step from RESULTS once synced to the file (resumable: the progress is kept in <out>.export.json)")
			step := fs.Int("export-step", 10000, "with --purge: results read, written, synced and purged per step")
			poll := fs.Duration("poll", time.Second, "with --purge: pause when caught up with a running backfill")
			return func(ctx context.Context, e *env) error {
				switch {
				case *purge && *out == "":
					return errors.New("--purge needs --out: purged results must be in a file first")
				case *purge:
					n, err := exportPurging(ctx, &a, *id, *out, max(*step, 1), *poll, e)
					if err == nil {
						fmt.Fprintf(e.stderr, "%d results written to %s and purged from RESULTS\n", n, *out)
					}
					return err
				case *out == "":
					_, err := exportResults(ctx, &a, *id, e.stdout)
					return err
				}
				n, err := writeResults(ctx, &a, *id, *out)
				if err == nil {
					fmt.Fprintf(e.stderr, "%d results written to %s\n", n, *out)
				}
				return err
			}
		}})
}

// exportPurging exports a backfill's results to out in purged steps until
// the backfill is final, keeping its progress in out.export.json so that an
// interrupted export resumes, and returns the lines in out.
func exportPurging(ctx context.Context, api *apiClient, id, out string, step int, poll time.Duration, e *env) (int64, error) {
	statePath := out + ".export.json"
	st, err := loadState(statePath)
	if err != nil {
		return 0, err
	}
	if st == nil {
		st = &runState{URL: api.url, Backfill: id}
	} else if st.Backfill != id || st.URL != api.url {
		return 0, fmt.Errorf("%s belongs to backfill %s on %s: remove it (and %s.part) to export afresh", statePath, st.Backfill, st.URL, out)
	}
	x := &exporter{api: api, st: st, path: out + ".part", out: out, step: step, poll: poll,
		save:  func(edit func(*runState)) error { return st.update(statePath, edit) },
		warnf: func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }}
	err = x.run(ctx)
	return st.ResultsLines, err
}

func runBackfill(ctx context.Context, o runOpts, e *env) error {
	if o.api.token == "" || o.task == "" || o.in == "" {
		return errors.New("--token, --task and --in are required")
	}
	if o.out == "" {
		o.out = o.in + ".results.ndjson"
	}
	if o.state == "" {
		o.state = o.in + ".backfill.json"
	}
	if o.name == "" {
		o.name = filepath.Base(o.in)
	}
	o.chunk = max(o.chunk, 1)
	st, err := loadState(o.state)
	if err != nil {
		return err
	}
	if st != nil && (st.URL != o.api.url || st.Task != o.task) {
		return fmt.Errorf("state file %s belongs to a backfill of task %s on %s: remove it to start afresh", o.state, st.Task, st.URL)
	}
	if st != nil {
		if _, err := o.api.progress(ctx, st.Backfill); err != nil {
			return fmt.Errorf("resume backfill %s: %w", st.Backfill, err)
		}
		fmt.Fprintf(e.stderr, "resuming backfill %s after line %d\n", st.Backfill, st.DoneLine)
	} else {
		var p backfill.Progress
		req := map[string]any{"task": o.task, "name": o.name}
		if len(o.options.m) > 0 {
			req["options"] = o.options.m
		}
		if o.callbackURL != "" {
			req["callback_url"] = o.callbackURL
		}
		if o.progressEvery != 0 {
			req["progress_every"] = o.progressEvery
		}
		body, _ := json.Marshal(req)
		if err := o.api.do(ctx, "POST", "/v1/backfills", "application/json", bytes.NewReader(body), &p); err != nil {
			return fmt.Errorf("create backfill: %w", err)
		}
		st = &runState{URL: o.api.url, Task: o.task, In: o.in, Backfill: p.ID}
		if err := st.save(o.state); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "backfill %s created\n", p.ID)
	}
	bar := newProgressBar(e.stderr, o.interactive, o.poll)
	bar.uploaded.Store(st.Sealed)
	// The results are exported while the backfill runs, so that RESULTS
	// never has to hold more than the export lags behind.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	exported := make(chan error, 1)
	bar.exported.add(st.ResultsLines)
	x := &exporter{api: &o.api, st: st, path: o.out + ".part", out: o.out, keep: o.keepResults, step: max(o.exportStep, 1), poll: o.poll,
		save: func(edit func(*runState)) error { return st.update(o.state, edit) }, warnf: bar.printf, exported: &bar.exported,
		dead: bar.noteDead}
	go func() {
		err := x.run(ctx) // at once when an earlier run finished the export
		if err != nil {
			cancel(err)
		}
		exported <- err
	}()
	// cause prefers the exporter's failure to the cancellation it caused.
	cause := func(err error) error {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return err
	}
	pctx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		bar.follow(pctx, &o.api, st.Backfill)
	}()
	stop := func() { stopPoll(); <-pollDone }
	if !st.Sealed {
		if err := upload(ctx, o, st, bar, e); err != nil {
			stop()
			return cause(err)
		}
		bar.uploaded.Store(true)
		var p backfill.Progress
		if err := o.api.do(ctx, "POST", "/v1/backfills/"+st.Backfill+"/seal", "", nil, &p); err != nil {
			stop()
			return cause(fmt.Errorf("seal: %w", err))
		}
		if err := st.update(o.state, func(st *runState) { st.Sealed = true }); err != nil {
			stop()
			return err
		}
	}
	p, err := bar.awaitFinal(ctx, &o.api, st.Backfill)
	stop()
	if err != nil {
		return cause(err)
	}
	if err := <-exported; err != nil {
		return err
	}
	bar.finish(p)
	n := st.ResultsLines
	fmt.Fprintf(e.stdout, "backfill %s %s: %d submitted, %d succeeded (%d reused), %d failed, %d dead, %d canceled; %d results in %s\n",
		p.ID, p.State, p.Submitted, p.Succeeded, p.Reused, p.Failed, p.Dead, p.Canceled, n, o.out)
	bar.reasons(e.stdout)
	if want := p.Succeeded + p.Failed + p.Dead; n != want {
		return fmt.Errorf("results file has %d lines, want %d", n, want)
	}
	return nil
}

// upload sends the input in chunks, resuming after st.DoneLine, and keeps
// st current after every answered chunk.
func upload(ctx context.Context, o runOpts, st *runState, bar *progressBar, e *env) error {
	f, err := os.Open(o.in)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		bar.inputSize.Store(fi.Size())
	}
	// Progress is measured against the whole file: the bytes read from it
	// (compressed, for .gz) and the documents found in them.
	r, err := backfill.Decompress(&countReader{r: f, n: &bar.inputRead})
	if err != nil {
		return fmt.Errorf("%s: %w", o.in, err)
	}
	var rd backfill.Reader
	if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(o.in), ".gz"), ".csv") {
		rd = backfill.NewCSV(r, backfill.Limits{})
	} else {
		rd = backfill.NewNDJSON(r, backfill.Limits{})
	}
	var docs []backfill.Doc
	var lines []int64
	var lastLine int64
	reject := func(line int64, reason string) {
		if bar.rejected.add(1) <= 20 {
			bar.printf("line %d rejected: %s", line, reason)
		}
	}
	for {
		d, line, err := rd.Next()
		var le *backfill.LineError
		switch {
		case err == nil:
			lastLine = line
			bar.docRead.add(1)
			if line <= st.DoneLine {
				continue
			}
			docs, lines = append(docs, d), append(lines, line)
			if len(docs) < o.chunk {
				continue
			}
		case errors.As(err, &le):
			lastLine = le.Line
			if le.Line > st.DoneLine {
				reject(le.Line, le.Reason)
			}
			continue
		case errors.Is(err, io.EOF):
		default:
			return fmt.Errorf("%s: %w", o.in, err)
		}
		if len(docs) > 0 {
			if err := sendChunk(ctx, &o.api, st.Backfill, docs, lines, bar, reject); err != nil {
				return err
			}
			docs, lines = docs[:0], lines[:0]
		}
		if err := st.update(o.state, func(st *runState) { st.DoneLine = lastLine }); err != nil {
			return err
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// sendChunk posts docs (gzipped NDJSON) until the server has answered for
// every one, waiting out 429 and 503 answers and resending from the line
// the server names.
func sendChunk(ctx context.Context, api *apiClient, id string, docs []backfill.Doc, lines []int64, bar *progressBar, reject func(int64, string)) error {
	for attempt := 0; len(docs) > 0; attempt++ {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		enc := json.NewEncoder(zw)
		for i := range docs {
			if err := enc.Encode(&docs[i]); err != nil {
				return err
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
		var a docsAnswer
		err := api.do(ctx, "POST", "/v1/backfills/"+id+"/documents", "application/x-ndjson", &buf, &a)
		bar.sent.add(a.Accepted + a.Duplicates)
		bar.duplicates.add(a.Duplicates)
		for _, r := range a.Rejected {
			if r.Line >= 1 && int(r.Line) <= len(lines) {
				reject(lines[r.Line-1], r.Reason)
			}
		}
		var ae *apiError
		if err == nil {
			return nil
		}
		if !errors.As(err, &ae) || (ae.status != http.StatusTooManyRequests && ae.status/100 != 5) || attempt > 1000 {
			return fmt.Errorf("send documents: %w", err)
		}
		if a.NextLine >= 1 && int(a.NextLine) <= len(docs) {
			docs, lines = docs[a.NextLine-1:], lines[a.NextLine-1:]
		}
		wait := max(ae.retryAfter, time.Second)
		bar.printf("server busy (%d), resending %d documents in %s", ae.status, len(docs), wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// writeResults exports the results to path through a temporary file.
func writeResults(ctx context.Context, api *apiClient, id, path string) (int64, error) {
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	n, err := exportResults(ctx, api, id, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, os.Rename(tmp, path)
}

// exportResults copies the results stream to w and counts its lines.
func exportResults(ctx context.Context, api *apiClient, id string, w io.Writer) (int64, error) {
	resp, err := api.send(ctx, "GET", "/v1/backfills/"+id+"/results", "", nil)
	if err != nil {
		return 0, fmt.Errorf("results: %w", err)
	}
	defer resp.Body.Close()
	cw := &lineCounter{w: w}
	if _, err := io.Copy(cw, resp.Body); err != nil {
		return cw.n, fmt.Errorf("results: %w", err)
	}
	return cw.n, nil
}

type lineCounter struct {
	w io.Writer
	n int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return c.w.Write(p)
}

// countReader counts the bytes read through it into n.
type countReader struct {
	r io.Reader
	n *counter
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.add(int64(k))
	return k, err
}
