package infer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// pairMode is what a prepared input of pairs answers.
type pairMode uint8

const (
	// modePair: one (text, text_pair) row; the model's labels, or for a
	// cross-encoder its relevance score.
	modePair pairMode = iota + 1
	// modeRerank: one (query, document) row per document; the documents
	// by relevance.
	modeRerank
	// modeZeroShot: one (text, hypothesis) row per candidate label; the
	// labels by entailment.
	modeZeroShot
	// modeTokenize: no row at all; the result was made by PrepareInput.
	modeTokenize
)

// pairInput is the part of an Input that pairs (and tokenize jobs) need.
type pairInput struct {
	mode   pairMode
	a      []int64   // the first text's tokens (query, premise), truncated for its longest pair
	bs     [][]int64 // each row's second text (document, hypothesis)
	as     []int     // each row's length of a (longest-first truncation cuts it per row)
	tokens int       // the longest row, special tokens included

	labels []string // zero-shot: candidate labels
	multi  bool     // zero-shot: multi_label
	docs   []string // rerank: documents, kept when return_documents is set
	topN   int      // rerank: best N; 0 all
	result []byte   // tokenize: the finished result
}

// nliIDs are the classes zero-shot classification reads: entailment, and
// contradiction (or not_entailment) for multi-label scores.
type nliIDs struct{ entail, contra int }

// nliLabels finds the entailment and contradiction classes of a
// zero-shot model among its labels (case-insensitively, as transformers.js
// reads label2id). A model without entailment cannot do zero-shot
// classification, so it fails to load; one without contradiction uses
// class 0, as transformers.js does.
func (m *Model) nliLabels(config string) error {
	if m.info.Kind != ZeroShotClassification {
		return nil
	}
	find := func(names ...string) int {
		return slices.IndexFunc(m.info.Labels, func(l string) bool {
			return slices.Contains(names, strings.ToLower(l))
		})
	}
	m.nli.entail = find("entailment")
	if m.info.Labels == nil || m.nli.entail < 0 {
		return fmt.Errorf("%s: a %s model needs an \"entailment\" label in id2label (labels: %v)", config, ZeroShotClassification, m.info.Labels)
	}
	if m.nli.contra = find("contradiction", "not_entailment"); m.nli.contra < 0 {
		m.nli.contra = 0
	}
	return nil
}

// PrepareInput tokenizes a job's input for the model, as Prepare does for a
// single text, and also for the inputs that are pairs: a text with a
// text_pair, a rerank job (a query and documents, on a text-ranking model),
// a zero-shot job (a text and candidate labels, on a zero-shot model), and a
// tokenize job (options.tokenize), which runs no model at all. Input that
// can never succeed gets a permanent job error naming what is wrong.
func (m *Model) PrepareInput(in job.Input, opts job.Options) (*Input, error) {
	invalid := func(format string, a ...any) (*Input, error) {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf(format, a...))
	}
	kind := m.info.Kind
	if opts.Tokenize != "" {
		return m.prepareTokenize(in, opts)
	}
	if len(in.Documents) > 0 && kind != TextRanking {
		return invalid("documents are for rerank jobs; %s is a %s model", m.info.Task, kind)
	}
	if len(opts.CandidateLabels) > 0 && kind != ZeroShotClassification {
		return invalid("candidate_labels are for zero-shot classification; %s is a %s model", m.info.Task, kind)
	}
	if err := checkText("text", in.Text); err != nil {
		return nil, err
	}
	switch {
	case kind == TextRanking && len(in.Documents) > 0:
		if in.TextPair != "" {
			return invalid("a rerank job has documents or a text_pair, not both")
		}
		return m.prepareRerank(in.Text, in.Documents, opts)
	case kind == ZeroShotClassification && in.TextPair == "":
		return m.prepareZeroShot(in.Text, opts)
	case in.TextPair != "":
		if kind != TextClassification && kind != TextRanking && kind != ZeroShotClassification {
			return invalid("text_pair needs a model that reads pairs; %s is a %s model", m.info.Task, kind)
		}
		if err := checkText("text_pair", in.TextPair); err != nil {
			return nil, err
		}
		return m.preparePairs(modePair, in.Text, []string{in.TextPair}, opts)
	case kind == TextRanking:
		return invalid("%s ranks pairs: give a text_pair (or documents for a rerank)", m.info.Task)
	}
	return m.Prepare(in.Text, opts)
}

