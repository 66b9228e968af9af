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
	starts []int             // first token of each row: windows of token classification; {0} otherwise
	topK   int
	agg    aggregation
	pair   *pairInput // pairs, rerank, zero-shot and tokenize inputs (pairs.go)
}

// Rows is the number of rows the input takes in a batch: its windows for token
// classification, 1 otherwise.
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
// (see job.Permanent): empty text, invalid UTF-8, an unknown aggregation, or
// for text classification and feature extraction text longer than the model's
// max_length when opts.Truncate is false. Token classification instead splits
// a long document into overlapping windows.
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
	n := len(enc.IDs)

	if m.info.Kind == TokenClassification {
		nw := numWindows(n, m.window, m.stride)
		if nw > maxWindows {
			return nil, job.Permanent(job.CodeInputTooLong, fmt.Errorf("text is %d tokens, %d windows of %d; %s takes at most %d windows", n, nw, m.info.MaxLength, m.info.Task, maxWindows))
		}
		in.ids = append(make([]int64, 0, n), enc.IDs...)
		in.offs = append(make([]tokenize.Offset, 0, n), enc.Offsets...)
		in.starts = windowStarts(make([]int, 0, nw), n, m.window, m.stride)
		return in, nil
	}
	if n > m.window {
		if !opts.Truncate {
			return nil, job.Permanent(job.CodeInputTooLong, fmt.Errorf("text is %d tokens; %s takes at most %d with its %d special tokens (set truncate to cut it)", n, m.info.Task, m.info.MaxLength, len(m.prefix)+len(m.suffix)))
		}
		n = m.window
	}
	in.ids = append(make([]int64, 0, n), enc.IDs[:n]...)
	in.starts = zeroStart
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
