package infer

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

func TestSoftmaxMatchesDefinitionAndSums(t *testing.T) {
	logits := []float32{1, 2, 3, 1000} // 1000 would overflow exp without the max shift
	got := make([]float64, len(logits))
	softmax(got, logits)
	sum := 0.0
	for _, v := range got {
		sum += v
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Fatalf("softmax sums to %v", sum)
	}
	if got[3] < 0.999999 {
		t.Fatalf("softmax(1000 vs small) = %v, want ~1", got)
	}
	softmax(got[:3], logits[:3])
	den := math.Exp(1) + math.Exp(2) + math.Exp(3)
	for i, want := range []float64{math.Exp(1) / den, math.Exp(2) / den, math.Exp(3) / den} {
		if math.Abs(got[i]-want) > 1e-12 {
			t.Errorf("softmax[%d] = %v, want %v", i, got[i], want)
		}
	}
}

func TestScoreLabels(t *testing.T) {
	tests := []struct {
		name   string
		fn     scoreFunc
		logits []float32
		order  []int
		scores []float64
	}{
		{"softmax sorts descending", fnSoftmax, []float32{0, 2, 1}, []int{1, 2, 0}, nil},
		{"ties keep class order", fnSoftmax, []float32{1, 1, 0}, []int{0, 1, 2}, nil},
		{"sigmoid is per class", fnSigmoid, []float32{0, 100, -100}, []int{1, 0, 2}, []float64{0.5, 1, 0}},
		{"none keeps logits", fnNone, []float32{-3, 4}, []int{1, 0}, []float64{-3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scores := make([]float64, len(tt.logits))
			order := make([]int, len(tt.logits))
			if err := scoreLabels(tt.fn, tt.logits, scores, order); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(order, tt.order) {
				t.Errorf("order = %v, want %v", order, tt.order)
			}
			for i, want := range tt.scores {
				if math.Abs(scores[i]-want) > 1e-9 {
					t.Errorf("score[%d] = %v, want %v", i, scores[i], want)
				}
			}
		})
	}
	if err := scoreLabels(fnSoftmax, []float32{float32(math.NaN()), 1}, make([]float64, 2), make([]int, 2)); err != errNonFinite {
		t.Fatalf("NaN logits: err = %v, want errNonFinite", err)
	}
}

func TestAppendLabelsTopK(t *testing.T) {
	labels := []string{"negative", "neutral", "positive"}
	scores := []float64{0.1, 0.2, 0.7}
	order := []int{2, 1, 0}
	var res struct {
		Labels []struct {
			Label string  `json:"label"`
			Score float64 `json:"score"`
		} `json:"labels"`
	}
	for _, tc := range []struct{ topK, want int }{{0, 3}, {1, 1}, {2, 2}, {9, 3}} {
		b := appendLabels(nil, labels, scores, order, tc.topK)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(res.Labels) != tc.want || res.Labels[0].Label != "positive" || res.Labels[0].Score != 0.7 {
			t.Errorf("top_k %d: %s", tc.topK, b)
		}
	}
}

func TestNumWindowsAndStarts(t *testing.T) {
	tests := []struct {
		n, w, stride int
		starts       []int
	}{
		{0, 10, 2, []int{0}},
		{10, 10, 2, []int{0}},
		{11, 10, 2, []int{0, 8}},
		{18, 10, 2, []int{0, 8}},
		{19, 10, 2, []int{0, 8, 16}},
		{25, 10, 0, []int{0, 10, 20}},
		{3000, 510, 128, []int{0, 382, 764, 1146, 1528, 1910, 2292, 2674}},
	}
	for _, tt := range tests {
		got := windowStarts(nil, tt.n, tt.w, tt.stride)
		if !slices.Equal(got, tt.starts) {
			t.Errorf("windowStarts(%d, %d, %d) = %v, want %v", tt.n, tt.w, tt.stride, got, tt.starts)
		}
		if numWindows(tt.n, tt.w, tt.stride) != len(tt.starts) {
			t.Errorf("numWindows(%d, %d, %d) = %d", tt.n, tt.w, tt.stride, numWindows(tt.n, tt.w, tt.stride))
		}
		// Every token is covered, the last window reaches the end.
		last := tt.starts[len(tt.starts)-1]
		if tt.n > 0 && (last+tt.w < tt.n || last >= tt.n) {
			t.Errorf("n=%d: last window %d..%d", tt.n, last, last+tt.w)
		}
	}
}

func TestOwnersTakeEachTokenFromItsMostCentralWindow(t *testing.T) {
	// Windows of 10 sharing 4 tokens: 0..9, 6..15, 12..19 (n=20).
	starts := windowStarts(nil, 20, 10, 4)
	if !slices.Equal(starts, []int{0, 6, 12}) {
		t.Fatalf("starts = %v", starts)
	}
	got := owners(nil, 20, 10, starts)
	// Token 6..9 are in windows 0 and 1. Token 7: centrality 2 in window 0
	// (9-7), 1 in window 1 (7-6): window 0. Token 8: 1 vs 2: window 1.
	want := []int32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2}
	if !slices.Equal(got, want) {
		t.Fatalf("owners = %v\nwant     %v", got, want)
	}
}

