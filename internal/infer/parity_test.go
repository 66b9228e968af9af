package infer

// Parity with the reference implementations.
//
// TestParityWithTransformersJS runs the models that `make models` builds
// through jetinfer's pipelines and through transformers.js
// (reference/pipeline.mjs: @huggingface/transformers on onnxruntime-node, the
// same ONNX Runtime version, loading the same model directories offline) and
// requires the same answers:
//
//   - text-classification: the same labels in the same order, scores within
//     parityTol;
//   - feature-extraction: the same dimension, every component within
//     parityTol;
//   - token-classification with aggregation "none": the same label for every
//     token, and for every token that is not "O" the same token index, word
//     and a score within parityTol. Both count positions in input_ids, so
//     [CLS] is index 0 and the first word piece index 1. jetinfer, like the
//     Python pipeline (ignore_labels defaults to ["O"]), leaves "O" tokens
//     out; the reference keeps them (ignore_labels: []) so that the test sees
//     every token's label. transformers.js also leaves out the unknown token
//     ([UNK]: it drops every token that decodes to "" with
//     skip_special_tokens, and [UNK] is a special token), which the Python
//     pipeline keeps (its special_tokens_mask marks only [CLS] and [SEP]) and
//     names by the text it stands for; jetinfer does as Python does, so at
//     those indices the test checks only that word is the text at start..end.
//
// The texts (testdata/parity_texts.txt) are news sentences of at most 100
// tokens, within every model's max_length: transformers.js truncates after
// adding special tokens, so longer inputs would lose their final [SEP] there
// and not here.
//
// Aggregation "simple" cannot be compared with transformers.js: jetinfer
// follows the Python TokenClassificationPipeline, which splits B-ORG O I-ORG
// into two ORG entities where transformers.js makes one. It is tested against
// a transliteration of the Python algorithm (pythonSimple) and on hand-made
// logits instead.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// parityTol is the largest difference allowed between a score or an
// embedding component here and in the reference.
const parityTol = 1e-4

// parityBatch is how many texts jetinfer runs in one Run; the reference runs
// them all in one call, so the two pad differently, which must not matter.
const parityBatch = 16

// parityTexts returns the lines of testdata/parity_texts.txt.
func parityTexts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "parity_texts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			texts = append(texts, l)
		}
	}
	if len(texts) < 100 {
		t.Fatalf("testdata/parity_texts.txt has %d texts, want at least 100", len(texts))
	}
	return texts
}

// referenceNode returns node's path, failing the test (never skipping it)
// when node or the reference harness's packages are missing.
func referenceNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("parity with transformers.js needs node: %v (run `make deps`)", err)
	}
	mod := filepath.Join(testenv.RepoRoot(), "reference", "node_modules", "@huggingface", "transformers", "package.json")
	if _, err := os.Stat(mod); err != nil {
		t.Fatalf("parity with transformers.js needs reference/node_modules: %v (run `make deps`)", err)
	}
	return node
}

// referenceRun is one run of reference/pipeline.mjs on a model directory,
// started before jetinfer's side runs so that node's start-up and model load
// overlap with it.
type referenceRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func startReference(t *testing.T, node, dir string, texts []string) *referenceRun {
	t.Helper()
	req, err := json.Marshal(map[string]any{"model_dir": dir, "texts": texts, "threads": 2})
	if err != nil {
		t.Fatal(err)
	}
	r := &referenceRun{cmd: exec.Command(node, "pipeline.mjs")}
	r.cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	r.cmd.Stdin = bytes.NewReader(req)
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

// results waits for the reference and returns one raw result per text.
func (r *referenceRun) results(t *testing.T, n int) []json.RawMessage {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("node reference/pipeline.mjs: %v\n%s", err, r.stderr.String())
	}
	var res struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &res); err != nil {
		t.Fatalf("reference output: %v\n%.500s", err, r.stdout.String())
	}
	if len(res.Results) != n {
		t.Fatalf("reference returned %d results for %d texts", len(res.Results), n)
	}
	return res.Results
}

