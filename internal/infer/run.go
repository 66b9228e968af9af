package infer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Output is the result of one input of a batch.
type Output struct {
	// Result is the JSON result in the Hugging Face pipeline shape of the
	// model's kind; nil when Err is set.
	Result json.RawMessage
	// Err is a permanent job error for this input alone (for example the
	// model produced NaN for it); the other inputs of the batch are unharmed.
	Err error
}

// Stats describes one Run.
type Stats struct {
	// Rows is the number of rows run: inputs plus extra windows.
	Rows int
	// Tokens is the number of real tokens in the rows, special tokens included.
	Tokens int
	// PaddedTokens is Rows times the longest row: what the model computed.
	PaddedTokens int
	// Infer is the time spent inside ONNX Runtime.
	Infer time.Duration
	// Post is the time spent turning the model's output into results.
	Post time.Duration
}

// runBuf is the reusable memory of one Run: the input and output tensors'
// backing arrays and post-processing scratch. A model keeps a free list of
// them, one per concurrent Run.
type runBuf struct {
	ids, mask, types []int64
	out              []float32
	ro               *ort.RunOptions

	scores []float64
	order  []int
	own    []int32
	preds  []tokenPred
	probs  []float32 // each token's probabilities, for aggregation average
	sub    []bool    // each token continues a word, for the word aggregations
	units  []unit
	mean   []float64
	spans  []span
	emb    []float32
	acc    []float64
	wacc   []float64 // the weighted sum of window embeddings
	res    []byte
	ends   []int
}

func (b *runBuf) destroy() {
	if b.ro != nil {
		b.ro.Destroy()
		b.ro = nil
	}
}

func (m *Model) getBuf() (*runBuf, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("model is closed")
	}
	if n := len(m.free); n > 0 {
		b := m.free[n-1]
		m.free = m.free[:n-1]
		return b, nil
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	b := &runBuf{ro: ro}
	m.all = append(m.all, b)
	return b, nil
}

func (m *Model) putBuf(b *runBuf) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		b.destroy()
		return
	}
	m.free = append(m.free, b)
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Run runs a batch of inputs prepared by this model: it pads every row to the
// batch's longest row, runs ONNX Runtime once for the whole batch and turns
// the output into one JSON result per input; Output i belongs to inputs[i].
// Run is safe for concurrent use. An error from Run fails the whole batch
// (the session failed, ctx ended, or an input was prepared by another model);
// an input's own failure is in its Output.Err.
func (m *Model) Run(ctx context.Context, inputs []*Input) ([]Output, Stats, error) {
	var st Stats
	if len(inputs) == 0 {
		return nil, st, nil
	}
	T := 0
	for i, in := range inputs {
		if in == nil || in.m != m {
			return nil, st, fmt.Errorf("run %s: input %d was not prepared by this model", m.info.Task, i)
		}
		st.Rows += in.Rows()
		T = max(T, in.Tokens())
	}
	st.PaddedTokens = st.Rows * T
	if err := ctx.Err(); err != nil {
		return nil, st, fmt.Errorf("run %s: %w", m.info.Task, err)
	}
	b, err := m.getBuf()
	if err != nil {
		return nil, st, fmt.Errorf("run %s: %w", m.info.Task, err)
	}
	defer m.putBuf(b)

	// Fill the inputs: prefix, content, suffix, then padding.
	n := st.Rows * T
	b.ids = grow(b.ids, n)
	b.mask = grow(b.mask, n)
	// Token type ids are 0 but for pairs, which fill their own.
	b.types = grow(b.types, n)
	clear(b.types)
	row := 0
	for _, in := range inputs {
		for r := range in.Rows() {
			ids := b.ids[row*T : (row+1)*T]
			mask := b.mask[row*T : (row+1)*T]
			var k int
			if in.pair != nil {
				k = in.pair.fill(m.pairTpl, ids, b.types[row*T:(row+1)*T], r)
			} else {
				s, e := in.rowSpan(r)
				k = copy(ids, m.prefix)
				k += copy(ids[k:], in.ids[s:e])
				k += copy(ids[k:], m.suffix)
			}
			st.Tokens += k
			for i := range k {
				mask[i] = 1
			}
			for i := k; i < T; i++ {
				ids[i] = m.padID
				mask[i] = 0
			}
			row++
		}
	}

	t0 := time.Now()
	var out []float32
	dims := max(m.outDim, 0)
	if st.Rows > 0 { // a batch of tokenize jobs only runs no model
		out, dims, err = m.infer(ctx, b, st.Rows, T)
	}
	st.Infer = time.Since(t0)
	if err != nil {
		return nil, st, fmt.Errorf("run %s: %w", m.info.Task, err)
	}
	outputs := m.post(b, inputs, out, dims, T)
	st.Post = time.Since(t0) - st.Infer
	return outputs, st, nil
}

