package infer

// The word aggregations (first, average, max) against transformers'
// TokenClassificationPipeline.

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// pythonWords is the pipeline's postprocess for aggregation_strategy first,
// average or max, transliterated from src/transformers/pipelines/
// token_classification.py: aggregate_words groups the tokens into words (a
// token that is not a subword starts one), aggregate_word labels each word,
// and group_entities with the ignore_labels filter (the same code as for
// simple, so pythonSimple runs it on the words) makes the entities. probs
// are each token's softmax probabilities.
func pythonWords(labels []string, probs [][]float64, subword []bool, strategy string) []pyEntity {
	argmax := func(xs []float64) int { // numpy: the first on a tie
		best := 0
		for i, x := range xs {
			if x > xs[best] {
				best = i
			}
		}
		return best
	}
	type word struct{ first, last int }
	aggregateWord := func(w word) tokenPred {
		switch strategy {
		case "first":
			idx := argmax(probs[w.first])
			return tokenPred{label: int32(idx), score: float32(probs[w.first][idx])}
		case "max": // max(entities, key=lambda e: e["scores"].max()): the first maximal
			best := w.first
			for j := w.first + 1; j <= w.last; j++ {
				if probs[j][argmax(probs[j])] > probs[best][argmax(probs[best])] {
					best = j
				}
			}
			idx := argmax(probs[best])
			return tokenPred{label: int32(idx), score: float32(probs[best][idx])}
		default: // average: np.nanmean over the word's tokens
			mean := make([]float64, len(labels))
			for j := w.first; j <= w.last; j++ {
				for k, p := range probs[j] {
					mean[k] += p / float64(w.last-w.first+1)
				}
			}
			idx := argmax(mean)
			return tokenPred{label: int32(idx), score: float32(mean[idx])}
		}
	}
	var words []word
	start := -1
	for j := range probs {
		switch {
		case start < 0:
			start = j
		case subword[j]:
		default:
			words = append(words, word{start, j - 1})
			start = j
		}
	}
	if start >= 0 {
		words = append(words, word{start, len(probs) - 1})
	}
	preds := make([]tokenPred, len(words))
	for i, w := range words {
		preds[i] = aggregateWord(w)
	}
	out := pythonSimple(labels, preds)
	for i := range out { // word indices to token indices
		out[i].first, out[i].last = words[out[i].first].first, words[out[i].last].last
	}
	return out
}

// TestWordAggregationsMatchPythonPipeline compares wordUnits and the grouping
// with pythonWords on random logits and word boundaries.
func TestWordAggregationsMatchPythonPipeline(t *testing.T) {
	labelSets := [][]string{conll, {"O", "PER", "ORG", "B-PER", "I-PER", "I-ORG", "B-X-Y", "I-X-Y", "X-Y"}}
	strategies := map[string]aggregation{"first": aggFirst, "average": aggAverage, "max": aggMax}
	rng := rand.New(rand.NewPCG(3, 4))
	for si, labels := range labelSets {
		tags := labelTags(labels)
		dim := len(labels)
		for n := range 2000 {
			tokens := rng.IntN(14)
			logits := make([]float32, tokens*dim)
			for k := range logits {
				// Few distinct values, so that ties and repeats are common.
				logits[k] = float32(rng.IntN(6))
			}
			preds := make([]tokenPred, tokens)
			probs := make([]float32, tokens*dim)
			probs64 := make([][]float64, tokens)
			subword := make([]bool, tokens)
			for j := range tokens {
				p, err := predictToken(logits[j*dim : (j+1)*dim])
				if err != nil {
					t.Fatal(err)
				}
				preds[j] = p
				probabilities(probs[j*dim:(j+1)*dim], logits[j*dim:(j+1)*dim])
				probs64[j] = make([]float64, dim)
				for k := range dim {
					probs64[j][k] = float64(probs[j*dim+k])
				}
				subword[j] = rng.IntN(3) == 0
			}
			for name, agg := range strategies {
				want := pythonWords(labels, probs64, subword, name)
				units, _ := wordUnits(nil, preds, subword, agg, probs, dim, nil)
				got := groupSimple(nil, units, tags)
				ok := len(got) == len(want)
				for i := 0; ok && i < len(got); i++ {
					ok = got[i].first == want[i].first && got[i].last == want[i].last && got[i].group == want[i].group &&
						math.Abs(float64(got[i].score)-want[i].score) < 1e-6
				}
				if !ok {
					t.Fatalf("labels %d, case %d, %s: subword %v\ngot    %+v\nPython %+v", si, n, name, subword, got, want)
				}
			}
		}
	}
}

