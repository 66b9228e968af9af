package infer

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// The model directories `make models` builds.
const (
	sentimentModel  = "sentiment"
	classifierModel = "minilm-l6-random-classifier"
	embedModel      = "minilm-l6-random-embed"
	nerModel        = "bert-base-cased-random-ner"
)

// loadModel loads a model built by `make models` on the CPU, closed when the
// test ends.
func loadModel(t testing.TB, name string) *Model { return loadModelWith(t, name, SessionOptions{}) }

// loadModelWith loads a model built by `make models` with opts, closed when
// the test ends.
func loadModelWith(t testing.TB, name string, opts SessionOptions) *Model {
	t.Helper()
	initORT(t)
	m, err := LoadModel(testenv.ModelDir(t, name), opts)
	if err != nil {
		t.Fatalf("LoadModel %s on %s: %v", name, opts.withDefaults().Device, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// newsDocs returns the news paragraphs of testdata/news.txt.
func newsDocs(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/news.txt")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// longArticle joins the news paragraphs into one article of at least n bytes.
func longArticle(t testing.TB, n int) string {
	docs := newsDocs(t)
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(docs[i%len(docs)])
	}
	return b.String()
}

// runTexts prepares and runs texts as one batch, failing the test on any error.
func runTexts(t testing.TB, m *Model, opts job.Options, texts ...string) ([]json.RawMessage, Stats) {
	t.Helper()
	ins := make([]*Input, len(texts))
	for i, s := range texts {
		in, err := m.Prepare(s, opts)
		if err != nil {
			t.Fatalf("Prepare %q: %v", s, err)
		}
		ins[i] = in
	}
	outs, st, err := m.Run(context.Background(), ins)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(outs) != len(texts) {
		t.Fatalf("Run returned %d outputs for %d inputs", len(outs), len(texts))
	}
	res := make([]json.RawMessage, len(outs))
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("output %d: %v", i, o.Err)
		}
		res[i] = o.Result
	}
	return res, st
}

type labelsResult struct {
	Labels []struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"labels"`
	longFields
}

// longFields are what a result says of a long input (appendLongFields).
type longFields struct {
	Windows   int  `json:"windows"`
	Truncated bool `json:"truncated"`
}

type embeddingResult struct {
	Embedding []float64 `json:"embedding"`
	Dim       int       `json:"dim"`
	longFields
	Tokens int `json:"tokens"`
}

type entitiesResult struct {
	Entities []struct {
		EntityGroup string  `json:"entity_group"`
		Entity      string  `json:"entity"`
		Score       float64 `json:"score"`
		Index       int     `json:"index"`
		Word        string  `json:"word"`
		Start       int     `json:"start"`
		End         int     `json:"end"`
	} `json:"entities"`
	longFields
}

func decode[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return v
}

func permanentCode(err error) string {
	code, _ := job.IsPermanent(err)
	return code
}
