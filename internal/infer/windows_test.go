package infer

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// handModel is a token classifier with the NER model's tokenizer and tiny
// windows, whose "model output" a test writes by hand: Prepare and the
// post-processing run for real, without ONNX Runtime.
func handModel(t *testing.T, window, stride int) *Model {
	t.Helper()
	p := filepath.Join(testenv.ModelDir(t, nerModel), "tokenizer.json")
	tok, err := tokenize.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	tpl := tok.Template()
	m := &Model{
		info:   Info{Task: "hand", Kind: TokenClassification, Labels: conll},
		tok:    tok,
		prefix: tpl.Prefix,
		suffix: tpl.Suffix,
		padID:  tok.PadID(),
		unkID:  findUnk(p, tok),
		window: window,
		stride: stride,
	}
	m.info.MaxLength = window + len(tpl.Prefix) + len(tpl.Suffix)
	m.encPool.New = func() any { return new(tokenize.Encoding) }
	return m
}

// handLogits builds the output of a token classifier for in: token j of the
// document gets label want(j) in the window it is taken from, and B-PER in
// every other window, so a merge that took a token from the wrong window
// shows up as a PER entity.
func handLogits(m *Model, in *Input, want func(j int) string) (out []float32, T int) {
	T = in.Tokens()
	L := len(conll)
	out = make([]float32, in.Rows()*T*L)
	own := owners(nil, len(in.ids), m.window, in.starts)
	for r := range in.Rows() {
		s, e := in.rowSpan(r)
		for j := s; j < e; j++ {
			lab := "B-PER"
			if int(own[j]) == r {
				lab = want(j)
			}
			pos := len(m.prefix) + j - s
			out[(r*T+pos)*L+int(label(lab))] = 5
		}
	}
	return out, T
}

func TestHandLogitsSimpleAggregationAcrossWindows(t *testing.T) {
	m := handModel(t, 4, 2)
	text := "Diamond Shamrock Corp said it agreed to sell its Zürich unit."
	in, err := m.Prepare(text, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	words := make([]string, len(in.ids))
	for j, id := range in.ids {
		words[j] = m.tok.Token(id)
	}
	if in.Rows() < 4 {
		t.Fatalf("%d windows for %v", in.Rows(), words)
	}
	idx := func(w string) int {
		i := slices.Index(words, w)
		if i < 0 {
			t.Fatalf("no token %q in %v", w, words)
		}
		return i
	}
	// Diamond Shamrock Corp: B-ORG I-ORG...; "said": O; "it": I-ORG, which
	// Python's simple aggregation makes a second ORG (B-ORG O I-ORG).
	// Zürich: B-LOC.
	corp, said, it, zur, unit := idx("Corp"), idx("said"), idx("it"), idx("Zürich"), idx("unit")
	out, T := handLogits(m, in, func(j int) string {
		switch {
		case j == 0:
			return "B-ORG"
		case j <= corp:
			return "I-ORG"
		case j == said:
			return "O"
		case j == it:
			return "I-ORG"
		case j == zur:
			return "B-LOC"
		case j > zur && j < unit:
			return "I-LOC"
		}
		return "O"
	})
	b := &runBuf{}
	if err := m.postTokens(b, in, out, len(conll), T, 0, labelTags(conll)); err != nil {
		t.Fatal(err)
	}
	r := decode[entitiesResult](t, b.res)
	type ent struct {
		group, word string
		start, end  int
	}
	var got []ent
	for _, e := range r.Entities {
		got = append(got, ent{e.EntityGroup, e.Word, e.Start, e.End})
		// Each token: logit 5 for its label, 0 for the 8 others.
		if want := math.Exp(5) / (math.Exp(5) + 8); math.Abs(e.Score-want) > 1e-6 {
			t.Errorf("%+v: score %v, want %v", e, e.Score, want)
		}
	}
	want := []ent{
		{"ORG", "Diamond Shamrock Corp", 0, 21},
		{"ORG", "it", 27, 29},
		{"LOC", "Zürich", 49, 55},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("entities %+v\nwant     %+v\ntokens %v, windows %v", got, want, words, in.starts)
	}
	runes := []rune(text)
	for _, e := range got {
		if string(runes[e.start:e.end]) != e.word {
			t.Errorf("text[%d:%d] = %q, word %q", e.start, e.end, string(runes[e.start:e.end]), e.word)
		}
	}
}

func TestHandLogitsUnknownTokenShowsTheText(t *testing.T) {
	m := handModel(t, 64, 8)
	if m.unkID < 0 {
		t.Fatal("no [UNK] found in the NER tokenizer")
	}
	text := "Acme ☃☃ Corp rose"
	in, err := m.Prepare(text, job.Options{Aggregation: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(in.ids, m.unkID) {
		t.Skipf("%q has no unknown token in this vocabulary", text)
	}
	out, T := handLogits(m, in, func(j int) string {
		if in.offs[j].Start < strings.Index(text, "rose") {
			return []string{"B-ORG", "I-ORG"}[min(j, 1)]
		}
		return "O"
	})
	b := &runBuf{}
	if err := m.postTokens(b, in, out, len(conll), T, 0, labelTags(conll)); err != nil {
		t.Fatal(err)
	}
	r := decode[entitiesResult](t, b.res)
	for _, e := range r.Entities {
		if strings.Contains(e.Word, "[UNK]") {
			t.Errorf("none: %+v shows [UNK]", e)
		}
	}
	in.agg = aggSimple
	b.res = b.res[:0]
	if err := m.postTokens(b, in, out, len(conll), T, 0, labelTags(conll)); err != nil {
		t.Fatal(err)
	}
	r = decode[entitiesResult](t, b.res)
	if len(r.Entities) != 1 || r.Entities[0].Word != "Acme ☃☃ Corp" || r.Entities[0].Start != 0 || r.Entities[0].End != 12 {
		t.Errorf("simple: %s", b.res)
	}
}
