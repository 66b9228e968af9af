package batch

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/news_lengths.txt from its generator")

const newsLengthsFile = "testdata/news_lengths.txt"

// newsLengthsHeader documents testdata/news_lengths.txt inside the file.
const newsLengthsHeader = `# Token lengths of news documents, one a line, untruncated, counting the
# [CLS] and [SEP] a BERT WordPiece tokenizer adds. Synthetic: no news corpus
# can be downloaded where jetinfer is built, so the lengths are drawn from a
# mixture fitted to typical wire-service text, with a fixed seed:
#   40% headlines: lognormal, median 17 tokens, sigma 0.30, clamped to 8..40
#   25% ledes:     lognormal, median 52 tokens, sigma 0.25, clamped to 25..110
#   35% articles:  lognormal, median 560 tokens, sigma 0.60, clamped to 130..4000
# Truncated at 128 tokens, articles become 128 and the rest keep their length;
# at 512, about 45% of articles are shorter than the limit.
# Regenerate with: go test ./internal/batch -run TestNewsLengthsFile -update
`

// generateNewsLengths is the generator behind testdata/news_lengths.txt.
func generateNewsLengths() []int {
	r := rand.New(rand.NewPCG(1987, 21578))
	logn := func(median, sigma float64, lo, hi int) int {
		v := int(math.Round(median * math.Exp(sigma*r.NormFloat64())))
		return min(max(v, lo), hi)
	}
	out := make([]int, 10000)
	for i := range out {
		switch u := r.Float64(); {
		case u < 0.40:
			out[i] = logn(17, 0.30, 8, 40)
		case u < 0.65:
			out[i] = logn(52, 0.25, 25, 110)
		default:
			out[i] = logn(560, 0.60, 130, 4000)
		}
	}
	return out
}

func formatNewsLengths(ls []int) []byte {
	var b bytes.Buffer
	b.WriteString(newsLengthsHeader)
	for _, l := range ls {
		fmt.Fprintln(&b, l)
	}
	return b.Bytes()
}

// loadNewsLengths reads testdata/news_lengths.txt, truncating every length
// to trunc tokens.
func loadNewsLengths(tb testing.TB, trunc int) []int {
	tb.Helper()
	f, err := os.Open(newsLengthsFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l, err := strconv.Atoi(line)
		if err != nil {
			tb.Fatalf("%s: %v", newsLengthsFile, err)
		}
		out = append(out, min(l, trunc))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestNewsLengthsFile proves the test data is what its header says it is.
func TestNewsLengthsFile(t *testing.T) {
	want := formatNewsLengths(generateNewsLengths())
	if *update {
		if err := os.WriteFile(newsLengthsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(newsLengthsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from its generator; regenerate with -update", newsLengthsFile)
	}
}

// planPadding is the token-weighted padding ratio of a whole plan: padding
// over padded tokens, summed over all batches.
func planPadding(lengths []int, batches [][]int) float64 {
	padded, real := 0, 0
	for _, b := range batches {
		m := 0
		for _, i := range b {
			m = max(m, lengths[i])
			real += lengths[i]
		}
		padded += m * len(b)
	}
	if padded == 0 {
		return 0
	}
	return float64(padded-real) / float64(padded)
}

// windowPadding plans consecutive windows of the news lengths, as the
// worker would gather them, and returns the overall padding ratio.
func windowPadding(tb testing.TB, p Policy, lengths []int, window int) float64 {
	tb.Helper()
	pl, err := NewPlanner(p)
	if err != nil {
		tb.Fatal(err)
	}
	padded, real := 0, 0
	for start := 0; start+window <= len(lengths); start += window {
		w := lengths[start : start+window]
		for _, b := range pl.Plan(w, nil) {
			m := 0
			for _, i := range b {
				m = max(m, w[i])
				real += w[i]
			}
			padded += m * len(b)
		}
	}
	return float64(padded-real) / float64(padded)
}

// TestPaddingGoal holds the goal: with length sorting and the
// default policy, padding on news text truncated at 128 tokens stays at or
// under 10%, and sorting beats arrival order.
func TestPaddingGoal(t *testing.T) {
	p := Policy{}.WithDefaults()
	lengths := loadNewsLengths(t, 128)
	window := DefaultWindowBatches * p.MaxSize
	sorted := windowPadding(t, p, lengths, window)
	p.KeepOrder = true
	unsorted := windowPadding(t, p, lengths, window)
	t.Logf("window %d, batch %d: padding sorted %.3f, unsorted %.3f", window, p.MaxSize, sorted, unsorted)
	if sorted > 0.10 {
		t.Errorf("padding with sorting = %.3f, want ≤ 0.10", sorted)
	}
	if sorted >= unsorted {
		t.Errorf("padding sorted %.3f ≥ unsorted %.3f", sorted, unsorted)
	}
}
