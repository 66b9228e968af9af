package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

func TestTextClassification(t *testing.T) {
	for _, name := range []string{sentimentModel, classifierModel} {
		t.Run(name, func(t *testing.T) {
			m := loadModel(t, name)
			info := m.Info()
			if info.Kind != TextClassification || len(info.Labels) < 2 || info.MaxLength <= 0 {
				t.Fatalf("info = %+v", info)
			}
			docs := newsDocs(t)[:8]
			docs = append(docs, "Shares rose.")
			res, st := runTexts(t, m, job.Options{Truncate: true}, docs...)
			if st.Rows != len(docs) || st.Tokens <= 0 || st.PaddedTokens < st.Tokens || st.PaddedTokens%st.Rows != 0 || st.Infer <= 0 {
				t.Errorf("stats = %+v", st)
			}
			for i, raw := range res {
				r := decode[labelsResult](t, raw)
				if len(r.Labels) != len(info.Labels) {
					t.Fatalf("doc %d: %d labels, want %d: %s", i, len(r.Labels), len(info.Labels), raw)
				}
				sum := 0.0
				for j, l := range r.Labels {
					sum += l.Score
					if j > 0 && l.Score > r.Labels[j-1].Score {
						t.Errorf("doc %d: not sorted: %s", i, raw)
					}
					if !slices.Contains(info.Labels, l.Label) {
						t.Errorf("doc %d: unknown label %q", i, l.Label)
					}
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Errorf("doc %d: scores sum to %v: %s", i, sum, raw)
				}
			}

			// Padding must not change a document's answer: the short
			// document alone gives the same scores as in the padded batch.
			alone, _ := runTexts(t, m, job.Options{Truncate: true}, docs[len(docs)-1])
			a, b := decode[labelsResult](t, alone[0]), decode[labelsResult](t, res[len(res)-1])
			for j := range a.Labels {
				if a.Labels[j].Label != b.Labels[j].Label || math.Abs(a.Labels[j].Score-b.Labels[j].Score) > 1e-4 {
					t.Fatalf("alone %s, in a padded batch %s", alone[0], res[len(res)-1])
				}
			}

			top, _ := runTexts(t, m, job.Options{TopK: 1}, "Shares rose.")
			if r := decode[labelsResult](t, top[0]); len(r.Labels) != 1 || r.Labels[0] != b.Labels[0] {
				t.Errorf("top_k 1: %s, want the best of %s", top[0], res[len(res)-1])
			}
		})
	}
}

func TestSentimentIsSensible(t *testing.T) {
	m := loadModel(t, sentimentModel)
	tests := []struct {
		text, want string
	}{
		{"Profits soar to a record as strong demand delights investors and shares rally", "positive"},
		{"Good news for commuters: the new metro line opened ahead of schedule, a great success", "positive"},
		{"Bank collapses amid fraud scandal; thousands of jobs lost as losses mount", "negative"},
		{"Deadly earthquake kills dozens and destroys homes; rescuers fear the worst", "negative"},
	}
	for _, tt := range tests {
		res, _ := runTexts(t, m, job.Options{}, tt.text)
		r := decode[labelsResult](t, res[0])
		if got := r.Labels[0].Label; got != tt.want {
			t.Errorf("%q: %s, want %s first", tt.text, res[0], tt.want)
		}
	}
}

func TestFeatureExtraction(t *testing.T) {
	m := loadModel(t, embedModel)
	if m.Info().Labels != nil || m.Info().Kind != FeatureExtraction {
		t.Fatalf("info = %+v", m.Info())
	}
	docs := append(newsDocs(t)[:6], "Oil rose.", "Oil rose.")
	res, _ := runTexts(t, m, job.Options{Truncate: true}, docs...)
	embs := make([][]float64, len(res))
	for i, raw := range res {
		r := decode[embeddingResult](t, raw)
		if r.Dim != 384 || len(r.Embedding) != r.Dim {
			t.Fatalf("doc %d: dim %d, %d values", i, r.Dim, len(r.Embedding))
		}
		n := 0.0
		for _, v := range r.Embedding {
			n += v * v
		}
		if math.Abs(math.Sqrt(n)-1) > 1e-4 {
			t.Errorf("doc %d: norm %v", i, math.Sqrt(n))
		}
		embs[i] = r.Embedding
	}
	if !slices.Equal(embs[6], embs[7]) {
		t.Error("the same text in one batch gave two embeddings")
	}
	if slices.Equal(embs[0], embs[1]) {
		t.Error("two different texts gave the same embedding")
	}
	// Padding does not leak into the mean: alone equals batched.
	alone, _ := runTexts(t, m, job.Options{}, "Oil rose.")
	a := decode[embeddingResult](t, alone[0]).Embedding
	for i := range a {
		if math.Abs(a[i]-embs[6][i]) > 1e-4 {
			t.Fatalf("dim %d: alone %v, in a padded batch %v", i, a[i], embs[6][i])
		}
	}
}