func checkText(field, text string) error {
	if strings.TrimSpace(text) == "" {
		return job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s is empty", field))
	}
	if !utf8.ValidString(text) {
		return job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s is not valid UTF-8", field))
	}
	return nil
}

func (m *Model) prepareRerank(query string, docs []string, opts job.Options) (*Input, error) {
	if len(docs) > job.MaxPairRows {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%d documents; a rerank job takes at most %d (split the list and merge by score)", len(docs), job.MaxPairRows))
	}
	if opts.TopN < 0 {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("top_n %d is negative", opts.TopN))
	}
	for i, d := range docs {
		if err := checkText(fmt.Sprintf("documents[%d]", i), d); err != nil {
			return nil, err
		}
	}
	in, err := m.preparePairs(modeRerank, query, docs, opts)
	if err != nil {
		return nil, err
	}
	in.pair.topN = opts.TopN
	if opts.ReturnDocuments {
		in.pair.docs = docs
	}
	return in, nil
}

func (m *Model) prepareZeroShot(text string, opts job.Options) (*Input, error) {
	labels := opts.CandidateLabels
	switch {
	case len(labels) == 0:
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s is a zero-shot model: give candidate_labels (or a text_pair to classify one pair)", m.info.Task))
	case len(labels) > job.MaxPairRows:
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%d candidate_labels; at most %d", len(labels), job.MaxPairRows))
	}
	tpl := opts.HypothesisTemplate
	if tpl == "" {
		tpl = job.DefaultHypothesisTemplate
	}
	if !strings.Contains(tpl, "{}") {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("hypothesis_template %q has no {} for the label", tpl))
	}
	hyps := make([]string, len(labels))
	for i, l := range labels {
		if strings.TrimSpace(l) == "" {
			return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("candidate_labels[%d] is empty", i))
		}
		// Only the first {} is replaced, as transformers.js's
		// String.replace does.
		hyps[i] = strings.Replace(tpl, "{}", l, 1)
	}
	in, err := m.preparePairs(modeZeroShot, text, hyps, opts)
	if err != nil {
		return nil, err
	}
	in.pair.labels = labels
	in.pair.multi = opts.MultiLabel
	return in, nil
}

// preparePairs tokenizes text against each of seconds, one row per pair. A
// pair longer than the model's max_length is cut longest first (the longer
// of the two texts loses a token at a time, as Hugging Face's
// truncation=True does for pairs), so a long article still gets a score
// from its beginning rather than failing.
func (m *Model) preparePairs(mode pairMode, text string, seconds []string, opts job.Options) (*Input, error) {
	if opts.Aggregation != "" {
		return nil, job.Permanent(job.CodeInvalidInput, errors.New("aggregation is for token classification"))
	}
	a := m.tok.Encode(text).IDs
	p := &pairInput{mode: mode, a: a, bs: make([][]int64, len(seconds)), as: make([]int, len(seconds))}
	room := m.info.MaxLength - m.pairTpl.Specials()
	if room < 2 {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s: max_length %d leaves no room for a pair", m.info.Task, m.info.MaxLength))
	}
	for i, s := range seconds {
		b := m.tok.Encode(s).IDs
		na, nb := longestFirst(len(a), len(b), room)
		p.as[i], p.bs[i] = na, b[:nb]
		p.tokens = max(p.tokens, na+nb+m.pairTpl.Specials())
	}
	return &Input{m: m, text: text, topK: opts.TopK, starts: make([]int, len(seconds)), pair: p}, nil
}