// parityRun prepares texts (without truncation: each must fit in one row of
// at most 100 content tokens) and runs them in batches of parityBatch.
func parityRun(t *testing.T, m *Model, texts []string) []json.RawMessage {
	t.Helper()
	opts := job.Options{Aggregation: "none"}
	var res []json.RawMessage
	for i := 0; i < len(texts); i += parityBatch {
		chunk := texts[i:min(i+parityBatch, len(texts))]
		ins := make([]*Input, len(chunk))
		for k, s := range chunk {
			in, err := m.Prepare(s, opts)
			if err != nil {
				t.Fatalf("Prepare %q: %v", s, err)
			}
			if in.Rows() != 1 || len(in.ids) > 100 {
				t.Fatalf("text %d is %d tokens in %d rows; parity texts must be at most 100 tokens, in one row: %q", i+k, len(in.ids), in.Rows(), s)
			}
			ins[k] = in
		}
		outs, _, err := m.Run(context.Background(), ins)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		for k, o := range outs {
			if o.Err != nil {
				t.Fatalf("text %d: %v", i+k, o.Err)
			}
			res = append(res, o.Result)
		}
	}
	return res
}

func strictDecode(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

type parityLabel struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

type parityToken struct {
	Entity string  `json:"entity"`
	Score  float64 `json:"score"`
	Index  int     `json:"index"`
	Word   string  `json:"word"`
	Start  *int    `json:"start"`
	End    *int    `json:"end"`
}

type parityEmbedding struct {
	Embedding []float64 `json:"embedding"`
	Dim       int       `json:"dim"`
	Tokens    int       `json:"tokens"`
}

// compareLabels compares a text-classification result with the reference's.
func compareLabels(got, want json.RawMessage, maxDiff *float64) error {
	var g struct {
		Labels []parityLabel `json:"labels"`
	}
	var w []parityLabel
	if err := strictDecode(got, &g); err != nil {
		return fmt.Errorf("jetinfer result %s: %w", got, err)
	}
	if err := strictDecode(want, &w); err != nil {
		return fmt.Errorf("reference result %s: %w", want, err)
	}
	if len(g.Labels) != len(w) {
		return fmt.Errorf("%d labels, reference %d", len(g.Labels), len(w))
	}
	for i := range w {
		d := math.Abs(g.Labels[i].Score - w[i].Score)
		*maxDiff = max(*maxDiff, d)
		if g.Labels[i].Label != w[i].Label || d > parityTol {
			return fmt.Errorf("label %d is %s %.6f, reference %s %.6f", i, g.Labels[i].Label, g.Labels[i].Score, w[i].Label, w[i].Score)
		}
	}
	return nil
}

// compareEmbeddings compares a feature-extraction result with the reference's.
func compareEmbeddings(got, want json.RawMessage, maxDiff *float64) error {
	var g, w parityEmbedding
	if err := strictDecode(got, &g); err != nil {
		return fmt.Errorf("jetinfer result: %w", err)
	}
	if err := strictDecode(want, &w); err != nil {
		return fmt.Errorf("reference result: %w", err)
	}
	if g.Dim != w.Dim || len(g.Embedding) != g.Dim || len(w.Embedding) != w.Dim {
		return fmt.Errorf("dim %d (%d values), reference %d (%d values)", g.Dim, len(g.Embedding), w.Dim, len(w.Embedding))
	}
	for i := range w.Embedding {
		d := math.Abs(g.Embedding[i] - w.Embedding[i])
		*maxDiff = max(*maxDiff, d)
		if d > parityTol {
			return fmt.Errorf("component %d is %.7f, reference %.7f (off by %.2g)", i, g.Embedding[i], w.Embedding[i], d)
		}
	}
	return nil
}

// parityDoc is what a comparison needs to know about one input: its text,
// and for token classification the indices (in input_ids) of its unknown
// tokens.
type parityDoc struct {
	text string
	unk  map[int]bool
}

// compareTokens compares a token-classification result (aggregation none)
// with the reference's, which keeps "O" tokens and drops unknown ones.
func compareTokens(got, want json.RawMessage, doc parityDoc, maxDiff *float64) error {
	var g struct {
		Entities []parityToken `json:"entities"`
	}
	var w []parityToken
	if err := strictDecode(got, &g); err != nil {
		return fmt.Errorf("jetinfer result %s: %w", got, err)
	}
	if err := strictDecode(want, &w); err != nil {
		return fmt.Errorf("reference result %s: %w", want, err)
	}
	if len(w) == 0 {
		return errors.New("the reference labelled no tokens")
	}
	byIndex := make(map[int]parityToken, len(g.Entities))
	for _, e := range g.Entities {
		if e.Entity == "O" {
			return fmt.Errorf("jetinfer shows an O token: %+v", e)
		}
		if _, dup := byIndex[e.Index]; dup {
			return fmt.Errorf("jetinfer shows token %d twice", e.Index)
		}
		byIndex[e.Index] = e
	}
	runes := []rune(doc.text)
	var errs []error
	// offsets checks that e's offsets hold the text it names.
	offsets := func(e parityToken, unk bool) {
		if e.Start == nil || e.End == nil || *e.Start < 0 || *e.Start > *e.End || *e.End > len(runes) {
			errs = append(errs, fmt.Errorf("token %d %q: bad offsets %v..%v", e.Index, e.Word, e.Start, e.End))
			return
		}
		span := string(runes[*e.Start:*e.End])
		if word := strings.TrimPrefix(e.Word, "##"); word != span || (unk && word != e.Word) {
			errs = append(errs, fmt.Errorf("token %d %q: text[%d:%d] is %q", e.Index, e.Word, *e.Start, *e.End, span))
		}
	}
	next := 1 // [CLS] is 0
	for _, r := range w {
		for ; next < r.Index && doc.unk[next]; next++ {
			if e, ok := byIndex[next]; ok {
				offsets(e, true)
				delete(byIndex, next)
			}
		}
		if r.Index != next {
			return fmt.Errorf("reference token %q has index %d, want %d: [CLS] at 0, then every token but the unknown ones %v", r.Word, r.Index, next, doc.unk)
		}
		next++
		e, ok := byIndex[r.Index]
		delete(byIndex, r.Index)
		switch {
		case r.Entity == "O" && ok:
			errs = append(errs, fmt.Errorf("token %d %q: %s %.6f, reference O %.6f", r.Index, r.Word, e.Entity, e.Score, r.Score))
			continue
		case r.Entity == "O":
			continue
		case !ok:
			errs = append(errs, fmt.Errorf("token %d %q: O, reference %s %.6f", r.Index, r.Word, r.Entity, r.Score))
			continue
		}
		d := math.Abs(e.Score - r.Score)
		*maxDiff = max(*maxDiff, d)
		if e.Entity != r.Entity || d > parityTol {
			errs = append(errs, fmt.Errorf("token %d %q: %s %.6f, reference %s %.6f", r.Index, r.Word, e.Entity, e.Score, r.Entity, r.Score))
		}
		if e.Word != r.Word {
			errs = append(errs, fmt.Errorf("token %d: word %q, reference %q", r.Index, e.Word, r.Word))
		}
		offsets(e, false)
	}
	for ; doc.unk[next]; next++ { // unknown tokens at the end
		if e, ok := byIndex[next]; ok {
			offsets(e, true)
			delete(byIndex, next)
		}
	}
	for _, e := range byIndex {
		errs = append(errs, fmt.Errorf("token %d %q %s is not in the reference's %d tokens", e.Index, e.Word, e.Entity, len(w)))
	}
	if len(errs) > 8 {
		errs = append(errs[:8], fmt.Errorf("and %d more", len(errs)-8))
	}
	return errors.Join(errs...)
}

// TestParityWithTransformersJS compares jetinfer's three pipelines with
// transformers.js on the four models `make models` builds (see the top of
// this file for what is compared).
func TestParityWithTransformersJS(t *testing.T) {
	node := referenceNode(t)
	initORT(t)
	texts := parityTexts(t)
	cases := []struct {
		model   string
		n       int // texts from the top of the file: BERT-base is slow
		compare func(got, want json.RawMessage, doc parityDoc, maxDiff *float64) error
	}{
		{sentimentModel, len(texts), func(g, w json.RawMessage, _ parityDoc, d *float64) error { return compareLabels(g, w, d) }},
		{classifierModel, len(texts), func(g, w json.RawMessage, _ parityDoc, d *float64) error { return compareLabels(g, w, d) }},
		{embedModel, len(texts), func(g, w json.RawMessage, _ parityDoc, d *float64) error { return compareEmbeddings(g, w, d) }},
		{nerModel, 30, compareTokens},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			texts := texts[:tc.n]
			dir := testenv.ModelDir(t, tc.model)
			ref := startReference(t, node, dir, texts)
			m, err := LoadModel(dir, SessionOptions{IntraOpThreads: 2})
			if err != nil {
				t.Fatalf("LoadModel: %v", err)
			}
			defer m.Close()
			got := parityRun(t, m, texts)
			want := ref.results(t, len(texts))
			bad, unks, maxDiff := 0, 0, 0.0
			for i := range texts {
				doc := parityDoc{text: texts[i], unk: map[int]bool{}}
				if m.info.Kind == TokenClassification {
					enc := m.tok.Encode(texts[i])
					for j, id := range enc.IDs {
						if id == m.unkID {
							doc.unk[len(m.prefix)+j] = true
							unks++
						}
					}
				}
				if err := tc.compare(got[i], want[i], doc, &maxDiff); err != nil {
					bad++
					t.Errorf("text %d %q:\n%v", i+1, texts[i], err)
				}
			}
			if bad > 0 {
				t.Errorf("%s: %d of %d texts differ from transformers.js", tc.model, bad, len(texts))
			}
			t.Logf("%s: %d texts, largest difference from transformers.js %.2g", tc.model, len(texts), maxDiff)
			if m.info.Kind == TokenClassification && unks == 0 {
				t.Errorf("no text has an unknown token: the texts no longer test how they are shown")
			}
		})
	}
}