// checkEntityOffsets checks that each entity's start and end (code points)
// select the entity's word in text.
func checkEntityOffsets(t *testing.T, text string, r entitiesResult) {
	t.Helper()
	runes := []rune(text)
	squash := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "##", "")), "") }
	for _, e := range r.Entities {
		if e.Start < 0 || e.End > len(runes) || e.Start >= e.End {
			t.Fatalf("entity %+v out of the text's %d code points", e, len(runes))
		}
		sub := string(runes[e.Start:e.End])
		if squash(sub) != squash(e.Word) {
			t.Errorf("entity %+v: text[%d:%d] = %q", e, e.Start, e.End, sub)
		}
		if e.Score <= 0 || e.Score > 1 {
			t.Errorf("entity %+v: score out of (0, 1]", e)
		}
	}
}

func TestTokenClassification(t *testing.T) {
	m := loadModel(t, nerModel)
	if len(m.Info().Labels) != 9 {
		t.Fatalf("labels = %v", m.Info().Labels)
	}
	docs := append(newsDocs(t)[:5], "Zürich-based Nestlé S.A. and Société Générale met in Besançon — “again”.")
	for _, agg := range []string{"simple", "none"} {
		res, _ := runTexts(t, m, job.Options{Aggregation: agg}, docs...)
		for i, raw := range res {
			r := decode[entitiesResult](t, raw)
			checkEntityOffsets(t, docs[i], r)
			for _, e := range r.Entities {
				if agg == "simple" && (e.EntityGroup == "" || e.EntityGroup == "O" || strings.HasPrefix(e.EntityGroup, "B-")) {
					t.Errorf("simple: %+v", e)
				}
				if agg == "none" && (e.Entity == "" || e.Entity == "O" || e.Index < 1) {
					t.Errorf("none: %+v", e)
				}
			}
		}
	}
}

