package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Tokenizer encodes text the way a Hugging Face tokenizer.json describes.
// It is safe for concurrent use.
type Tokenizer struct {
	added     *addedSplitter // added tokens matched in the original text
	addedNorm *addedSplitter // added tokens matched in the normalized text
	norms     []normalizer
	pre       []preTokenizer
	model     model
	decoder   *wordPieceDecoder
	fallback  *fallback // set when the model runs through the fallback

	tokens   []string // id → token
	unkToken string
	// subwords: the model marks word pieces after a word's first with a
	// continuing-subword prefix (WordPiece's "##", or a BPE's own).
	subwords bool
	template Template
	pair     PairTemplate
	padID    int64
	scratch  sync.Pool
}

// Offset is a byte range [Start, End) into the text given to Encode.
type Offset struct{ Start, End int }

// Encoding is the tokens of one text without special tokens.
type Encoding struct {
	// IDs are the token ids.
	IDs []int64
	// Offsets are the tokens' byte ranges in the original text.
	Offsets []Offset
	// WordIDs are, for each token, the index of the pre-tokenized word it
	// came from (added tokens count as words).
	WordIDs []int
}

// Template is what the post-processor adds around a single sequence, such as
// [CLS] before and [SEP] after. Type ids are 0 for a single sequence.
type Template struct{ Prefix, Suffix []int64 }

// Load reads a Hugging Face tokenizer.json.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Parse is Load from the bytes of a tokenizer.json.
//
// WordPiece and WordLevel models with the normalizers, pre-tokenizers and
// decoders listed in the package documentation run natively. Other models
// (BPE, Unigram) and other components run through github.com/sugarme/tokenizer;
// when that cannot load them either, Parse returns an error wrapping an
// *UnsupportedError that names the component.
func Parse(data []byte) (*Tokenizer, error) {
	var c fileConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if isNull(c.Model) {
		return nil, errors.New("parse tokenizer.json: no model")
	}
	var mc modelConfig
	if err := json.Unmarshal(c.Model, &mc); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json model: %w", err)
	}
	t := &Tokenizer{subwords: mc.continuesSubwords()}
	var err error
	if t.template, err = parseTemplate(c.PostProcessor); err != nil {
		return nil, err
	}
	if t.pair, err = parsePairTemplate(c.PostProcessor); err != nil {
		return nil, err
	}
	if err := t.buildNative(&c, &mc); err != nil {
		var unsupported *UnsupportedError
		if !errors.As(err, &unsupported) {
			return nil, err
		}
		fb, ferr := newFallback(data)
		if ferr != nil {
			return nil, fmt.Errorf("%w (fallback: %v)", err, ferr)
		}
		t.fallback = fb
		t.tokens = fb.tokens
		t.unkToken = fb.unkToken
	}
	t.padID = t.findPadID(&c)
	t.scratch.New = func() any { return new(scratch) }
	return t, nil
}

// buildNative sets up the native pipeline, or returns an *UnsupportedError.
func (t *Tokenizer) buildNative(c *fileConfig, mc *modelConfig) error {
	typ := mc.modelType()
	if typ != "WordPiece" && typ != "WordLevel" {
		return &UnsupportedError{Component: "model", Type: typ}
	}
	norms, err := parseNormalizer(c.Normalizer)
	if err != nil {
		return err
	}
	pre, err := parsePreTokenizer(c.PreTokenizer)
	if err != nil {
		return err
	}
	dec, err := parseDecoder(c.Decoder)
	if err != nil {
		return err
	}
	vocab, tokens, err := buildVocab(mc.Vocab, c.AddedTokens)
	if err != nil {
		return err
	}
	switch typ {
	case "WordPiece":
		t.model, err = newWordPiece(mc, vocab)
	default:
		t.model, err = newWordLevel(mc, vocab)
	}
	if err != nil {
		return err
	}
	if mc.UnkToken != nil {
		t.unkToken = *mc.UnkToken
	}
	t.norms, t.pre, t.decoder, t.tokens = norms, pre, dec, tokens
	var raw, normalized []addedTokenConfig
	for _, a := range c.AddedTokens {
		if a.Content == "" {
			continue
		}
		if a.Normalized != nil && *a.Normalized || a.Normalized == nil && !a.Special {
			if len(norms) > 0 {
				a.Content = normalizeString(norms, a.Content)
				if a.Content != "" {
					normalized = append(normalized, a)
				}
				continue
			}
		}
		raw = append(raw, a)
	}
	t.added = newAddedSplitter(raw)
	t.addedNorm = newAddedSplitter(normalized)
	return nil
}

