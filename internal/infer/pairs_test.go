package infer

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// The pair models `make models` builds.
const (
	crossEncoderModel = "minilm-l6-random-cross-encoder"
	nliModel          = "minilm-l6-random-nli"
)

// startReferenceReq runs reference/pipeline.mjs with a whole request.
func startReferenceReq(t *testing.T, node string, req map[string]any) *referenceRun {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := &referenceRun{cmd: exec.Command(node, "pipeline.mjs")}
	r.cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	r.cmd.Stdin = bytes.NewReader(body)
	r.cmd.Stdout = &r.stdout
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start node reference/pipeline.mjs: %v", err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// runInputs prepares each input with PrepareInput and runs them as one batch.
func runInputs(t *testing.T, m *Model, opts job.Options, inputs ...job.Input) []json.RawMessage {
	t.Helper()
	ins := make([]*Input, len(inputs))
	for i, in := range inputs {
		p, err := m.PrepareInput(in, opts)
		if err != nil {
			t.Fatalf("PrepareInput %+v: %v", in, err)
		}
		ins[i] = p
	}
	outs, _, err := m.Run(context.Background(), ins)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := make([]json.RawMessage, len(outs))
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("output %d: %v", i, o.Err)
		}
		res[i] = o.Result
	}
	return res
}

type zeroShotResult struct {
	Sequence string    `json:"sequence"`
	Labels   []string  `json:"labels"`
	Scores   []float64 `json:"scores"`
}

// TestZeroShotParityWithTransformersJS runs the NLI model's zero-shot
// classification here and through transformers.js's zero-shot pipeline on
// the same files (single-label, multi-label and a custom hypothesis
// template) and requires the same sequence, the same score for every label
// within parityTol, and labels sorted by score. Each text's labels are one
// batch of (premise, hypothesis) rows here and one call per hypothesis
// there, so padding and batching must not matter either.
func TestZeroShotParityWithTransformersJS(t *testing.T) {
	node := referenceNode(t)
	m := loadModel(t, nliModel)
	texts := parityTexts(t)[:6]
	labels := []string{"business", "politics", "sports", "energy", "science and technology"}
	cases := []struct {
		name string
		opts job.Options
	}{
		{"single-label", job.Options{CandidateLabels: labels}},
		{"multi-label", job.Options{CandidateLabels: labels, MultiLabel: true}},
		{"template", job.Options{CandidateLabels: labels[:3], HypothesisTemplate: "This news story is about {}."}},
		{"one-label", job.Options{CandidateLabels: labels[:1]}},
	}
	sets := make([]map[string]any, len(cases))
	for i, tc := range cases {
		o := map[string]any{"candidate_labels": tc.opts.CandidateLabels, "multi_label": tc.opts.MultiLabel}
		if tc.opts.HypothesisTemplate != "" {
			o["hypothesis_template"] = tc.opts.HypothesisTemplate
		}
		sets[i] = o
	}
	// One reference process loads the model once for every case.
	ref := startReferenceReq(t, node, map[string]any{"model_dir": m.Info().Dir, "texts": texts, "threads": 1, "option_sets": sets})
	inputs := make([]job.Input, len(texts))
	for k, s := range texts {
		inputs[k] = job.Input{Text: s}
	}
	gots := make([][]json.RawMessage, len(cases)) // while the reference loads
	for i, tc := range cases {
		gots[i] = runInputs(t, m, tc.opts, inputs...)
	}
	var perSet [][]json.RawMessage
	for _, r := range ref.results(t, len(cases)) {
		var rs []json.RawMessage
		if err := json.Unmarshal(r, &rs); err != nil || len(rs) != len(texts) {
			t.Fatalf("reference option set: %v (%d results)", err, len(rs))
		}
		perSet = append(perSet, rs)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, want := gots[i], perSet[i]
			for k := range texts {
				g := decode[zeroShotResult](t, got[k])
				var w zeroShotResult
				if err := json.Unmarshal(want[k], &w); err != nil {
					t.Fatal(err)
				}
				if g.Sequence != w.Sequence || len(g.Labels) != len(w.Labels) {
					t.Fatalf("text %d: got %s, want %s", k, got[k], want[k])
				}
				if !slices.IsSortedFunc(g.Scores, func(a, b float64) int { return -cmpFloat(a, b) }) {
					t.Errorf("text %d: scores not sorted: %v", k, g.Scores)
				}
				sum := 0.0
				for j, l := range w.Labels {
					at := slices.Index(g.Labels, l)
					if at < 0 || math.Abs(g.Scores[at]-w.Scores[j]) > parityTol {
						t.Fatalf("text %d label %q: got %s, want %s", k, l, got[k], want[k])
					}
					sum += g.Scores[at]
				}
				if !tc.opts.MultiLabel && len(w.Labels) > 1 && math.Abs(sum-1) > 1e-5 {
					t.Errorf("text %d: single-label scores sum to %v", k, sum)
				}
			}
		})
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type rerankResult struct {
	Results []struct {
		Index          int     `json:"index"`
		RelevanceScore float64 `json:"relevance_score"`
		Document       *struct {
			Text string `json:"text"`
		} `json:"document"`
	} `json:"results"`
}