// longestFirst returns how many tokens of a pair of na and nb tokens to keep
// so that they fit in room, as the tokenizers library's LongestFirst
// strategy decides: the longer text is cut first, down to the shorter's
// length; then both share room, the second text taking an odd token.
func longestFirst(na, nb, room int) (int, int) {
	if na+nb <= room {
		return na, nb
	}
	swap := na > nb
	if swap {
		na, nb = nb, na
	}
	if na > room {
		nb = na
	} else {
		nb = max(na, room-na)
	}
	if na+nb > room {
		na = room / 2
		nb = na + room%2
	}
	if swap {
		na, nb = nb, na
	}
	return na, nb
}

// fill writes row r (special tokens, both texts, token type ids) into ids
// and types and returns its length.
func (p *pairInput) fill(tpl tokenize.PairTemplate, ids, types []int64, r int) int {
	return tpl.Fill(ids, types, p.a[:p.as[r]], p.bs[r])
}

// postPairs turns the rows of a pair input (rows × dim logits from row on)
// into its result.
func (m *Model) postPairs(b *runBuf, in *Input, out []float32, dim, row int) error {
	p := in.pair
	rows := out[row*dim : (row+len(p.bs))*dim]
	for _, l := range rows {
		if !finite(l) {
			return errNonFinite
		}
	}
	switch p.mode {
	case modeTokenize:
		b.res = append(b.res, p.result...)
	case modePair:
		b.scores = grow(b.scores, dim)
		b.order = grow(b.order, dim)
		if err := scoreLabels(m.fn, rows, b.scores, b.order); err != nil {
			return err
		}
		if m.info.Kind == TextRanking {
			b.res = append(b.res, `{"relevance_score":`...)
			b.res = appendFloat(b.res, float32(b.scores[0]))
			b.res = append(b.res, '}')
			break
		}
		b.res = appendLabels(b.res, m.info.Labels, b.scores, b.order, in.topK)
	case modeRerank:
		n := len(p.bs)
		b.scores = grow(b.scores, n)
		var one [1]float64
		var idx [1]int
		for r := range n {
			// The relevance is the model's function (sigmoid for one
			// logit) of the row's first logit.
			if err := scoreLabels(m.fn, rows[r*dim:r*dim+1], one[:], idx[:]); err != nil {
				return err
			}
			b.scores[r] = one[0]
		}
		b.order = sortedDesc(b.order, b.scores[:n])
		top := n
		if p.topN > 0 {
			top = min(top, p.topN)
		}
		b.res = append(b.res, `{"results":[`...)
		for k, i := range b.order[:top] {
			if k > 0 {
				b.res = append(b.res, ',')
			}
			b.res = append(b.res, `{"index":`...)
			b.res = appendInt(b.res, i)
			b.res = append(b.res, `,"relevance_score":`...)
			b.res = appendFloat(b.res, float32(b.scores[i]))
			if p.docs != nil {
				b.res = append(b.res, `,"document":{"text":`...)
				b.res = appendString(b.res, p.docs[i])
				b.res = append(b.res, '}')
			}
			b.res = append(b.res, '}')
		}
		b.res = append(b.res, "]}"...)
	case modeZeroShot:
		n := len(p.bs)
		b.scores = grow(b.scores, n)
		ent, con := m.nli.entail, m.nli.contra
		if p.multi || n == 1 {
			// Each label alone: softmax of entailment against contradiction.
			var two [2]float64
			for r := range n {
				softmax(two[:], []float32{rows[r*dim+con], rows[r*dim+ent]})
				b.scores[r] = two[1]
			}
		} else {
			// The labels compete: softmax of the entailment logits.
			logits := make([]float32, n)
			for r := range n {
				logits[r] = rows[r*dim+ent]
			}
			softmax(b.scores[:n], logits)
		}
		b.order = sortedDesc(b.order, b.scores[:n])
		b.res = append(b.res, `{"sequence":`...)
		b.res = appendString(b.res, in.text)
		b.res = append(b.res, `,"labels":[`...)
		for k, i := range b.order {
			if k > 0 {
				b.res = append(b.res, ',')
			}
			b.res = appendString(b.res, p.labels[i])
		}
		b.res = append(b.res, `],"scores":[`...)
		for k, i := range b.order {
			if k > 0 {
				b.res = append(b.res, ',')
			}
			b.res = appendFloat(b.res, float32(b.scores[i]))
		}
		b.res = append(b.res, "]}"...)
	}
	return nil
}

