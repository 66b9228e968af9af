package infer

import (
	"fmt"
	"math"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// DefaultMaxWindows is the window cap of a model whose jetinfer.json sets no
// "max_windows": 64 rows is at least 6,000 tokens of text for a 128-token
// model and 24,000 for a 512-token one with a quarter overlap, far past any
// news article, while one pathological document costs at most 64 rows.
const DefaultMaxWindows = 64

// longPlan is how Prepare treats one document longer than one row: the
// resolved long-input options of its job over its model's defaults.
type longPlan struct {
	mode   string // job.LongWindow, job.LongTruncate or job.LongError
	left   bool   // keep the end of the text rather than its beginning
	max    bool   // text classification: job.WindowMax
	maxWin int    // the window cap
}

// readLong checks jetinfer.json's long-input settings.
func (m *Model) readLong(p string, mf manifest) error {
	switch mf.LongInput {
	case "":
		m.longInput = job.LongWindow
	case job.LongWindow, job.LongTruncate, job.LongError:
		m.longInput = mf.LongInput
	default:
		return fmt.Errorf("%s: unknown long_input %q (want %s, %s or %s)", p, mf.LongInput, job.LongWindow, job.LongTruncate, job.LongError)
	}
	switch {
	case mf.MaxWindows < 0:
		return fmt.Errorf("%s: max_windows %d is negative", p, mf.MaxWindows)
	case mf.MaxWindows == 0:
		m.maxWindows = DefaultMaxWindows
	default:
		m.maxWindows = mf.MaxWindows
	}
	return nil
}

// longPlan resolves opts against the model's defaults. The options were
// validated at ingest; they are checked again, since a job may come from
// anywhere that can publish.
func (m *Model) longPlan(opts job.Options) (longPlan, error) {
	if e := opts.CheckLong(); e != nil {
		return longPlan{}, job.Permanent(job.CodeInvalidInput, e)
	}
	p := longPlan{
		mode:   m.longInput,
		left:   opts.TruncationSide == job.SideLeft,
		max:    opts.WindowAggregation == job.WindowMax,
		maxWin: m.maxWindows,
	}
	switch {
	case opts.LongInput != "":
		p.mode = opts.LongInput
	case opts.Truncate && m.info.Kind != TokenClassification:
		// The older boolean; token classification always windowed whatever
		// it said.
		p.mode = job.LongTruncate
	}
	if p.maxWin <= 0 { // a Model not built by LoadModel
		p.maxWin = DefaultMaxWindows
	}
	if p.mode == "" {
		p.mode = job.LongWindow
	}
	if opts.MaxWindows > 0 {
		p.maxWin = min(p.maxWin, opts.MaxWindows)
	}
	return p, nil
}

// cut fills in's rows from the document's tokens enc under plan p: one row
// when the document fits; otherwise windows, one truncated row, or a
// permanent input_too_long error, as p says. Token classification keeps the
// kept tokens' offsets.
func (m *Model) cut(in *Input, enc *tokenize.Encoding, p longPlan) error {
	n := len(enc.IDs)
	lo, hi := 0, n // the tokens kept
	nw := 1
	if n > m.window {
		nw = numWindows(n, m.window, m.stride)
		special := len(m.prefix) + len(m.suffix)
		switch p.mode {
		case job.LongError:
			return job.Permanent(job.CodeInputTooLong, fmt.Errorf("text is %d tokens; %s takes at most %d in one row (max_length %d with %d special tokens); set options.long_input to %q or %q to run it",
				n, m.info.Task, m.window, m.info.MaxLength, special, job.LongWindow, job.LongTruncate))
		case job.LongTruncate:
			nw, hi = 1, m.window
			in.truncated = true
		default: // window
			if nw > p.maxWin {
				// The span of the first (or last) maxWin windows.
				nw = p.maxWin
				hi = (nw-1)*(m.window-m.stride) + m.window
				in.truncated = true
			}
		}
		if p.left && in.truncated {
			lo, hi = n-hi, n
		}
	}
	in.ids = append(make([]int64, 0, hi-lo), enc.IDs[lo:hi]...)
	if m.info.Kind == TokenClassification {
		in.offs = append(make([]tokenize.Offset, 0, hi-lo), enc.Offsets[lo:hi]...)
	}
	if nw == 1 {
		in.starts = zeroStart
	} else {
		in.starts = windowStarts(make([]int, 0, nw), hi-lo, m.window, m.stride)
	}
	in.winMax = p.max
	return nil
}

// rowTokens is the number of real tokens in row r, special tokens included:
// what the row's attention mask keeps, and its weight in a window
// aggregation.
func (in *Input) rowTokens(r int) int {
	s, e := in.rowSpan(r)
	return e - s + len(in.m.prefix) + len(in.m.suffix)
}

// docTokens is the number of tokens the input's text came to, special tokens
// counted once however many windows ran it: what the caller was charged for
// in a usage count.
func (in *Input) docTokens() int {
	if in.Rows() == 1 {
		return in.Tokens()
	}
	return len(in.ids) + len(in.m.prefix) + len(in.m.suffix)
}

// scoreWindows scores a text classification over the input's rows (from
// row on): each row's scores as for a single row, then per label the mean
// over rows weighted by each row's tokens, or, with window aggregation max,
// the highest. It writes the scores and their order as scoreLabels does.
func (m *Model) scoreWindows(b *runBuf, in *Input, out []float32, dim, row int) error {
	if in.Rows() == 1 {
		return scoreLabels(m.fn, out[row*dim:(row+1)*dim], b.scores, b.order)
	}
	b.acc = grow(b.acc, dim)
	clear(b.acc)
	total := 0.0
	for r := range in.Rows() {
		o := (row + r) * dim
		if err := scoreLabels(m.fn, out[o:o+dim], b.scores, b.order); err != nil {
			return err
		}
		w := float64(in.rowTokens(r))
		total += w
		for c, s := range b.scores[:dim] {
			switch {
			case !in.winMax:
				b.acc[c] += w * s
			case r == 0:
				b.acc[c] = s
			default:
				b.acc[c] = max(b.acc[c], s)
			}
		}
	}
	for c := range dim {
		b.scores[c] = b.acc[c]
		if !in.winMax {
			b.scores[c] /= total
		}
	}
	sortOrder(b.scores[:dim], b.order[:dim])
	return nil
}

// poolWindows writes into dst the embedding of the input's rows (from row
// on, each T tokens of dim values): each row pooled as a single row is, but
// not normalised; their mean weighted by each row's tokens; then
// L2-normalised when the model normalises. With mean pooling this is the
// mean of every token state of every window.
func (m *Model) poolWindows(b *runBuf, in *Input, out []float32, dim, T, row int) error {
	if in.Rows() == 1 {
		k := in.Tokens()
		return pool(b.emb, b.acc, out[row*T*dim:(row*T+k)*dim], k, m.pooling == "mean", m.norm)
	}
	b.acc = grow(b.acc, dim)
	b.wacc = grow(b.wacc, dim)
	clear(b.wacc)
	total := 0.0
	for r := range in.Rows() {
		k := in.rowTokens(r)
		o := (row + r) * T * dim
		if err := pool(b.emb, b.acc, out[o:o+k*dim], k, m.pooling == "mean", false); err != nil {
			return err
		}
		w := float64(k)
		total += w
		for i, v := range b.acc {
			b.wacc[i] += w * v
		}
	}
	sq := 0.0
	for i := range b.wacc {
		b.wacc[i] /= total
		sq += b.wacc[i] * b.wacc[i]
	}
	if math.IsNaN(sq) || math.IsInf(sq, 0) {
		return errNonFinite
	}
	scale := 1.0
	if m.norm {
		scale = 1 / max(math.Sqrt(sq), 1e-12)
	}
	for i := range b.wacc {
		b.emb[i] = float32(b.wacc[i] * scale)
	}
	return nil
}

// appendLongFields closes a result object with what the caller needs to know
// about a long input: "windows", the rows its answer aggregates, when more
// than one, and "truncated": true when part of the text was left out (by
// long_input truncate, or past the window cap).
func appendLongFields(dst []byte, in *Input) []byte {
	if in.Rows() == 1 && !in.truncated {
		return dst
	}
	dst = dst[:len(dst)-1] // the object's closing brace
	if in.Rows() > 1 {
		dst = append(dst, `,"windows":`...)
		dst = appendInt(dst, in.Rows())
	}
	if in.truncated {
		dst = append(dst, `,"truncated":true`...)
	}
	return append(dst, '}')
}