// TestHandLogitsWordAggregationsLikePython runs hand-made probabilities for
// a real BERT-cased tokenization through the post-processing with each word
// strategy, against what the Python pipeline answers, worked out by hand.
// Word pieces make one word ("S ##ham ##rock" is Shamrock), whatever their
// own labels; "s" after "'" is a word of its own (its token is as long as
// its text).
func TestHandLogitsWordAggregationsLikePython(t *testing.T) {
	m := handModel(t, 64, 8)
	text := "Diamond Shamrock Corp said Zürich's Nestlé fell"
	toks := []struct {
		word, label string
		p           float64
	}{
		{"Diamond", "B-ORG", 0.9},
		{"S", "I-ORG", 0.8},
		{"##ham", "I-ORG", 0.7},
		{"##rock", "B-ORG", 0.6},
		{"Corp", "I-ORG", 0.5},
		{"said", "O", 0.9},
		{"Zürich", "I-LOC", 0.4},
		{"'", "O", 0.5},
		{"s", "I-LOC", 0.3},
		{"N", "B-ORG", 0.9},
		{"##est", "I-PER", 0.95},
		{"##lé", "I-PER", 0.7},
		{"fell", "O", 0.95},
	}
	// Each token: probability p for its label, (1-p)/8 for each other one.
	// Shamrock averages to I-ORG (0.8+0.7+0.4/8)/3; Nestlé to I-PER
	// (0.1/8+0.95+0.7)/3, and its most confident token is ##est (I-PER).
	wants := map[string][]handEntity{
		"first": {
			{"ORG", (0.9 + 0.8 + 0.5) / 3, "Diamond Shamrock Corp", 0, 21},
			{"LOC", 0.4, "Zürich", 27, 33},
			{"LOC", 0.3, "s", 34, 35},
			{"ORG", 0.9, "Nestlé", 36, 42},
		},
		"max": {
			{"ORG", (0.9 + 0.8 + 0.5) / 3, "Diamond Shamrock Corp", 0, 21},
			{"LOC", 0.4, "Zürich", 27, 33},
			{"LOC", 0.3, "s", 34, 35},
			{"PER", 0.95, "Nestlé", 36, 42},
		},
		"average": {
			{"ORG", (0.9 + (0.8+0.7+0.4/8)/3 + 0.5) / 3, "Diamond Shamrock Corp", 0, 21},
			{"LOC", 0.4, "Zürich", 27, 33},
			{"LOC", 0.3, "s", 34, 35},
			{"PER", (0.1/8 + 0.95 + 0.7) / 3, "Nestlé", 36, 42},
		},
	}
	for strategy, want := range wants {
		t.Run(strategy, func(t *testing.T) {
			in, err := m.Prepare(text, job.Options{Aggregation: strategy})
			if err != nil {
				t.Fatal(err)
			}
			if len(in.ids) != len(toks) {
				t.Fatalf("%q is %d tokens, want %d", text, len(in.ids), len(toks))
			}
			L, T := len(conll), in.Tokens()
			out := make([]float32, T*L)
			probs := make([][]float64, len(toks))
			subword := make([]bool, len(toks))
			for j, tk := range toks {
				if w := m.tok.Token(in.ids[j]); w != tk.word {
					t.Fatalf("token %d is %q, want %q", j, w, tk.word)
				}
				row := out[(len(m.prefix)+j)*L : (len(m.prefix)+j+1)*L]
				probs[j] = make([]float64, L)
				for k := range row {
					row[k] = float32(math.Log((1 - tk.p) / float64(L-1)))
					probs[j][k] = (1 - tk.p) / float64(L-1)
				}
				row[label(tk.label)] = float32(math.Log(tk.p))
				probs[j][label(tk.label)] = tk.p
				subword[j] = strings.HasPrefix(tk.word, "##")
			}
			checkEntities(t, postEntities(t, m, in, out, L, T), want)
			// The Python algorithm agrees on the groups and scores.
			py := pythonWords(conll, probs, subword, strategy)
			if len(py) != len(want) {
				t.Fatalf("pythonWords gives %+v", py)
			}
			for i, p := range py {
				if p.group != want[i].Group || math.Abs(p.score-want[i].Score) > 1e-6 {
					t.Errorf("pythonWords entity %d: %+v, want %+v", i, p, want[i])
				}
			}
		})
	}
}

// fixedTokens is a decoder whose token strings are given.
type fixedTokens []string

func (f fixedTokens) Token(id int64) string     { return f[id] }
func (f fixedTokens) Decode(ids []int64) string { return "" }

// TestIsSubword checks both of the pipeline's rules: with word pieces
// marked, a token whose string differs in length from its text; without,
// one that touches the character before it (no space either side); and the
// unknown token never continues a word.
func TestIsSubword(t *testing.T) {
	text := "Zürich's co-op fell"
	var offs []tokenize.Offset
	for _, o := range [][2]int{{0, 7}, {7, 8}, {8, 9}, {10, 12}, {12, 13}, {13, 15}, {16, 20}} {
		offs = append(offs, tokenize.Offset{Start: o[0], End: o[1]})
	}
	ids := []int64{0, 1, 2, 3, 4, 5, 6}
	pieces := fixedTokens{"Zürich", "'", "##s", "co", "-", "##op", "[UNK]"}
	wantPieces := []bool{false, false, true, false, false, true, false}
	wantSpaces := []bool{false, true, true, false, true, true, false}
	for j := range ids {
		if got := isSubword(j, text, ids, offs, pieces, true, 6); got != wantPieces[j] {
			t.Errorf("marked pieces, token %d %q: %v", j, pieces[j], got)
		}
		if got := isSubword(j, text, ids, offs, pieces, false, 6); got != wantSpaces[j] {
			t.Errorf("by spaces, token %d %q: %v", j, text[offs[j].Start:offs[j].End], got)
		}
	}
}