// infer runs the session on b's inputs (rows × T) and returns the output data
// and its last dimension.
func (m *Model) infer(ctx context.Context, b *runBuf, rows, T int) ([]float32, int, error) {
	shape := ort.NewShape(int64(rows), int64(T))
	var ins [3]ort.Value
	nin := 0
	defer func() {
		for _, v := range ins[:nin] {
			v.Destroy()
		}
	}()
	for _, name := range m.inputOrder {
		var data []int64
		switch name {
		case "input_ids":
			data = b.ids
		case "attention_mask":
			data = b.mask
		case "token_type_ids":
			data = b.types
		}
		t, err := ort.NewTensor(shape, data)
		if err != nil {
			return nil, 0, fmt.Errorf("input %s: %w", name, err)
		}
		ins[nin] = t
		nin++
	}

	var outShape ort.Shape
	outs := []ort.Value{nil}
	if m.outDim > 0 {
		if m.info.Kind.perRow() {
			outShape = ort.NewShape(int64(rows), int64(m.outDim))
		} else {
			outShape = ort.NewShape(int64(rows), int64(T), int64(m.outDim))
		}
		b.out = grow(b.out, int(outShape.FlattenedSize()))
		t, err := ort.NewTensor(outShape, b.out)
		if err != nil {
			return nil, 0, fmt.Errorf("output %s: %w", m.outName, err)
		}
		outs[0] = t
	}
	defer func() {
		if outs[0] != nil {
			outs[0].Destroy()
		}
	}()

	// Stop ONNX Runtime when ctx ends mid-run.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		b.ro.Terminate()
		close(fired)
	})
	err := m.sess.RunWithOptions(ins[:nin], outs, b.ro)
	if !stop() {
		<-fired
		b.ro.UnsetTerminate()
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if m.outDim > 0 {
		return b.out, m.outDim, nil
	}
	// The graph left the last dimension open: ONNX Runtime allocated the
	// output; copy it into b.out.
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, 0, fmt.Errorf("output %s is not a float32 tensor", m.outName)
	}
	s := t.GetShape()
	wantRank := 3
	if m.info.Kind.perRow() {
		wantRank = 2
	}
	if len(s) != wantRank || s[0] != int64(rows) || (wantRank == 3 && s[1] != int64(T)) {
		return nil, 0, fmt.Errorf("output %s has shape %v for %d rows of %d tokens", m.outName, s, rows, T)
	}
	b.out = append(b.out[:0], t.GetData()...)
	last := int(s[len(s)-1])
	if m.info.Labels != nil && last != len(m.info.Labels) {
		return nil, 0, fmt.Errorf("output %s has %d classes, the model has %d labels", m.outName, last, len(m.info.Labels))
	}
	return b.out, last, nil
}

// post turns the model output (rows × [T ×] dim) into one result per input.
func (m *Model) post(b *runBuf, inputs []*Input, out []float32, dim, T int) []Output {
	outputs := make([]Output, len(inputs))
	b.res = b.res[:0]
	b.ends = b.ends[:0]
	var tags []labelTag
	if m.info.Kind == TokenClassification {
		tags = m.tags()
	}
	row := 0
	for i, in := range inputs {
		var err error
		start := len(b.res)
		switch {
		case in.pair != nil:
			err = m.postPairs(b, in, out, dim, row)
		case m.info.Kind.perRow():
			b.scores = grow(b.scores, dim)
			b.order = grow(b.order, dim)
			if err = m.scoreWindows(b, in, out, dim, row); err == nil {
				b.res = appendLabels(b.res, m.info.Labels, b.scores, b.order, in.topK)
				b.res = appendLongFields(b.res, in)
			}
		case m.info.Kind == FeatureExtraction:
			b.emb = grow(b.emb, dim)
			b.acc = grow(b.acc, dim)
			if err = m.poolWindows(b, in, out, dim, T, row); err == nil {
				b.res = appendEmbedding(b.res, b.emb, in.docTokens())
				b.res = appendLongFields(b.res, in)
			}
		case m.info.Kind == TokenClassification:
			err = m.postTokens(b, in, out, dim, T, row, tags)
		}
		row += in.Rows()
		if err != nil {
			b.res = b.res[:start]
			outputs[i].Err = job.Permanent(job.CodeModelError, fmt.Errorf("%s: %w", m.info.Task, err))
		}
		b.ends = append(b.ends, len(b.res))
	}
	// One allocation for all results; each gets a capacity-limited slice.
	all := append([]byte(nil), b.res...)
	start := 0
	for i, end := range b.ends {
		if outputs[i].Err == nil {
			outputs[i].Result = all[start:end:end]
		}
		start = end
	}
	return outputs
}

// postTokens merges an input's windows (rows from row on) into one prediction
// per token and appends its entities.
func (m *Model) postTokens(b *runBuf, in *Input, out []float32, dim, T, row int, tags []labelTag) error {
	n := len(in.ids)
	b.own = owners(b.own, n, m.window, in.starts)
	b.preds = grow(b.preds, n)
	if in.agg == aggAverage {
		b.probs = grow(b.probs, n*dim)
	}
	p0 := len(m.prefix)
	for j := range n {
		k := int(b.own[j])
		pos := p0 + j - in.starts[k]
		off := ((row+k)*T + pos) * dim
		p, err := predictToken(out[off : off+dim])
		if err != nil {
			return err
		}
		b.preds[j] = p
		if in.agg == aggAverage {
			probabilities(b.probs[j*dim:(j+1)*dim], out[off:off+dim])
		}
	}
	b.units = b.units[:0]
	switch in.agg {
	case aggSimple:
		b.units = tokenUnits(b.units, b.preds)
	case aggFirst, aggAverage, aggMax:
		b.sub = grow(b.sub, n)
		for j := range n {
			b.sub[j] = isSubword(j, in.text, in.ids, in.offs, m.tok, m.tok.ContinuesSubwords(), m.unkID)
		}
		b.units, b.mean = wordUnits(b.units, b.preds, b.sub, in.agg, b.probs, dim, b.mean)
	}
	b.res, b.spans = appendEntities(b.res, b.spans, in.text, in.ids, in.offs, b.preds, b.units, m.info.Labels, tags, in.agg, m.tok, p0, m.unkID)
	b.res = appendLongFields(b.res, in)
	return nil
}

// tags returns the model's labels read for aggregation, computed once.
func (m *Model) tags() []labelTag {
	m.tagsOnce.Do(func() { m.labelTags = labelTags(m.info.Labels) })
	return m.labelTags
}