func TestPoolMeanAndNorm(t *testing.T) {
	hidden := []float32{
		1, 0, 3,
		3, 4, 5,
		100, 100, 100, // padding: must not count
	}
	dst := make([]float32, 3)
	acc := make([]float64, 3)
	if err := pool(dst, acc, hidden, 2, true, false); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dst, []float32{2, 2, 4}) {
		t.Fatalf("mean = %v", dst)
	}
	if err := pool(dst, acc, hidden, 2, true, true); err != nil {
		t.Fatal(err)
	}
	n := math.Sqrt(float64(dst[0]*dst[0] + dst[1]*dst[1] + dst[2]*dst[2]))
	if math.Abs(n-1) > 1e-6 || math.Abs(float64(dst[2])-4/math.Sqrt(24)) > 1e-6 {
		t.Fatalf("normalised = %v (norm %v)", dst, n)
	}
	if err := pool(dst, acc, hidden, 1, false, false); err != nil || !slices.Equal(dst, []float32{1, 0, 3}) {
		t.Fatalf("cls = %v, %v", dst, err)
	}
	hidden[0] = float32(math.Inf(1))
	if err := pool(dst, acc, hidden, 2, true, true); err != errNonFinite {
		t.Fatalf("inf hidden: err = %v", err)
	}
}

func TestAppendStringIsValidJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\nnul\x00", "ünïcödé ✓", "bad\xffutf8", "sep\u2028x"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got != want {
			t.Errorf("%q -> %s -> %q", s, b, got)
		}
	}
}