// pyEntity is one entity of the Python pipeline's aggregation "simple":
// the tokens first..last (indices into the document's tokens).
type pyEntity struct {
	group       string
	score       float64
	first, last int
}

// pythonSimple is transformers' TokenClassificationPipeline.postprocess for
// aggregation_strategy="simple" and the default ignore_labels=["O"],
// transliterated line by line from src/transformers/pipelines/
// token_classification.py (aggregate, group_entities, get_tag,
// group_sub_entities, then the ignore_labels filter). Each token is already
// its argmax label and that label's probability. "O" tokens take part in the
// grouping (get_tag reads "O" as an I- of tag "O") and their groups are
// dropped afterwards, so B-ORG O I-ORG is two ORG entities.
func pythonSimple(labels []string, preds []tokenPred) []pyEntity {
	getTag := func(name string) (bi, tag string) {
		switch {
		case strings.HasPrefix(name, "B-"):
			return "B", name[2:]
		case strings.HasPrefix(name, "I-"):
			return "I", name[2:]
		}
		return "I", name
	}
	subEntity := func(first, last int) pyEntity {
		name := labels[preds[first].label]
		parts := strings.SplitN(name, "-", 2) // split("-", 1)[-1]
		sum := 0.0
		for _, p := range preds[first : last+1] {
			sum += float64(p.score)
		}
		return pyEntity{group: parts[len(parts)-1], score: sum / float64(last-first+1), first: first, last: last}
	}
	var groups []pyEntity
	first := -1 // entity_group_disagg is preds[first:j]
	for j, p := range preds {
		if first < 0 {
			first = j
			continue
		}
		bi, tag := getTag(labels[p.label])
		_, lastTag := getTag(labels[preds[j-1].label])
		if tag == lastTag && bi != "B" {
			continue
		}
		groups = append(groups, subEntity(first, j-1))
		first = j
	}
	if first >= 0 {
		groups = append(groups, subEntity(first, len(preds)-1))
	}
	var out []pyEntity
	for _, g := range groups {
		if g.group != "O" { // ignore_labels
			out = append(out, g)
		}
	}
	return out
}

