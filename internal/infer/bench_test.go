package infer

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// BenchmarkModel runs each model end to end (Prepare every document, one Run
// per batch) on the news paragraphs of testdata/news.txt at batch sizes 1, 8
// and 32 (and 128 on an accelerator). It reports docs/s, result_bytes/doc
// (what a result adds to a record, or to the RESULTS stream) and
// prepost_share: the share of the time spent in Go around the model
// (tokenizing in Prepare, post-processing in Run) out of tokenize +
// post-process + ONNX Runtime time.
// The models run on the CPU, or on the device JETINFER_TEST_DEVICE names.
func BenchmarkModel(b *testing.B) {
	docs := newsDocs(b)
	opts := SessionOptions{Device: os.Getenv("JETINFER_TEST_DEVICE")}
	sizes := []int{1, 8, 32}
	if opts.Device != "" && opts.Device != "cpu" {
		sizes = append(sizes, 128)
	}
	for _, name := range []string{sentimentModel, classifierModel, embedModel, nerModel} {
		m := loadModelWith(b, name, opts)
		for _, size := range sizes {
			b.Run(fmt.Sprintf("%s/batch=%d", name, size), func(b *testing.B) {
				opts := job.Options{Truncate: true}
				ins := make([]*Input, size)
				var tok, infer, post time.Duration
				var resultBytes int
				next := 0
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					for i := range ins {
						in, err := m.Prepare(docs[next%len(docs)], opts)
						if err != nil {
							b.Fatal(err)
						}
						ins[i] = in
						next++
					}
					tok += time.Since(t0)
					outs, st, err := m.Run(context.Background(), ins)
					if err != nil {
						b.Fatal(err)
					}
					for _, o := range outs {
						if o.Err != nil {
							b.Fatal(o.Err)
						}
						resultBytes += len(o.Result)
					}
					infer += st.Infer
					post += st.Post
				}
				n := float64(b.N * size)
				b.ReportMetric(n/b.Elapsed().Seconds(), "docs/s")
				b.ReportMetric(float64(tok+post)/float64(tok+post+infer), "prepost_share")
				b.ReportMetric(float64(tok.Microseconds())/n, "tokenize_us/doc")
				b.ReportMetric(float64(post.Microseconds())/n, "post_us/doc")
				b.ReportMetric(float64(infer.Microseconds())/n, "infer_us/doc")
				b.ReportMetric(float64(resultBytes)/n, "result_bytes/doc")
			})
		}
	}
}

// BenchmarkPrepare measures tokenizing alone, per model.
func BenchmarkPrepare(b *testing.B) {
	docs := newsDocs(b)
	for _, name := range []string{sentimentModel, classifierModel, nerModel} {
		m := loadModel(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := m.Prepare(docs[i%len(docs)], job.Options{Truncate: true}); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}