func TestTokenClassificationWindowsCoverLongArticle(t *testing.T) {
	m := loadModel(t, nerModel)
	text := longArticle(t, 13000)
	in, err := m.Prepare(text, job.Options{Aggregation: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Rows() < 2 || in.Tokens() != m.Info().MaxLength {
		t.Fatalf("%d chars: %d rows of %d tokens, want several full windows", len(text), in.Rows(), in.Tokens())
	}
	// Every token is in some window and the windows overlap by the stride.
	for r := 1; r < in.Rows(); r++ {
		_, prevEnd := in.rowSpan(r - 1)
		s, _ := in.rowSpan(r)
		if prevEnd-s != m.stride {
			t.Errorf("windows %d and %d share %d tokens, want %d", r-1, r, prevEnd-s, m.stride)
		}
	}
	if _, end := in.rowSpan(in.Rows() - 1); end != len(in.ids) {
		t.Fatalf("last window ends at token %d of %d", end, len(in.ids))
	}
	outs, st, err := m.Run(context.Background(), []*Input{in})
	if err != nil || outs[0].Err != nil {
		t.Fatal(err, outs[0].Err)
	}
	if st.Rows != in.Rows() {
		t.Errorf("stats rows %d, want %d", st.Rows, in.Rows())
	}
	r := decode[entitiesResult](t, outs[0].Result)
	checkEntityOffsets(t, text, r)
	// With aggregation none every token labelled other than O is listed, in
	// order, each once: the windows' overlaps are not counted twice.
	last := -1
	maxEnd := 0
	for _, e := range r.Entities {
		if e.Index <= last {
			t.Fatalf("token index %d after %d", e.Index, last)
		}
		last = e.Index
		maxEnd = max(maxEnd, e.End)
	}
	if n := len([]rune(text)); maxEnd < n-200 {
		t.Errorf("last entity ends at %d of %d code points: the end of the article was not labelled", maxEnd, n)
	}
	if last > len(in.ids) {
		t.Errorf("token index %d beyond the %d tokens", last, len(in.ids))
	}
}

func TestPrepareRejects(t *testing.T) {
	cls := loadModel(t, classifierModel)
	ner := loadModel(t, nerModel)
	long := longArticle(t, 13000)
	tests := []struct {
		name string
		m    *Model
		text string
		opts job.Options
		code string
	}{
		{"empty", cls, "", job.Options{}, job.CodeInvalidInput},
		{"blank", cls, " \n\t ", job.Options{}, job.CodeInvalidInput},
		{"invalid UTF-8", cls, "caf\xe9 au lait", job.Options{}, job.CodeInvalidInput},
		{"too long with long_input error", cls, long, job.Options{LongInput: job.LongError}, job.CodeInputTooLong},
		{"too long for ner with long_input error", ner, long, job.Options{LongInput: job.LongError}, job.CodeInputTooLong},
		{"unknown long_input", cls, "ok", job.Options{LongInput: "split"}, job.CodeInvalidInput},
		{"unknown window_aggregation", cls, "ok", job.Options{WindowAggregation: "sum"}, job.CodeInvalidInput},
		{"negative top_k", cls, "ok", job.Options{TopK: -1}, job.CodeInvalidInput},
		{"unknown aggregation", ner, "ok", job.Options{Aggregation: "mean"}, job.CodeInvalidInput},
		{"empty ner", ner, "", job.Options{}, job.CodeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Prepare(tt.text, tt.opts)
			if got := permanentCode(err); got != tt.code {
				t.Fatalf("err = %v (code %q), want code %q", err, got, tt.code)
			}
		})
	}
	in, err := cls.Prepare(long, job.Options{Truncate: true})
	if err != nil || in.Rows() != 1 || in.Tokens() != cls.Info().MaxLength {
		t.Fatalf("truncate: %v, rows %d, tokens %d", err, in.Rows(), in.Tokens())
	}
}

func TestRunErrors(t *testing.T) {
	cls := loadModel(t, classifierModel)
	emb := loadModel(t, embedModel)
	in, err := cls.Prepare("Oil rose.", job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if outs, _, err := cls.Run(context.Background(), nil); err != nil || outs != nil {
		t.Errorf("empty batch: %v %v", outs, err)
	}
	if _, _, err := emb.Run(context.Background(), []*Input{in}); err == nil {
		t.Error("an input prepared by another model was run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := cls.Run(ctx, []*Input{in}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestRunConcurrently(t *testing.T) {
	m := loadModel(t, classifierModel)
	docs := newsDocs(t)
	want, _ := runTexts(t, m, job.Options{Truncate: true}, docs[:4]...)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Go(func() {
			for range 3 {
				ins := make([]*Input, 4)
				for i := range ins {
					var err error
					if ins[i], err = m.Prepare(docs[i], job.Options{Truncate: true}); err != nil {
						errs <- err
						return
					}
				}
				outs, _, err := m.Run(context.Background(), ins)
				if err != nil {
					errs <- err
					return
				}
				for i, o := range outs {
					if string(o.Result) != string(want[i]) {
						errs <- fmt.Errorf("concurrent run: %s, alone: %s", o.Result, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestRunCanceledMidRunStopsAndRecovers(t *testing.T) {
	m := loadModel(t, nerModel)
	in, err := m.Prepare(longArticle(t, 13000), job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := m.Run(ctx, []*Input{in})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let ONNX Runtime start
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run canceled mid-run: %v", err)
	}
	t.Logf("canceled run returned after %v", time.Since(start))
	// The buffers' run options were reset: the next run completes.
	short, err := m.Prepare("Diamond Shamrock Corp said", job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	outs, _, err := m.Run(context.Background(), []*Input{short})
	if err != nil || outs[0].Err != nil {
		t.Fatalf("run after a canceled one: %v %v", err, outs[0].Err)
	}
}

func TestRunWithOutputAllocatedByONNXRuntime(t *testing.T) {
	// A graph that leaves the last output dimension open makes Run let ONNX
	// Runtime allocate the output; the results must be the same.
	for _, name := range []string{classifierModel, embedModel} {
		m := loadModel(t, name)
		docs := newsDocs(t)[:3]
		want, _ := runTexts(t, m, job.Options{}, docs...)
		dim := m.outDim
		m.outDim = -1
		got, _ := runTexts(t, m, job.Options{}, docs...)
		m.outDim = dim
		for i := range want {
			if string(got[i]) != string(want[i]) {
				t.Errorf("%s doc %d: %.200s, want %.200s", name, i, got[i], want[i])
			}
		}
	}
}

// Token ids made with the model's tokenizer embed as their text does, with
// or without the special tokens; the result counts the tokens the model
// read; ids outside the vocabulary, and ids for a classifier, are refused.
func TestPrepareTokens(t *testing.T) {
	m := loadModel(t, embedModel)
	const text = "Oil rose after the cartel cut output."
	byText, _ := runTexts(t, m, job.Options{}, text)
	ids := append([]int64(nil), m.tok.Encode(text).IDs...)
	special := append(append(append([]int64(nil), m.prefix...), ids...), m.suffix...)
	for _, in := range [][]int64{ids, special} {
		p, err := m.PrepareTokens(in, job.Options{})
		if err != nil {
			t.Fatal(err)
		}
		outs, _, err := m.Run(context.Background(), []*Input{p})
		if err != nil || outs[0].Err != nil {
			t.Fatalf("run: %v %v", err, outs[0].Err)
		}
		if string(outs[0].Result) != string(byText[0]) {
			t.Fatalf("ids %v embed differently from their text", in)
		}
		if r := decode[embeddingResult](t, outs[0].Result); r.Tokens != len(special) {
			t.Errorf("tokens %d, want %d", r.Tokens, len(special))
		}
	}
	if _, err := m.PrepareTokens([]int64{ids[0], int64(m.tok.VocabSize())}, job.Options{}); err == nil {
		t.Error("an id outside the vocabulary was taken")
	}
	if _, err := m.PrepareTokens(make([]int64, m.window+1), job.Options{}); err == nil {
		t.Error("too many ids were taken without truncate")
	}
	if _, err := loadModel(t, classifierModel).PrepareTokens(ids, job.Options{}); err == nil {
		t.Error("a classifier took token ids")
	}
}
