package infer

import (
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestLongArticleSentimentFollowsTheWholeText: an article that opens with a
// window of good news and then turns to several windows of bad news is
// negative as a whole. Truncated to its first window it would be positive.
func TestLongArticleSentimentFollowsTheWholeText(t *testing.T) {
	m := loadModel(t, sentimentModel)
	good := strings.Repeat("Shares soared after the company reported record profits and strong growth. ", 40)
	bad := strings.Repeat("Then the bank collapsed amid fraud charges, heavy losses and a plunging share price. ", 120)
	article := good + bad
	top := func(opts job.Options) labelsResult {
		res, _ := runTexts(t, m, opts, article)
		return decode[labelsResult](t, res[0])
	}
	whole := top(job.Options{})
	if whole.Windows < 3 || whole.Truncated {
		t.Fatalf("whole article: %d windows, truncated %v; want several windows, nothing left out", whole.Windows, whole.Truncated)
	}
	if whole.Labels[0].Label != "negative" {
		t.Fatalf("whole article: %+v, want negative first", whole.Labels)
	}
	first := top(job.Options{LongInput: job.LongTruncate})
	if !first.Truncated || first.Windows != 0 || first.Labels[0].Label != "positive" {
		t.Fatalf("first window only: %+v; the test needs an opening that reads positive", first)
	}
	last := top(job.Options{LongInput: job.LongTruncate, TruncationSide: job.SideLeft})
	if !last.Truncated || last.Labels[0].Label != "negative" {
		t.Fatalf("last window only: %+v, want negative", last)
	}
	// Max over windows: the positive opening window wins "positive" its
	// highest score, above the token-weighted mean.
	mx := top(job.Options{WindowAggregation: job.WindowMax})
	score := func(r labelsResult, l string) float64 {
		for _, x := range r.Labels {
			if x.Label == l {
				return x.Score
			}
		}
		return -1
	}
	if score(mx, "positive") <= score(whole, "positive") {
		t.Fatalf("max positive %v not above mean %v", score(mx, "positive"), score(whole, "positive"))
	}
}

// TestWindowCapCutsOrRefuses: past its window cap a document is cut to the
// cap's span (and the result says so) under window, and refused with
// input_too_long under error.
func TestWindowCapCutsOrRefuses(t *testing.T) {
	m := loadModel(t, classifierModel)
	long := longArticle(t, 20000)
	in, err := m.Prepare(long, job.Options{MaxWindows: 4})
	if err != nil || in.Rows() != 4 || !in.truncated {
		t.Fatalf("capped at 4: %v, %d rows, truncated %v", err, in.Rows(), in.truncated)
	}
	left, err := m.Prepare(long, job.Options{MaxWindows: 4, TruncationSide: job.SideLeft})
	if err != nil || left.Rows() != 4 || left.ids[len(left.ids)-1] == in.ids[len(in.ids)-1] && left.ids[0] == in.ids[0] {
		t.Fatalf("capped at 4 from the left: %v, %d rows, same tokens as from the right", err, left.Rows())
	}
	full, err := m.Prepare(long, job.Options{})
	if err != nil || full.Rows() <= 4 || full.Rows() > DefaultMaxWindows || full.truncated {
		t.Fatalf("default cap: %v, %d rows, truncated %v", err, full.Rows(), full.truncated)
	}
	if _, err := m.Prepare(long, job.Options{LongInput: job.LongError}); permanentCode(err) != job.CodeInputTooLong {
		t.Fatalf("long_input error: %v", err)
	}
}
