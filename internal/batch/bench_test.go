package batch

import (
	"fmt"
	"testing"
)

func BenchmarkPlan(b *testing.B) {
	news := loadNewsLengths(b, 128)
	for _, n := range []int{32, 256} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			lengths := news[:n]
			classes := make([]Class, n)
			for i := n / 4; i < n; i++ {
				classes[i] = Bulk // a quarter interactive, the rest bulk
			}
			pl, err := NewPlanner(Policy{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				pl.Plan(lengths, classes)
			}
		})
	}
}

func BenchmarkPaddingRatio(b *testing.B) {
	lengths := loadNewsLengths(b, 128)[:32]
	b.ReportAllocs()
	for b.Loop() {
		PaddingRatio(lengths)
	}
}

// BenchmarkPadding reports the padding ratio of the plans the worker would
// make over testdata/news_lengths.txt, with and without length sorting, at
// batch 32. The sub-benchmark with the default window and 128-token
// truncation is the figure (goal: sorted ≤ 0.10).
func BenchmarkPadding(b *testing.B) {
	for _, trunc := range []int{128, 512} {
		lengths := loadNewsLengths(b, trunc)
		for _, window := range []int{32, 128, 256} {
			b.Run(fmt.Sprintf("trunc=%d/window=%d", trunc, window), func(b *testing.B) {
				p := Policy{MaxSize: 32}.WithDefaults()
				var sorted, unsorted float64
				for b.Loop() {
					p.KeepOrder = false
					sorted = windowPadding(b, p, lengths, window)
					p.KeepOrder = true
					unsorted = windowPadding(b, p, lengths, window)
				}
				b.ReportMetric(sorted, "padding_ratio_sorted")
				b.ReportMetric(unsorted, "padding_ratio_unsorted")
			})
		}
	}
}

// BenchmarkFairPick is one pick of a worker's shared lane (batch.Fair), as
// the worker makes one per document handed to a pipeline: n tenants
// waiting, of mixed weights and document sizes, one in eight with its next
// document still arriving. In "steady" the same tenants wait at every pick;
// in "churn" one tenant leaves and comes back at every other pick.
func BenchmarkFairPick(b *testing.B) {
	for _, n := range []int{4, 64} {
		waiting := make([]Waiting, n)
		for i := range waiting {
			waiting[i] = Waiting{
				Tenant:   fmt.Sprintf("tenant-%03d", i),
				Weight:   1 + i%3,
				Cost:     500 + 1500*(i%4),
				Arriving: i%8 == 7,
			}
		}
		fewer := waiting[1:]
		b.Run(fmt.Sprintf("tenants=%d/steady", n), func(b *testing.B) {
			f := NewFair()
			b.ReportAllocs()
			for b.Loop() {
				if f.Pick(waiting) < 0 {
					b.Fatal("no pick")
				}
			}
		})
		b.Run(fmt.Sprintf("tenants=%d/churn", n), func(b *testing.B) {
			f := NewFair()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				w := waiting
				if i%2 == 1 {
					w = fewer
				}
				if f.Pick(w) < 0 {
					b.Fatal("no pick")
				}
			}
		})
	}
}