// TestGroupSimpleMatchesPythonPipeline compares groupSimple with the Python
// algorithm on random label sequences: CoNLL labels, and labels without a
// B-/I- prefix or with a "-" of their own.
func TestGroupSimpleMatchesPythonPipeline(t *testing.T) {
	labelSets := [][]string{
		conll,
		{"O", "PER", "ORG", "B-PER", "I-PER", "I-ORG", "B-X-Y", "I-X-Y", "X-Y"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for si, labels := range labelSets {
		tags := labelTags(labels)
		for n := range 3000 {
			preds := make([]tokenPred, rng.IntN(14))
			for j := range preds {
				// Skew towards O and few labels, so runs and repeats are common.
				l := 0
				if rng.IntN(3) > 0 {
					l = rng.IntN(len(labels))
				}
				preds[j] = tokenPred{label: int32(l), score: float32(rng.IntN(1000)+1) / 1000}
			}
			want := pythonSimple(labels, preds)
			got := groupSimple(nil, tokenUnits(nil, preds), tags)
			ok := len(got) == len(want)
			for i := 0; ok && i < len(got); i++ {
				ok = got[i].first == want[i].first && got[i].last == want[i].last && got[i].group == want[i].group &&
					math.Abs(float64(got[i].score)-want[i].score) < 1e-6
			}
			if !ok {
				seq := make([]string, len(preds))
				for j, p := range preds {
					seq[j] = labels[p.label]
				}
				t.Fatalf("label set %d, case %d: %v\ngroupSimple %+v\nPython      %+v", si, n, seq, got, want)
			}
		}
	}
}

// handEntity is an aggregated entity as the hand-worked tests compare them.
type handEntity struct {
	Group string  `json:"entity_group"`
	Score float64 `json:"score"`
	Word  string  `json:"word"`
	Start int     `json:"start"`
	End   int     `json:"end"`
}

// postEntities runs the token-classification post-processing of in on the
// logits out (T positions of L labels) and returns its entities.
func postEntities(t *testing.T, m *Model, in *Input, out []float32, L, T int) []handEntity {
	t.Helper()
	b := &runBuf{}
	if err := m.postTokens(b, in, out, L, T, 0, labelTags(conll)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Entities []handEntity `json:"entities"`
	}
	if err := strictDecode(b.res, &got); err != nil {
		t.Fatalf("%s: %v", b.res, err)
	}
	return got.Entities
}

// checkEntities compares entities with the hand-worked answer, scores
// within 1e-6.
func checkEntities(t *testing.T, got, want []handEntity) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("entities %+v\nwant     %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Group != w.Group || g.Word != w.Word || g.Start != w.Start || g.End != w.End || math.Abs(g.Score-w.Score) > 1e-6 {
			t.Errorf("entity %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestHandLogitsSimpleAggregationLikePython runs hand-made logits for a real
// BERT-cased tokenization through the token-classification post-processing
// and checks every entity against what the Python pipeline answers for them,
// worked out by hand: word pieces inside an entity, a B- on a word piece
// splitting a word, B-ORG O I-ORG-like splits (here with I-LOC), an I- with
// no B-, and a change of type inside a word.
func TestHandLogitsSimpleAggregationLikePython(t *testing.T) {
	m := handModel(t, 64, 8)
	text := "Diamond Shamrock Corp said Zürich's Nestlé fell"
	// The tokens and their labels and probabilities.
	type tok struct {
		word  string
		label string
		p     float64
	}
	toks := []tok{
		{"Diamond", "B-ORG", 0.9},
		{"S", "I-ORG", 0.8},
		{"##ham", "I-ORG", 0.7},
		{"##rock", "B-ORG", 0.6}, // a B- starts a new entity, even inside a word
		{"Corp", "I-ORG", 0.5},
		{"said", "O", 0.9},
		{"Zürich", "I-LOC", 0.4}, // I- without B- still makes an entity
		{"'", "O", 0.5},
		{"s", "I-LOC", 0.3}, // LOC O LOC: two entities in Python
		{"N", "B-ORG", 0.9},
		{"##est", "I-PER", 0.8}, // a change of type inside a word
		{"##lé", "I-PER", 0.7},
		{"fell", "O", 0.95},
	}
	in, err := m.Prepare(text, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.ids) != len(toks) || in.Rows() != 1 {
		t.Fatalf("%q is %d tokens in %d rows, want %d in one", text, len(in.ids), in.Rows(), len(toks))
	}
	for j, id := range in.ids {
		if w := m.tok.Token(id); w != toks[j].word {
			t.Fatalf("token %d is %q, want %q", j, w, toks[j].word)
		}
	}
	// Logits whose softmax gives each token probability p for its label and
	// (1-p)/8 for each other one.
	L := len(conll)
	T := in.Tokens()
	out := make([]float32, T*L)
	for j, tk := range toks {
		row := out[(len(m.prefix)+j)*L : (len(m.prefix)+j+1)*L]
		for k := range row {
			row[k] = float32(math.Log((1 - tk.p) / float64(L-1)))
		}
		row[label(tk.label)] = float32(math.Log(tk.p))
	}

	// What transformers' pipeline(..., aggregation_strategy="simple") returns:
	// word is convert_tokens_to_string of the group's tokens (the WordPiece
	// decoder keeps a leading "##"), start and end are character offsets.
	want := []handEntity{
		{"ORG", 0.8, "Diamond Sham", 0, 12},
		{"ORG", 0.55, "##rock Corp", 12, 21},
		{"LOC", 0.4, "Zürich", 27, 33},
		{"LOC", 0.3, "s", 34, 35},
		{"ORG", 0.9, "N", 36, 37},
		{"PER", 0.75, "##estlé", 37, 42},
	}
	checkEntities(t, postEntities(t, m, in, out, L, T), want)

	// The same tokens through the Python algorithm give the same groups.
	preds := make([]tokenPred, len(toks))
	for j, tk := range toks {
		preds[j] = tokenPred{label: label(tk.label), score: float32(tk.p)}
	}
	py := pythonSimple(conll, preds)
	if len(py) != len(want) {
		t.Fatalf("pythonSimple gives %d entities, the hand-worked answer %d: %+v", len(py), len(want), py)
	}
	for i, p := range py {
		if p.group != want[i].Group || math.Abs(p.score-want[i].Score) > 1e-6 {
			t.Errorf("pythonSimple entity %d: %+v, want %+v", i, p, want[i])
		}
	}
}
