package infer

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// tokenPred is one token's predicted class and its softmax probability.
type tokenPred struct {
	label int32
	score float32
}

// predictToken returns the argmax class of one token's logits (the first on a
// tie, like numpy) and its softmax probability.
func predictToken(logits []float32) (tokenPred, error) {
	best := 0
	mx := logits[0]
	for i, l := range logits {
		if !finite(l) {
			return tokenPred{}, errNonFinite
		}
		if l > mx {
			best, mx = i, l
		}
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	return tokenPred{label: int32(best), score: float32(1 / sum)}, nil
}

// probabilities sets dst to the softmax of logits (all finite).
func probabilities(dst []float32, logits []float32) {
	mx := logits[0]
	for _, l := range logits {
		mx = max(mx, l)
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	for i, l := range logits {
		dst[i] = float32(math.Exp(float64(l-mx)) / sum)
	}
}

// owners sets dst[j], for each of n tokens covered by windows of w tokens
// starting at starts, to the window the token is taken from: the one where it
// is farthest from the window's edges, the earlier window on a tie.
func owners(dst []int32, n, w int, starts []int) []int32 {
	dst = dst[:0]
	for range n {
		dst = append(dst, -1)
	}
	centrality := func(k, j int) int {
		end := min(starts[k]+w, n)
		return min(j-starts[k], end-1-j)
	}
	for k, s := range starts {
		end := min(s+w, n)
		for j := s; j < end; j++ {
			if o := dst[j]; o < 0 || centrality(k, j) > centrality(int(o), j) {
				dst[j] = int32(k)
			}
		}
	}
	return dst
}

// labelTag is how the aggregation reads a label, as transformers' pipeline
// does: "B-ORG" begins an ORG entity, "I-ORG" continues one, a label without
// a B-/I- prefix continues its own kind.
type labelTag struct {
	begin bool   // B- prefix
	tag   string // the label without its B-/I- prefix
	group string // entity_group: the label after its first "-", as label.split("-", 1)[-1]
}

func labelTags(labels []string) []labelTag {
	tags := make([]labelTag, len(labels))
	for i, l := range labels {
		t := labelTag{tag: l, group: l}
		switch {
		case strings.HasPrefix(l, "B-"):
			t.begin, t.tag = true, l[2:]
		case strings.HasPrefix(l, "I-"):
			t.tag = l[2:]
		}
		if _, after, ok := strings.Cut(l, "-"); ok {
			t.group = after
		}
		tags[i] = t
	}
	return tags
}

// span is a group of consecutive tokens [first, last] that aggregation
// makes into one entity.
type span struct {
	first, last int
	score       float32
	group       string
}

// unit is what aggregation groups into entities: one token (simple), or one
// word (first, average, max), the tokens first..last, with the label and
// score it takes.
type unit struct {
	first, last int
	label       int32
	score       float32
}

// tokenUnits makes each token a unit of its own, for aggregation simple.
func tokenUnits(dst []unit, preds []tokenPred) []unit {
	for j, p := range preds {
		dst = append(dst, unit{first: j, last: j, label: p.label, score: p.score})
	}
	return dst
}

// wordUnits groups tokens into words as transformers' pipeline does
// (aggregate_words): a token that is not a subword starts a word, and each
// word takes its label and score by agg (aggregate_word): first, its first
// token's; max, that of its token with the highest score (the first of
// equals); average, the argmax of its tokens' mean probabilities, probs
// holding dim probabilities a token.
func wordUnits(dst []unit, preds []tokenPred, subword []bool, agg aggregation, probs []float32, dim int, mean []float64) ([]unit, []float64) {
	for first := 0; first < len(preds); {
		last := first
		for last+1 < len(preds) && subword[last+1] {
			last++
		}
		u := unit{first: first, last: last}
		switch agg {
		case aggFirst:
			u.label, u.score = preds[first].label, preds[first].score
		case aggMax:
			best := first
			for j := first + 1; j <= last; j++ {
				if preds[j].score > preds[best].score {
					best = j
				}
			}
			u.label, u.score = preds[best].label, preds[best].score
		case aggAverage:
			mean = grow(mean, dim)
			clear(mean)
			for j := first; j <= last; j++ {
				for k, p := range probs[j*dim : (j+1)*dim] {
					mean[k] += float64(p)
				}
			}
			best := 0
			for k := range mean {
				if mean[k] > mean[best] {
					best = k
				}
			}
			u.label, u.score = int32(best), float32(mean[best]/float64(last-first+1))
		}
		dst = append(dst, u)
		first = last + 1
	}
	return dst, mean
}

// isSubword reports whether token j continues the word before it, by
// transformers' rule (gather_pre_entities): with a tokenizer that marks word
// pieces (tokenize.Tokenizer.ContinuesSubwords), when the token's string
// differs in length from the text it covers; otherwise when neither the
// character before the token nor its first character is a space. The
// unknown token never continues a word.
func isSubword(j int, text string, ids []int64, offs []tokenize.Offset, dec decoder, marksPieces bool, unk int64) bool {
	if ids[j] == unk {
		return false
	}
	o := offs[j]
	if marksPieces {
		return utf8.RuneCountInString(dec.Token(ids[j])) != utf8.RuneCountInString(text[o.Start:o.End])
	}
	if o.Start <= 0 || o.Start > len(text) {
		return false
	}
	prev, _ := utf8.DecodeLastRuneInString(text[:o.Start])
	cur, _ := utf8.DecodeRuneInString(text[o.Start:])
	return prev != ' ' && cur != ' '
}

// groupSimple groups units as transformers' group_entities does:
// consecutive units of the same tag join a group unless the newer one is a
// B-; a group's score is the mean of its units' scores; groups whose
// entity_group is "O" are dropped.
func groupSimple(dst []span, units []unit, tags []labelTag) []span {
	flush := func(first, last int) {
		g := tags[units[first].label].group
		if g == "O" {
			return
		}
		sum := 0.0
		for _, u := range units[first : last+1] {
			sum += float64(u.score)
		}
		dst = append(dst, span{first: units[first].first, last: units[last].last, group: g, score: float32(sum / float64(last-first+1))})
	}
	first := -1
	for j, u := range units {
		if first < 0 {
			first = j
			continue
		}
		cur, prev := tags[u.label], tags[units[j-1].label]
		if cur.tag == prev.tag && !cur.begin {
			continue
		}
		flush(first, j-1)
		first = j
	}
	if first >= 0 {
		flush(first, len(units)-1)
	}
	return dst
}

// runeCounter turns byte offsets into a string into code point offsets,
// walking forward from the last answer.
type runeCounter struct {
	s    string
	b, c int
}

func (rc *runeCounter) at(b int) int {
	b = max(0, min(b, len(rc.s)))
	if b < rc.b {
		rc.b, rc.c = 0, 0
	}
	rc.c += utf8.RuneCountInString(rc.s[rc.b:b])
	rc.b = b
	return rc.c
}

// decoder is the part of the tokenizer that names tokens.
type decoder interface {
	Token(id int64) string
	Decode(ids []int64) string
}

var _ decoder = (*tokenize.Tokenizer)(nil)

// entityText names tokens and groups of tokens as transformers does: the
// tokenizer's token strings, joined by its decoder, except that an unknown
// token is shown as the text it stands for.
type entityText struct {
	dec   decoder
	unk   int64 // -1: none
	text  string
	ids   []int64
	offs  []tokenize.Offset
	parts []string
}

func (e *entityText) token(j int) string {
	if e.ids[j] == e.unk {
		return e.text[e.offs[j].Start:e.offs[j].End]
	}
	return e.dec.Token(e.ids[j])
}

// group names the tokens first..last.
func (e *entityText) group(first, last int) string {
	ids := e.ids[first : last+1]
	if e.unk < 0 || !slices.Contains(ids, e.unk) {
		return e.dec.Decode(ids)
	}
	e.parts = e.parts[:0]
	run := first
	for j := first; j <= last; j++ {
		if e.ids[j] != e.unk {
			continue
		}
		if run < j {
			e.parts = append(e.parts, e.dec.Decode(e.ids[run:j]))
		}
		e.parts = append(e.parts, e.token(j))
		run = j + 1
	}
	if run <= last {
		e.parts = append(e.parts, e.dec.Decode(e.ids[run:last+1]))
	}
	return strings.Join(e.parts, " ")
}

// appendEntities appends the token-classification result for one document:
// its tokens ids with byte offsets offs into text, their predictions, the
// units that aggregation groups (tokens or words; unused for aggregation
// none), and the model's labels. prefix is the number of special tokens
// before the first token, for the "index" of aggregation none; unk is the
// unknown token's id.
func appendEntities(dst []byte, scratch []span, text string, ids []int64, offs []tokenize.Offset, preds []tokenPred, units []unit,
	labels []string, tags []labelTag, agg aggregation, dec decoder, prefix int, unk int64) ([]byte, []span) {
	names := entityText{dec: dec, unk: unk, text: text, ids: ids, offs: offs}
	rc := runeCounter{s: text}
	dst = append(dst, `{"entities":[`...)
	n := 0
	if agg == aggNone {
		for j, p := range preds {
			label := labels[p.label]
			if label == "O" {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, `{"entity":`...)
			dst = appendString(dst, label)
			dst = append(dst, `,"score":`...)
			dst = appendFloat(dst, p.score)
			dst = append(dst, `,"index":`...)
			dst = appendInt(dst, j+prefix)
			dst = append(dst, `,"word":`...)
			dst = appendString(dst, names.token(j))
			dst = append(dst, `,"start":`...)
			dst = appendInt(dst, rc.at(offs[j].Start))
			dst = append(dst, `,"end":`...)
			dst = appendInt(dst, rc.at(offs[j].End))
			dst = append(dst, '}')
		}
		return append(dst, "]}"...), scratch
	}
	scratch = groupSimple(scratch[:0], units, tags)
	for i, s := range scratch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"entity_group":`...)
		dst = appendString(dst, s.group)
		dst = append(dst, `,"score":`...)
		dst = appendFloat(dst, s.score)
		dst = append(dst, `,"word":`...)
		dst = appendString(dst, names.group(s.first, s.last))
		dst = append(dst, `,"start":`...)
		dst = appendInt(dst, rc.at(offs[s.first].Start))
		dst = append(dst, `,"end":`...)
		dst = appendInt(dst, rc.at(offs[s.last].End))
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), scratch
}