// TestRerankParityWithTransformersJS ranks news paragraphs against queries
// with the cross-encoder and requires every (query, document) relevance to
// equal the sigmoid of the logit transformers.js computes for the pair (its
// tokenizer's pair encoding, token type ids included) within parityTol, the
// results sorted by relevance with their original indices, top_n and
// return_documents honoured. It also runs each pair as a single
// text/text_pair input (a backfill document).
func TestRerankParityWithTransformersJS(t *testing.T) {
	node := referenceNode(t)
	m := loadModel(t, crossEncoderModel)
	docs := parityTexts(t)[20:36]
	queries := []string{"oil prices and OPEC output", "central bank interest rates", "who won the election"}
	var qs, ds []string
	for _, q := range queries {
		for _, d := range docs {
			qs, ds = append(qs, q), append(ds, d)
		}
	}
	ref := startReferenceReq(t, node, map[string]any{"model_dir": m.Info().Dir, "texts": qs, "text_pairs": ds, "threads": 1})

	inputs := make([]job.Input, len(queries))
	for i, q := range queries {
		inputs[i] = job.Input{Text: q, Documents: docs}
	}
	got := runInputs(t, m, job.Options{ReturnDocuments: true}, inputs...)
	top := runInputs(t, m, job.Options{TopN: 3}, inputs[0])
	pairs := make([]job.Input, len(docs))
	for i, d := range docs {
		pairs[i] = job.Input{Text: queries[0], TextPair: d}
	}
	single := runInputs(t, m, job.Options{}, pairs...)

	raw := ref.results(t, len(qs))
	want := make([]float64, len(raw))
	for i, r := range raw {
		var v struct{ Score float64 }
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatal(err)
		}
		want[i] = v.Score
	}
	for qi := range queries {
		g := decode[rerankResult](t, got[qi])
		if len(g.Results) != len(docs) {
			t.Fatalf("query %d: %d results for %d documents", qi, len(g.Results), len(docs))
		}
		seen := map[int]bool{}
		for k, r := range g.Results {
			if k > 0 && r.RelevanceScore > g.Results[k-1].RelevanceScore {
				t.Errorf("query %d: results not sorted by relevance: %s", qi, got[qi])
			}
			if seen[r.Index] || r.Index < 0 || r.Index >= len(docs) {
				t.Fatalf("query %d: bad or repeated index %d", qi, r.Index)
			}
			seen[r.Index] = true
			if w := want[qi*len(docs)+r.Index]; math.Abs(r.RelevanceScore-w) > parityTol {
				t.Errorf("query %d document %d: relevance %v, transformers.js %v", qi, r.Index, r.RelevanceScore, w)
			}
			if r.Document == nil || r.Document.Text != docs[r.Index] {
				t.Errorf("query %d result %d: document %+v, want the text of document %d", qi, k, r.Document, r.Index)
			}
		}
	}
	tg := decode[rerankResult](t, top[0])
	full := decode[rerankResult](t, got[0])
	if len(tg.Results) != 3 || tg.Results[0].Index != full.Results[0].Index || tg.Results[2].Index != full.Results[2].Index || tg.Results[0].Document != nil {
		t.Errorf("top_n 3: %s; all: %s", top[0], got[0])
	}
	for i, s := range single {
		var v struct {
			RelevanceScore float64 `json:"relevance_score"`
		}
		if err := strictDecode(s, &v); err != nil {
			t.Fatalf("pair %d: %s: %v", i, s, err)
		}
		if math.Abs(v.RelevanceScore-want[i]) > parityTol {
			t.Errorf("pair %d: relevance %v, transformers.js %v", i, v.RelevanceScore, want[i])
		}
	}
}

