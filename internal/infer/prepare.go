package infer

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// aggregation is a token-classification aggregation strategy.
type aggregation uint8

const (
	aggSimple aggregation = iota
	aggNone
	// The word strategies label whole words, then group them as simple
	// groups tokens: first takes a word's first token's label, max the
	// label of its most confident token, average the argmax of its tokens'
	// mean probabilities.
	aggFirst
	aggAverage
	aggMax
)

// Input is one document tokenized for a model by Prepare, ready for Run.
type Input struct {
	m      *Model
	text   string
	ids    []int64           // the document's tokens, without special tokens (truncated when asked)
	offs   []tokenize.Offset // byte offsets of ids (token classification only)
	starts []int             // first token of each row: its windows, or {0}
	topK   int
	agg    aggregation
	// Long inputs (long.go): part of the text was left out, and text
	// classification takes each label's highest score over windows.
	truncated bool
	winMax    bool
	pair      *pairInput // pairs, rerank, zero-shot and tokenize inputs (pairs.go)
}

// Rows is the number of rows the input takes in a batch: its windows.
func (in *Input) Rows() int { return len(in.starts) }

// Tokens is the length of the input's longest row, special tokens included:
// what the batcher pads to.
func (in *Input) Tokens() int {
	if in.pair != nil {
		return in.pair.tokens
	}
	n := len(in.ids)
	if n > in.m.window {
		n = in.m.window
	}
	return n + len(in.m.prefix) + len(in.m.suffix)
}

// rowSpan returns the content tokens of row r.
func (in *Input) rowSpan(r int) (start, end int) {
	start = in.starts[r]
	end = min(start+in.m.window, len(in.ids))
	return start, end
}

// Prepare tokenizes text for the model. It is cheap, pure Go and safe for
// concurrent use. Input that can never succeed gets a permanent job error
// (see job.Permanent): empty text, invalid UTF-8, an unknown option, or
// text longer than one row under long_input "error". Otherwise a long text
// is split into overlapping windows, or truncated, as opts and the model's
// defaults say (see longPlan).
func (m *Model) Prepare(text string, opts job.Options) (*Input, error) {
	if strings.TrimSpace(text) == "" {
		return nil, job.Permanent(job.CodeInvalidInput, errors.New("text is empty"))
	}
	if !utf8.ValidString(text) {
		return nil, job.Permanent(job.CodeInvalidInput, errors.New("text is not valid UTF-8"))
	}
	if opts.TopK < 0 {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("top_k %d is negative", opts.TopK))
	}
	plan, err := m.longPlan(opts)
	if err != nil {
		return nil, err
	}
	in := &Input{m: m, text: text, topK: opts.TopK}
	switch opts.Aggregation {
	case "", "simple":
		in.agg = aggSimple
	case "none":
		in.agg = aggNone
	case "first":
		in.agg = aggFirst
	case "average":
		in.agg = aggAverage
	case "max":
		in.agg = aggMax
	default:
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("aggregation %q is not supported (want simple, first, average, max or none)", opts.Aggregation))
	}

	enc := m.encPool.Get().(*tokenize.Encoding)
	defer func() {
		if cap(enc.IDs) <= maxPooledTokens { // do not keep a huge document's arrays
			m.encPool.Put(enc)
		}
	}()
	m.tok.EncodeTo(enc, text)
	if err := m.cut(in, enc, plan); err != nil {
		return nil, err
	}
	return in, nil
}

var zeroStart = []int{0}

// maxPooledTokens bounds the token arrays Prepare keeps for reuse.
const maxPooledTokens = 1 << 14

// numWindows is how many windows of size w, consecutive ones sharing stride
// tokens, cover n tokens. An empty document still takes one (empty) row.
func numWindows(n, w, stride int) int {
	if n <= w {
		return 1
	}
	step := w - stride
	return 1 + (n-w+step-1)/step
}

// windowStarts appends the first token of each window to dst.
func windowStarts(dst []int, n, w, stride int) []int {
	nw := numWindows(n, w, stride)
	for k := 0; k < nw; k++ {
		dst = append(dst, k*(w-stride))
	}
	return dst
}