func (t *Tokenizer) findPadID(c *fileConfig) int64 {
	if c.Padding != nil && c.Padding.PadID != nil {
		return *c.Padding.PadID
	}
	for _, name := range []string{"[PAD]", "<pad>"} {
		for id, tok := range t.tokens {
			if tok == name {
				return int64(id)
			}
		}
	}
	return 0
}

// Template returns the special tokens the post-processor puts around a
// single sequence.
func (t *Tokenizer) Template() Template {
	return Template{
		Prefix: append([]int64(nil), t.template.Prefix...),
		Suffix: append([]int64(nil), t.template.Suffix...),
	}
}

// ContinuesSubwords reports whether the model marks the pieces of a word
// after its first with a continuing-subword prefix (WordPiece's "##", or a
// BPE's continuing_subword_prefix): then a token whose string differs in
// length from the text it covers is a word piece. transformers' token-classification
// pipeline groups tokens into words that way, and by spaces otherwise.
func (t *Tokenizer) ContinuesSubwords() bool { return t.subwords }

// PadID is the padding token id: padding.pad_id, else the id of [PAD] or
// <pad>, else 0.
func (t *Tokenizer) PadID() int64 { return t.padID }

// VocabSize is one more than the largest token id, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the token string of id, or "" when there is none.
func (t *Tokenizer) Token(id int64) string {
	if id < 0 || id >= int64(len(t.tokens)) {
		return ""
	}
	return t.tokens[id]
}

// Decode turns ids into text as the tokenizer.json decoder does (what
// Hugging Face's convert_tokens_to_string returns): with the WordPiece
// decoder, "##" pieces join the previous token, other tokens are separated by
// spaces, and spaces before punctuation and contractions are cleaned up.
// Special tokens are kept; unknown ids decode as the unknown token.
func (t *Tokenizer) Decode(ids []int64) string {
	if t.fallback != nil && t.decoder == nil {
		return t.fallback.decode(ids)
	}
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok := t.Token(id)
		if tok == "" {
			tok = t.unkToken
		}
		tokens = append(tokens, tok)
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	return t.decoder.decode(tokens)
}

// Encode tokenizes text without adding special tokens and without
// truncation. It panics on texts longer than MaxTextBytes.
func (t *Tokenizer) Encode(text string) *Encoding {
	e := new(Encoding)
	t.EncodeTo(e, text)
	return e
}

// scratch is the per-call working memory, pooled.
type scratch struct {
	bufs     [2]buf
	view     view
	pieces   [2][]span
	sections []section
}

// section is a part of the text: an added token (id >= 0) or text to run
// through the pipeline (id < 0).
type section struct {
	s, e int32
	id   int32
}

// MaxTextBytes is the longest text Encode and EncodeTo accept; they panic on
// longer ones (offsets are kept in 32 bits and normalization can grow a text
// several times over). Callers bound their inputs far below it.
const MaxTextBytes = 128 << 20

// EncodeTo is Encode writing into dst, reusing its slices (dst.IDs[:0] and
// so on) so that a caller encoding many texts does not allocate.
func (t *Tokenizer) EncodeTo(dst *Encoding, text string) {
	dst.IDs, dst.Offsets, dst.WordIDs = dst.IDs[:0], dst.Offsets[:0], dst.WordIDs[:0]
	if t.fallback != nil {
		t.fallback.encode(dst, text)
		return
	}
	if len(text) > MaxTextBytes {
		panic(fmt.Sprintf("tokenize: text of %d bytes is longer than MaxTextBytes", len(text)))
	}
	sc := t.scratch.Get().(*scratch)
	word := 0
	if t.added == nil {
		t.encodeSection(dst, sc, text, 0, &word)
	} else {
		src := view{s: text}
		sc.sections = t.added.split(sc.sections[:0], &src)
		for _, s := range sc.sections {
			if s.id >= 0 {
				dst.add(s.id, int(s.s), int(s.e), word)
				word++
				continue
			}
			t.encodeSection(dst, sc, text[s.s:s.e], s.s, &word)
		}
	}
	if len(text) <= 1<<20 { // do not keep the buffers of an outsized text
		t.scratch.Put(sc)
	}
}

// encodeSection runs text (which starts at base in the original) through
// normalization, normalized added tokens, pre-tokenization and the model.
func (t *Tokenizer) encodeSection(dst *Encoding, sc *scratch, text string, base int32, word *int) {
	// The view lives in the scratch: passed to interface methods, a local
	// would escape and cost an allocation per call.
	v := &sc.view
	*v = view{s: text, base: base}
	for k, n := range t.norms {
		b := &sc.bufs[k&1]
		b.reset()
		n.normalize(b, v)
		*v = b.view()
	}
	if len(v.s) == 0 {
		return
	}
	if t.addedNorm == nil {
		t.encodeWords(dst, sc, v, span{0, int32(len(v.s))}, word)
		return
	}
	// Sections of the normalized text; kept apart from sc.sections, which
	// the caller is iterating over.
	secs := t.addedNorm.split(nil, v)
	for _, s := range secs {
		if s.id >= 0 {
			dst.add(s.id, int(s.s), int(s.e), *word) // split made them original offsets
			*word++
			continue
		}
		t.encodeWords(dst, sc, v, span{s.s, s.e}, word)
	}
}