// sortedDesc returns the indices of scores by descending score, ties in
// index order (a stable sort, as JavaScript's).
func sortedDesc(order []int, scores []float64) []int {
	order = grow(order, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	return order
}

// prepareTokenize answers a tokenize job at once: for Text and each of
// Documents, the number of tokens the model would see (special tokens
// included, before any truncation or windowing), and with
// job.TokenizeTokens their ids, token strings and character (code point)
// offsets into the text (null for special tokens). The input takes no row.
func (m *Model) prepareTokenize(in job.Input, opts job.Options) (*Input, error) {
	if opts.Tokenize != job.TokenizeCount && opts.Tokenize != job.TokenizeTokens {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("tokenize %q is not supported (want %q or %q)", opts.Tokenize, job.TokenizeCount, job.TokenizeTokens))
	}
	if in.TextPair != "" {
		return nil, job.Permanent(job.CodeInvalidInput, errors.New("a tokenize job counts texts, not pairs"))
	}
	texts := append([]string{in.Text}, in.Documents...)
	if len(texts) > job.MaxTokenizeTexts {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%d texts; a tokenize job takes at most %d", len(texts), job.MaxTokenizeTexts))
	}
	for i, t := range texts {
		field := "text"
		if i > 0 {
			field = fmt.Sprintf("documents[%d]", i-1)
		}
		if !utf8.ValidString(t) {
			return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s is not valid UTF-8", field))
		}
	}
	specials := len(m.prefix) + len(m.suffix)
	res := []byte(`{"results":[`)
	total := 0
	for i, t := range texts {
		enc := m.tok.Encode(t)
		n := specials + len(enc.IDs)
		total += n
		if i > 0 {
			res = append(res, ',')
		}
		res = append(res, `{"count":`...)
		res = appendInt(res, n)
		if opts.Tokenize == job.TokenizeTokens {
			res = appendTokens(res, m, t, enc)
		}
		res = append(res, '}')
	}
	res = append(res, `],"total":`...)
	res = appendInt(res, total)
	res = append(res, `,"max_length":`...)
	res = appendInt(res, m.info.MaxLength)
	res = append(res, '}')
	return &Input{m: m, text: in.Text, pair: &pairInput{mode: modeTokenize, result: res}}, nil
}

// appendTokens appends ,"ids":[..],"tokens":[..],"offsets":[..] for one
// encoded text with the model's special tokens around it.
func appendTokens(dst []byte, m *Model, text string, enc *tokenize.Encoding) []byte {
	ids := make([]int64, 0, len(m.prefix)+len(enc.IDs)+len(m.suffix))
	ids = append(append(append(ids, m.prefix...), enc.IDs...), m.suffix...)
	dst = append(dst, `,"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendInt(dst, int(id))
	}
	dst = append(dst, `],"tokens":[`...)
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.tok.Token(id))
	}
	dst = append(dst, `],"offsets":[`...)
	rc := runeCounter{s: text}
	for i := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		j := i - len(m.prefix)
		if j < 0 || j >= len(enc.IDs) {
			dst = append(dst, "null"...)
			continue
		}
		o := enc.Offsets[j]
		dst = append(dst, '[')
		dst = appendInt(dst, rc.at(o.Start))
		dst = append(dst, ',')
		dst = appendInt(dst, rc.at(o.End))
		dst = append(dst, ']')
	}
	return append(dst, ']')
}