// TestPairTruncation checks that a pair longer than max_length is cut
// longest first to exactly max_length, keeping the template's special
// tokens, and that the cut follows the tokenizers library's LongestFirst.
func TestPairTruncation(t *testing.T) {
	for _, tc := range []struct{ na, nb, room, wa, wb int }{
		{3, 4, 10, 3, 4},  // fits
		{3, 10, 8, 3, 5},  // the longer is cut
		{10, 3, 8, 5, 3},  // either side
		{10, 10, 8, 4, 4}, // both halve
		{10, 10, 9, 4, 5}, // the second takes the odd token
		{600, 700, 509, 254, 255},
	} {
		a, b := longestFirst(tc.na, tc.nb, tc.room)
		if a != tc.wa || b != tc.wb {
			t.Errorf("longestFirst(%d, %d, %d) = %d, %d; want %d, %d", tc.na, tc.nb, tc.room, a, b, tc.wa, tc.wb)
		}
	}
	m := loadModel(t, crossEncoderModel)
	long := longArticle(t, 6000)
	in, err := m.PrepareInput(job.Input{Text: "oil prices", Documents: []string{long, "short"}}, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Tokens() != m.Info().MaxLength || in.Rows() != 2 {
		t.Fatalf("Tokens %d Rows %d; want %d and 2", in.Tokens(), in.Rows(), m.Info().MaxLength)
	}
	res := runInputs(t, m, job.Options{}, job.Input{Text: "oil prices", Documents: []string{long, "short"}})
	if r := decode[rerankResult](t, res[0]); len(r.Results) != 2 {
		t.Fatalf("result %s", res[0])
	}
}

// TestPrepareInputErrors checks that inputs a model cannot answer are
// refused with a permanent invalid_input error naming what to change.
func TestPrepareInputErrors(t *testing.T) {
	ce := loadModel(t, crossEncoderModel)
	nli := loadModel(t, nliModel)
	cls := loadModel(t, classifierModel)
	emb := loadModel(t, embedModel)
	many := make([]string, job.MaxPairRows+1)
	for i := range many {
		many[i] = "doc"
	}
	for _, tc := range []struct {
		name string
		m    *Model
		in   job.Input
		opts job.Options
		want string
	}{
		{"documents on a classifier", cls, job.Input{Text: "q", Documents: []string{"d"}}, job.Options{}, "documents are for rerank"},
		{"labels on a cross-encoder", ce, job.Input{Text: "q", TextPair: "d"}, job.Options{CandidateLabels: []string{"x"}}, "candidate_labels are for zero-shot"},
		{"cross-encoder without pair", ce, job.Input{Text: "q"}, job.Options{}, "give a text_pair"},
		{"pair and documents", ce, job.Input{Text: "q", TextPair: "p", Documents: []string{"d"}}, job.Options{}, "not both"},
		{"too many documents", ce, job.Input{Text: "q", Documents: many}, job.Options{}, "at most 256"},
		{"empty document", ce, job.Input{Text: "q", Documents: []string{"a", " "}}, job.Options{}, "documents[1] is empty"},
		{"negative top_n", ce, job.Input{Text: "q", Documents: []string{"a"}}, job.Options{TopN: -1}, "top_n"},
		{"zero-shot without labels", nli, job.Input{Text: "q"}, job.Options{}, "give candidate_labels"},
		{"template without {}", nli, job.Input{Text: "q"}, job.Options{CandidateLabels: []string{"a"}, HypothesisTemplate: "About it."}, "has no {}"},
		{"empty label", nli, job.Input{Text: "q"}, job.Options{CandidateLabels: []string{"a", ""}}, "candidate_labels[1] is empty"},
		{"pair on embeddings", emb, job.Input{Text: "q", TextPair: "p"}, job.Options{}, "needs a model that reads pairs"},
		{"empty pair", cls, job.Input{Text: "q", TextPair: " "}, job.Options{}, "text_pair is empty"},
		{"bad tokenize", cls, job.Input{Text: "q"}, job.Options{Tokenize: "all"}, "tokenize \"all\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.PrepareInput(tc.in, tc.opts)
			if err == nil || permanentCode(err) != job.CodeInvalidInput || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want invalid_input containing %q", err, tc.want)
			}
		})
	}
}

