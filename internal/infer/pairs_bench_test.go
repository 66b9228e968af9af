package infer

import (
	"context"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// BenchmarkPairs measures the pair pipelines end to end (PrepareInput, one
// Run): a rerank of 32 news paragraphs (testdata/news.txt, repeated to 32)
// against a query on the cross-encoder, a zero-shot job of 8 candidate
// labels on the NLI model, and one pair per row as text/text_pair (32 a
// batch). It reports rows/s (model
// rows: pairs) and prepost_share, the share of Go time around the model.
func BenchmarkPairs(b *testing.B) {
	docs := newsDocs(b)
	docs = append(docs, docs...)[:32]
	labels := []string{"business", "markets", "energy", "politics", "sports", "technology", "health", "science"}
	ce, nli := loadModel(b, crossEncoderModel), loadModel(b, nliModel)
	pairs := make([]job.Input, len(docs))
	for i, d := range docs {
		pairs[i] = job.Input{Text: "oil prices", TextPair: d}
	}
	for _, tc := range []struct {
		name   string
		m      *Model
		inputs []job.Input
		opts   job.Options
	}{
		{"rerank/docs=32", ce, []job.Input{{Text: "oil prices and OPEC output", Documents: docs}}, job.Options{}},
		{"zero-shot/labels=8", nli, []job.Input{{Text: docs[0]}}, job.Options{CandidateLabels: labels}},
		{"text_pair/batch=32", ce, pairs, job.Options{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ins := make([]*Input, len(tc.inputs))
			var prep, infer, post time.Duration
			rows := 0
			for b.Loop() {
				t0 := time.Now()
				for i, in := range tc.inputs {
					p, err := tc.m.PrepareInput(in, tc.opts)
					if err != nil {
						b.Fatal(err)
					}
					ins[i] = p
				}
				prep += time.Since(t0)
				outs, st, err := tc.m.Run(context.Background(), ins)
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range outs {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
				rows += st.Rows
				infer += st.Infer
				post += st.Post
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(prep+post)/float64(prep+post+infer), "prepost_share")
		})
	}
}
