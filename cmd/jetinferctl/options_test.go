package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestJobOptionsFlags checks --option (JSON values, else strings) and the
// named flags, the last given winning for one key, and bad values refused.
func TestJobOptionsFlags(t *testing.T) {
	parse := func(args ...string) (map[string]any, error) {
		var o jobOptions
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.register(fs)
		return o.m, fs.Parse(args)
	}
	got, err := parse("--option", "top_k=2", "--option", `candidate_labels=["a","b"]`, "--option", "aggregation=first",
		"--truncate", "--multi-label", "--hypothesis-template", "About {}.", "--candidate-labels", "oil, gas,,", "--top-k", "3")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"top_k": 3, "candidate_labels": []string{"oil", "gas"}, "aggregation": "first",
		"truncate": true, "multi_label": true, "hypothesis_template": "About {}."}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options %#v, want %#v", got, want)
	}
	if got, _ := parse("--top-k", "3", "--option", "top_k=5"); got["top_k"] != float64(5) {
		t.Errorf("the last given should win: %#v", got)
	}
	for _, bad := range [][]string{{"--option", "novalue"}, {"--option", "=1"}, {"--top-k", "x"}, {"--truncate=maybe"}, {"--candidate-labels", ","}} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestProgressLineMeasuresWholeInput checks that percent and ETA are of the
// whole input while it is still being read (estimated from the bytes read
// and the documents found in them), exact once it is all sent, and that
// dead documents show by reason.
func TestProgressLineMeasuresWholeInput(t *testing.T) {
	b := newProgressBar(io.Discard, "no", time.Second)
	b.inputSize.Store(4_000_000)
	b.inputRead.add(1_000_000) // a quarter of the file read...
	b.docRead.add(5000)        // ...holding 5000 documents: 20000 in all
	eta := 0.0
	p := backfill.Progress{State: backfill.StateOpen, DocsPerS: 100, EtaS: &eta}
	p.Submitted, p.Succeeded, p.Dead = 5000, 2900, 5
	b.noteDead("input_too_long", "text is 900 tokens")
	b.noteDead("input_too_long", "text is 700 tokens")
	b.noteDead("invalid_input", "text_pair is empty")
	line := b.line(p)
	// 2905 of ~20000: 14.5%, and (20000-2905)/100 s left, not "0s".
	for _, want := range []string{" 14.5% 2905/~20000 done", "5 dead: input_too_long 2, invalid_input 1", "ETA 2m51s"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	b.uploaded.Store(true)
	p.Submitted = 19990
	if line := b.line(p); !strings.Contains(line, " 14.5% 2905/19990 done") {
		t.Errorf("once sent, the server's count: %q", line)
	}
	var out bytes.Buffer
	b.reasons(&out)
	if want := "dead input_too_long: 2 (for example: text is 900 tokens)\ndead invalid_input: 1 (for example: text_pair is empty)\n"; out.String() != want {
		t.Errorf("reasons:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestProgressLineFitsTerminal checks that the drawn line never reaches the
// terminal's last column (so "\r" redraws it in place), at every width, and
// that the width comes from $COLUMNS when the output is no terminal.
func TestProgressLineFitsTerminal(t *testing.T) {
	b := newProgressBar(io.Discard, "yes", time.Second)
	eta := 12.0
	p := backfill.Progress{State: backfill.StateOpen, DocsPerS: 1234, EtaS: &eta}
	p.Submitted, p.Succeeded, p.Dead = 123456, 65432, 17
	b.noteDead("input_too_long", "long")
	for _, w := range []int{20, 40, 80, 120, 200, 400} {
		b.width = func() int { return w }
		line := b.line(p)
		if n := utf8.RuneCountInString(line); n > w-1 {
			t.Errorf("width %d: line of %d columns: %q", w, n, line)
		}
		if hasBar := strings.HasPrefix(line, "["); hasBar != (w >= 200) {
			t.Errorf("width %d: bar shown %v: %q", w, hasBar, line)
		}
	}
	t.Setenv("COLUMNS", "97")
	if w := termWidth(&bytes.Buffer{}); w != 97 {
		t.Errorf("termWidth with COLUMNS=97: %d", w)
	}
	t.Setenv("COLUMNS", "")
	if w := termWidth(&bytes.Buffer{}); w != 80 {
		t.Errorf("termWidth without a terminal or COLUMNS: %d", w)
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w := termWidth(f); w != 80 {
		t.Errorf("termWidth of a plain file: %d", w)
	}
}

// TestBackfillRunOptionsAndDeadReasons runs two backfills through a real
// stack: one with options from flags (top_k 1 reaches every result) and
// one of text pairs on the cross-encoder in which documents without a
// text_pair dead-letter, whose reasons the progress line and the end of the
// run report.
func TestBackfillRunOptionsAndDeadReasons(t *testing.T) {
	s := startStackWith(t, func(_ *config.Ingest, w *config.Worker) {
		w.Models = testenv.ModelDir(t, "sentiment") + "," + testenv.ModelDir(t, "minilm-l6-random-cross-encoder")
	}, nil)
	ctx := context.Background()
	dir := t.TempDir()

	in := filepath.Join(dir, "news.ndjson")
	var b bytes.Buffer
	for i := range 30 {
		fmt.Fprintf(&b, `{"id":"n%d","text":"Company %d shares rose after strong earnings."}`+"\n", i, i)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"backfill", "run", "--url", s.url, "--token", s.token, "--task", "sentiment", "--in", in,
		"--poll", "100ms", "--top-k", "1", "--option", "truncate=true"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	eachResult(t, in+".results.ndjson", func(line []byte) {
		var l struct {
			Result struct {
				Labels []any `json:"labels"`
			} `json:"result"`
		}
		if err := json.Unmarshal(line, &l); err != nil || len(l.Result.Labels) != 1 {
			t.Fatalf("--top-k 1 did not reach the result: %s", line)
		}
	})

	pairs := filepath.Join(dir, "pairs.ndjson")
	b.Reset()
	for i := range 12 {
		if i%4 == 3 {
			fmt.Fprintf(&b, `{"id":"p%d","text":"oil prices"}`+"\n", i) // no text_pair: dead
			continue
		}
		fmt.Fprintf(&b, `{"id":"p%d","text":"oil prices","text_pair":"Brent crude rose %d cents."}`+"\n", i, i)
	}
	if err := os.WriteFile(pairs, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if err := run(ctx, []string{"backfill", "run", "--url", s.url, "--token", s.token, "--task", "bench-rerank", "--in", pairs,
		"--poll", "100ms", "--progress-bar", "no"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "9 succeeded (0 reused), 0 failed, 3 dead") ||
		!strings.Contains(out.String(), "dead invalid_input: 3 (for example: ") || !strings.Contains(out.String(), "text_pair") {
		t.Errorf("summary lacks the dead reasons:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "3 dead: invalid_input 3)") {
		t.Errorf("progress lacks the dead reasons:\n%s", errOut.String())
	}
}

func eachResult(t *testing.T, path string, f func([]byte)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	n := 0
	for sc.Scan() {
		f(sc.Bytes())
		n++
	}
	if n == 0 {
		t.Fatalf("%s is empty", path)
	}
}