var conll = []string{"O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}

func label(name string) int32 { return int32(slices.Index(conll, name)) }

func TestGroupSimpleLikeTransformers(t *testing.T) {
	tags := labelTags(conll)
	type pred struct {
		label string
		score float32
	}
	type group struct {
		first, last int
		group       string
		score       float32
	}
	tests := []struct {
		name  string
		preds []pred
		want  []group
	}{
		{"B I I is one entity with the mean score",
			[]pred{{"B-ORG", 0.9}, {"I-ORG", 0.8}, {"I-ORG", 0.7}, {"O", 1}},
			[]group{{0, 2, "ORG", 0.8}}},
		{"B-ORG O I-ORG is two entities (Python, not transformers.js)",
			[]pred{{"B-ORG", 0.9}, {"O", 0.9}, {"I-ORG", 0.5}},
			[]group{{0, 0, "ORG", 0.9}, {2, 2, "ORG", 0.5}}},
		{"a B- starts a new group",
			[]pred{{"B-PER", 1}, {"B-PER", 0.5}, {"I-PER", 0.5}},
			[]group{{0, 0, "PER", 1}, {1, 2, "PER", 0.5}}},
		{"an I- without a B- still makes an entity",
			[]pred{{"O", 1}, {"I-LOC", 0.6}, {"I-LOC", 0.8}},
			[]group{{1, 2, "LOC", 0.7}}},
		{"a change of type ends a group",
			[]pred{{"B-ORG", 1}, {"I-LOC", 0.5}, {"I-ORG", 0.25}},
			[]group{{0, 0, "ORG", 1}, {1, 1, "LOC", 0.5}, {2, 2, "ORG", 0.25}}},
		{"only O", []pred{{"O", 1}, {"O", 1}}, nil},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			preds := make([]tokenPred, len(tt.preds))
			for i, p := range tt.preds {
				preds[i] = tokenPred{label: label(p.label), score: p.score}
			}
			var got []group
			for _, s := range groupSimple(nil, tokenUnits(nil, preds), tags) {
				got = append(got, group{s.first, s.last, s.group, s.score})
			}
			if len(got) != len(tt.want) {
				t.Fatalf("groups = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].first != tt.want[i].first || got[i].last != tt.want[i].last || got[i].group != tt.want[i].group ||
					math.Abs(float64(got[i].score-tt.want[i].score)) > 1e-6 {
					t.Fatalf("groups = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestLabelTagsWithoutPrefixes(t *testing.T) {
	tags := labelTags([]string{"PER", "X-FOO-BAR", "O"})
	if tags[0].begin || tags[0].tag != "PER" || tags[0].group != "PER" {
		t.Errorf("PER: %+v", tags[0])
	}
	// entity_group is label.split("-", 1)[-1], as in transformers.
	if tags[1].group != "FOO-BAR" || tags[1].tag != "X-FOO-BAR" {
		t.Errorf("X-FOO-BAR: %+v", tags[1])
	}
}

func TestPredictToken(t *testing.T) {
	p, err := predictToken([]float32{0, 3, 3, 1})
	if err != nil || p.label != 1 {
		t.Fatalf("tie: %+v %v, want the first max", p, err)
	}
	want := 1 / (2 + math.Exp(-3) + math.Exp(-2))
	if math.Abs(float64(p.score)-want) > 1e-6 {
		t.Fatalf("score %v, want %v", p.score, want)
	}
	if _, err := predictToken([]float32{1, float32(math.NaN())}); err != errNonFinite {
		t.Fatalf("NaN: %v", err)
	}
}

// wordDecoder names tokens after the words of a test sentence.
type wordDecoder map[int64]string

func (d wordDecoder) Token(id int64) string { return d[id] }
func (d wordDecoder) Decode(ids []int64) string {
	var s []string
	for _, id := range ids {
		s = append(s, d[id])
	}
	return strings.Join(s, " ")
}

func TestAppendEntitiesOffsetsAreCodePoints(t *testing.T) {
	text := "Zürich's Nestlé S.A. rose"
	words := []string{"Zürich", "'s", "Nestlé", "S.A.", "rose"}
	dec := wordDecoder{}
	var ids []int64
	var offs []tokenize.Offset
	at := 0
	for i, w := range words {
		s := strings.Index(text[at:], w) + at
		at = s + len(w)
		ids = append(ids, int64(i+10))
		offs = append(offs, tokenize.Offset{Start: s, End: at})
		dec[int64(i+10)] = w
	}
	preds := []tokenPred{
		{label("B-LOC"), 0.9}, {label("O"), 0.9}, {label("B-ORG"), 0.8}, {label("I-ORG"), 0.6}, {label("O"), 1},
	}
	b, _ := appendEntities(nil, nil, text, ids, offs, preds, tokenUnits(nil, preds), conll, labelTags(conll), aggSimple, dec, 1, -1)
	var res struct {
		Entities []struct {
			Group string  `json:"entity_group"`
			Score float64 `json:"score"`
			Word  string  `json:"word"`
			Start int     `json:"start"`
			End   int     `json:"end"`
		} `json:"entities"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(res.Entities) != 2 {
		t.Fatalf("entities: %s", b)
	}
	runes := []rune(text)
	for _, e := range res.Entities {
		if got := string(runes[e.Start:e.End]); !strings.HasPrefix(e.Word, strings.Fields(got)[0]) {
			t.Errorf("%s: text[%d:%d] = %q, word %q", e.Group, e.Start, e.End, got, e.Word)
		}
	}
	if e := res.Entities[1]; e.Group != "ORG" || e.Word != "Nestlé S.A." || e.Start != 9 || e.End != 20 || math.Abs(e.Score-0.7) > 1e-6 {
		t.Errorf("ORG entity: %+v", e)
	}
	if utf8.RuneCountInString(text[:offs[2].Start]) != 9 {
		t.Fatal("test text changed")
	}

	b, _ = appendEntities(nil, nil, text, ids, offs, preds, nil, conll, labelTags(conll), aggNone, dec, 1, -1)
	var none struct {
		Entities []struct {
			Entity string `json:"entity"`
			Index  int    `json:"index"`
			Word   string `json:"word"`
			Start  int    `json:"start"`
			End    int    `json:"end"`
		} `json:"entities"`
	}
	if err := json.Unmarshal(b, &none); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(none.Entities) != 3 || none.Entities[0].Index != 1 || none.Entities[2].Entity != "I-ORG" ||
		none.Entities[2].Word != "S.A." || none.Entities[2].Start != 16 || none.Entities[2].End != 20 {
		t.Errorf("aggregation none: %s", b)
	}
}

func TestPostNaNFailsOnlyItsInput(t *testing.T) {
	m := &Model{info: Info{Task: "hand", Kind: TextClassification, Labels: []string{"neg", "pos"}}, window: 8}
	ins := []*Input{
		{m: m, ids: []int64{1}, starts: zeroStart},
		{m: m, ids: []int64{1}, starts: zeroStart, topK: 1},
		{m: m, ids: []int64{1}, starts: zeroStart},
	}
	out := []float32{0, 1, float32(math.NaN()), 1, 2, 0}
	outs := m.post(&runBuf{}, ins, out, 2, 3)
	if code, ok := job.IsPermanent(outs[1].Err); !ok || code != job.CodeModelError || outs[1].Result != nil {
		t.Fatalf("NaN input: %v %s", outs[1].Err, outs[1].Result)
	}
	for _, i := range []int{0, 2} {
		if outs[i].Err != nil || !json.Valid(outs[i].Result) {
			t.Fatalf("input %d: %v %s", i, outs[i].Err, outs[i].Result)
		}
	}
	if got := string(outs[2].Result); !strings.HasPrefix(got, `{"labels":[{"label":"neg"`) {
		t.Errorf("input 2: %s", got)
	}
	// Results do not share memory a caller could append over.
	before := string(outs[2].Result)
	_ = append(outs[0].Result, "garbage"...)
	if string(outs[2].Result) != before {
		t.Error("appending to one result changed another")
	}
}