func (t *Tokenizer) encodeWords(dst *Encoding, sc *scratch, v *view, sp span, word *int) {
	pieces := append(sc.pieces[0][:0], sp)
	other := sc.pieces[1][:0]
	for _, p := range t.pre {
		other = p.split(other[:0], v.s, pieces)
		pieces, other = other, pieces
	}
	for _, p := range pieces {
		if p.e > p.s {
			t.model.encode(dst, v, p, *word)
			*word++
		}
	}
	sc.pieces[0], sc.pieces[1] = pieces, other
}

// addedSplitter finds added tokens in text: at each position the longest
// token starting there, scanning left to right, like the reference.
type addedSplitter struct {
	byFirst [256][]addedTokenConfig // candidates by first byte, longest first
	first   int                     // the one first byte all tokens share, or -1
}

func newAddedSplitter(tokens []addedTokenConfig) *addedSplitter {
	if len(tokens) == 0 {
		return nil
	}
	a := &addedSplitter{first: int(tokens[0].Content[0])}
	for _, tok := range tokens {
		if int(tok.Content[0]) != a.first {
			a.first = -1
		}
		l := &a.byFirst[tok.Content[0]]
		i := 0
		for i < len(*l) && len((*l)[i].Content) >= len(tok.Content) {
			i++
		}
		*l = append(*l, addedTokenConfig{})
		copy((*l)[i+1:], (*l)[i:])
		(*l)[i] = tok
	}
	return a
}

// split appends the sections of src.s to out, with lstrip/rstrip applied to
// the text around added tokens. Offsets of added tokens are original
// offsets; offsets of text sections are offsets into src.s.
func (a *addedSplitter) split(out []section, src *view) []section {
	s := src.s
	start := 0
	first := len(out)
	for i := 0; i < len(s); {
		if a.first >= 0 {
			// Typical: [CLS], [SEP], ... all start with '['.
			k := strings.IndexByte(s[i:], byte(a.first))
			if k < 0 {
				break
			}
			i += k
		}
		var hit *addedTokenConfig
		for k := range a.byFirst[s[i]] {
			if c := &a.byFirst[s[i]][k]; strings.HasPrefix(s[i:], c.Content) {
				hit = c
				break
			}
		}
		if hit == nil {
			i++
			continue
		}
		if i > start {
			out = append(out, section{int32(start), int32(i), -1})
		}
		out = append(out, section{int32(i), int32(i + len(hit.Content)), int32(hit.ID)})
		i += len(hit.Content)
		start = i
	}
	if start < len(s) {
		out = append(out, section{int32(start), int32(len(s)), -1})
	}
	// lstrip/rstrip trim the whitespace of the neighbouring text.
	for k := first; k < len(out); k++ {
		if out[k].id < 0 {
			continue
		}
		tok := a.lookup(s[out[k].s:out[k].e])
		if tok.LStrip && k > first && out[k-1].id < 0 {
			p := &out[k-1]
			p.e = p.s + int32(len(strings.TrimRightFunc(s[p.s:p.e], isJSSpace)))
		}
		if tok.RStrip && k+1 < len(out) && out[k+1].id < 0 {
			n := &out[k+1]
			n.s = n.e - int32(len(strings.TrimLeftFunc(s[n.s:n.e], isJSSpace)))
		}
	}
	// Added tokens carry original offsets.
	for k := first; k < len(out); k++ {
		if out[k].id >= 0 {
			os, oe := src.origin(int(out[k].s), int(out[k].e))
			out[k].s, out[k].e = os, oe
		}
	}
	return out
}

func (a *addedSplitter) lookup(content string) *addedTokenConfig {
	for k := range a.byFirst[content[0]] {
		if c := &a.byFirst[content[0]][k]; c.Content == content {
			return c
		}
	}
	return &addedTokenConfig{}
}

// normalizeString runs s through a normalizer chain.
func normalizeString(norms []normalizer, s string) string {
	var bufs [2]buf
	v := view{s: s}
	for k, n := range norms {
		b := &bufs[k&1]
		b.reset()
		n.normalize(b, &v)
		v = b.view()
	}
	return strings.Clone(v.s)
}