// TestPairClassification runs an NLI pair as text/text_pair on the NLI model
// (the model's labels, as the text-classification pipeline gives them) and
// checks that the pair, not the text alone, decides the answer.
func TestPairClassification(t *testing.T) {
	m := loadModel(t, nliModel)
	res := runInputs(t, m, job.Options{}, job.Input{Text: "Oil prices rose.", TextPair: "This example is energy."},
		job.Input{Text: "Oil prices rose.", TextPair: "This example is sports."})
	a, b := decode[labelsResult](t, res[0]), decode[labelsResult](t, res[1])
	if len(a.Labels) != 3 || len(b.Labels) != 3 {
		t.Fatalf("results %s %s", res[0], res[1])
	}
	if a.Labels[0].Label == b.Labels[0].Label && a.Labels[0].Score == b.Labels[0].Score {
		t.Errorf("different hypotheses gave the same answer: %s %s", res[0], res[1])
	}
}

type tokenizeResult struct {
	Results []struct {
		Count   int      `json:"count"`
		IDs     []int64  `json:"ids"`
		Tokens  []string `json:"tokens"`
		Offsets []*[2]int
	} `json:"results"`
	Total     int `json:"total"`
	MaxLength int `json:"max_length"`
}

// TestTokenizeCountsMatchReference counts tokens of news paragraphs and long
// articles with a tokenize job and requires each count to be what
// @huggingface/tokenizers encodes from the same tokenizer.json plus the two
// special tokens, and ids, tokens and character offsets to agree with the
// reference's byte offsets.
func TestTokenizeCountsMatchReference(t *testing.T) {
	node := referenceNode(t)
	m := loadModel(t, classifierModel)
	texts := append(newsDocs(t)[:20], longArticle(t, 5000), "Société Générale — €4.2bn 😀")
	req, _ := json.Marshal(map[string]any{"tokenizer": filepath.Join(m.Info().Dir, "tokenizer.json"), "texts": texts})
	cmd := exec.Command(node, "tokenize.mjs")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	cmd.Stdin = bytes.NewReader(req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference/tokenize.mjs: %v", err)
	}
	var ref struct {
		Results []struct {
			IDs     []int64  `json:"ids"`
			Offsets [][2]int `json:"offsets"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	in := job.Input{Text: texts[0], Documents: texts[1:]}
	counts := decode[tokenizeResult](t, runInputs(t, m, job.Options{Tokenize: job.TokenizeCount}, in)[0])
	full := decode[tokenizeResult](t, runInputs(t, m, job.Options{Tokenize: job.TokenizeTokens}, in)[0])
	total := 0
	for i, text := range texts {
		w := ref.Results[i]
		c, f := counts.Results[i], full.Results[i]
		if c.Count != len(w.IDs)+2 || f.Count != c.Count || c.IDs != nil {
			t.Fatalf("text %d: count %d (tokens form %d), reference %d + 2 special tokens", i, c.Count, f.Count, len(w.IDs))
		}
		total += c.Count
		if !slices.Equal(f.IDs[1:len(f.IDs)-1], w.IDs) || f.Offsets[0] != nil || f.Tokens[0] != "[CLS]" {
			t.Fatalf("text %d: ids %v, reference %v", i, f.IDs, w.IDs)
		}
		for k, o := range w.Offsets {
			g := f.Offsets[k+1]
			if g == nil || g[0] != utf8.RuneCountInString(text[:o[0]]) || g[1] != utf8.RuneCountInString(text[:o[1]]) {
				t.Fatalf("text %d token %d: offsets %v, reference bytes %v", i, k, g, o)
			}
		}
	}
	if counts.Total != total || counts.MaxLength != m.Info().MaxLength {
		t.Errorf("total %d max_length %d; want %d and %d", counts.Total, counts.MaxLength, total, m.Info().MaxLength)
	}
	// A tokenize job takes no model row, alone or beside documents.
	p, err := m.PrepareInput(in, job.Options{Tokenize: job.TokenizeCount})
	if err != nil || p.Rows() != 0 {
		t.Fatalf("tokenize input: rows %v, %v", p.Rows(), err)
	}
	mixed := runInputs(t, m, job.Options{}, job.Input{Text: texts[0]})
	if !strings.Contains(string(mixed[0]), `"labels"`) {
		t.Errorf("classification beside: %s", mixed[0])
	}
}
