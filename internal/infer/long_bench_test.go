package infer

import (
	"context"
	"fmt"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
)

// BenchmarkLongArticle reports the cost per token of one article of about
// 400 and about 4,000 tokens, windowed, on the MiniLM models: cost must stay
// linear in tokens (ns/token of the long article within 1.3× of the short).
//
//	go test -run '^$' -bench BenchmarkLongArticle -benchtime 20x ./internal/infer/
func BenchmarkLongArticle(b *testing.B) {
	for _, name := range []string{classifierModel, embedModel} {
		m := loadModelWith(b, name, SessionOptions{IntraOpThreads: 2})
		for _, target := range []int{400, 4000} {
			text := articleOf(b, m, target)
			b.Run(fmt.Sprintf("%s/tokens=%d", name, target), func(b *testing.B) {
				var in *Input
				var err error
				for b.Loop() {
					if in, err = m.Prepare(text, job.Options{}); err != nil {
						b.Fatal(err)
					}
					if _, _, err := m.Run(context.Background(), []*Input{in}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in.ids)), "ns/token")
				b.ReportMetric(float64(in.Rows()), "windows")
			})
		}
	}
}

// articleOf returns a news article of about n tokens for m.
func articleOf(b *testing.B, m *Model, n int) string {
	for size := n; ; size += n / 4 {
		text := longArticle(b, size)
		in, err := m.Prepare(text, job.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(in.ids) >= n {
			return text
		}
	}
}
