package infer

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/job"
)

func FuzzPrepare(f *testing.F) {
	for _, s := range []string{"", " ", "Diamond Shamrock Corp said", "caf\xe9", "Zürich ✓ “quoted” \u2028 \x00", "a\tb\nc", "##", "[CLS] [SEP] [PAD]"} {
		f.Add(s, false, 0, "")
	}
	f.Add("Shares rose. Shares rose. Shares rose.", true, 2, "none")
	cls := loadModel(f, classifierModel)
	ner := loadModel(f, nerModel)
	f.Fuzz(func(t *testing.T, text string, truncate bool, topK int, agg string) {
		opts := job.Options{Truncate: truncate, TopK: topK, Aggregation: agg}
		for _, m := range []*Model{cls, ner} {
			in, err := m.Prepare(text, opts)
			if err != nil {
				if permanentCode(err) == "" {
					t.Fatalf("Prepare(%q): not a permanent error: %v", text, err)
				}
				continue
			}
			if !utf8.ValidString(text) {
				t.Fatalf("Prepare accepted invalid UTF-8 %q", text)
			}
			if in.Rows() < 1 || in.Tokens() > m.Info().MaxLength || in.Tokens() < len(m.prefix)+len(m.suffix) {
				t.Fatalf("Prepare(%q): %d rows of %d tokens (max %d)", text, in.Rows(), in.Tokens(), m.Info().MaxLength)
			}
			for r := range in.Rows() {
				s, e := in.rowSpan(r)
				if s < 0 || e > len(in.ids) || s > e {
					t.Fatalf("row %d spans %d..%d of %d tokens", r, s, e, len(in.ids))
				}
			}
			for _, o := range in.offs {
				if o.Start < 0 || o.End > len(text) || o.Start > o.End {
					t.Fatalf("offset %+v outside %d bytes", o, len(text))
				}
			}
		}
	})
}

// FuzzGroupSimple checks the aggregation's invariants on any label sequence:
// groups are ordered, disjoint, never O, and their scores are means of
// scores in [0, 1].
func FuzzGroupSimple(f *testing.F) {
	f.Add([]byte{5, 0, 6, 6, 3, 4, 0, 1})
	tags := labelTags(conll)
	f.Fuzz(func(t *testing.T, seq []byte) {
		preds := make([]tokenPred, len(seq))
		for i, c := range seq {
			preds[i] = tokenPred{label: int32(int(c) % len(conll)), score: float32(c) / 255}
		}
		groups := groupSimple(nil, tokenUnits(nil, preds), tags)
		last := -1
		for _, g := range groups {
			if g.first <= last || g.last < g.first || g.last >= len(preds) || g.group == "O" || g.score < 0 || g.score > 1 {
				t.Fatalf("bad group %+v after %d in %v", g, last, seq)
			}
			if slices.ContainsFunc(preds[g.first:g.last+1], func(p tokenPred) bool { return tags[p.label].tag != tags[preds[g.first].label].tag }) {
				t.Fatalf("group %+v mixes tags: %v", g, seq)
			}
			last = g.last
		}
	})
}
