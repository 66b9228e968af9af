package tokenize

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// model turns one pre-tokenized word, the span sp of v, into tokens appended
// to dst.
type model interface {
	encode(dst *Encoding, v *view, sp span, word int)
}

func (e *Encoding) add(id int32, start, end, word int) {
	e.IDs = append(e.IDs, int64(id))
	e.Offsets = append(e.Offsets, Offset{Start: start, End: end})
	e.WordIDs = append(e.WordIDs, word)
}

// wordPiece is greedy longest-match-first WordPiece. Word-initial pieces are
// matched in first, continuation pieces (without their prefix) in cont, each
// a trie walked once per piece.
type wordPiece struct {
	first, cont *trie
	whole       map[string]int32 // the vocabulary: most words are one token
	unk         int32
	maxChars    int
}

func newWordPiece(c *modelConfig, vocab map[string]int32) (*wordPiece, error) {
	m := &wordPiece{maxChars: 100, whole: vocab}
	if c.MaxInputCharsPerWord != nil {
		m.maxChars = *c.MaxInputCharsPerWord
	}
	prefix := "##"
	if c.ContinuingSubwordPrefix != nil {
		prefix = *c.ContinuingSubwordPrefix
	}
	unk := "[UNK]"
	if c.UnkToken != nil {
		unk = *c.UnkToken
	}
	id, ok := vocab[unk]
	if !ok {
		return nil, fmt.Errorf("model WordPiece: unk_token %q not in vocab", unk)
	}
	m.unk = id
	m.first = newTrie(vocab)
	if prefix == "" {
		m.cont = m.first
	} else {
		cont := make(map[string]int32)
		for tok, id := range vocab {
			if rest, ok := strings.CutPrefix(tok, prefix); ok {
				cont[rest] = id
			}
		}
		m.cont = newTrie(cont)
	}
	return m, nil
}

func (m *wordPiece) encode(dst *Encoding, v *view, sp span, word int) {
	w := v.s[sp.s:sp.e]
	base := int(sp.s)
	if len(w) > m.maxChars && utf8.RuneCountInString(w) > m.maxChars {
		dst.add(m.unk, v.origStart(base), v.origEnd(base+len(w)), word)
		return
	}
	if id, ok := m.whole[w]; ok {
		dst.add(id, v.origStart(base), v.origEnd(base+len(w)), word)
		return
	}
	mark := len(dst.IDs)
	t := m.first
	for start := 0; start < len(w); {
		id, n := t.longest(w[start:])
		if n == 0 {
			dst.IDs, dst.Offsets, dst.WordIDs = dst.IDs[:mark], dst.Offsets[:mark], dst.WordIDs[:mark]
			dst.add(m.unk, v.origStart(base), v.origEnd(base+len(w)), word)
			return
		}
		dst.add(id, v.origStart(base+start), v.origEnd(base+start+n), word)
		start += n
		t = m.cont
	}
}

// wordLevel maps each word to its id, or to the unknown token.
type wordLevel struct {
	vocab  map[string]int32
	unk    int32
	hasUnk bool
}

func newWordLevel(c *modelConfig, vocab map[string]int32) (*wordLevel, error) {
	m := &wordLevel{vocab: vocab}
	if c.UnkToken != nil {
		id, ok := vocab[*c.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model WordLevel: unk_token %q not in vocab", *c.UnkToken)
		}
		m.unk, m.hasUnk = id, true
	}
	return m, nil
}

func (m *wordLevel) encode(dst *Encoding, v *view, sp span, word int) {
	id, ok := m.vocab[v.s[sp.s:sp.e]]
	if !ok {
		if !m.hasUnk {
			return
		}
		id = m.unk
	}
	dst.add(id, v.origStart(int(sp.s)), v.origEnd(int(sp.e)), word)
}

// wordPieceDecoder is the WordPiece decoder: continuation pieces lose their
// prefix and join the previous token, other tokens are separated by a space,
// and with cleanup the usual detokenization replacements run on each token.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func parseDecoder(raw json.RawMessage) (*wordPieceDecoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type    string  `json:"type"`
		Prefix  *string `json:"prefix"`
		Cleanup *bool   `json:"cleanup"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if c.Type != "WordPiece" {
		return nil, &UnsupportedError{Component: "decoder", Type: c.Type}
	}
	d := &wordPieceDecoder{prefix: "##", cleanup: true}
	if c.Prefix != nil {
		d.prefix = *c.Prefix
	}
	if c.Cleanup != nil {
		d.cleanup = *c.Cleanup
	}
	return d, nil
}

var cleanupPairs = [...][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

// cleanupTokenization undoes the spaces that joining tokens puts before
// punctuation and English contractions.
func cleanupTokenization(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	for _, p := range cleanupPairs {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}

func (d *wordPieceDecoder) decode(tokens []string) string {
	var b strings.Builder
	for i, tok := range tokens {
		if i > 0 {
			if d.prefix != "" && strings.HasPrefix(tok, d.prefix) {
				tok = tok[len(d.prefix):]
			} else {
				tok = " " + tok
			}
		}
		if d.cleanup {
			tok = cleanupTokenization(tok)
		}
		b.WriteString(tok)
	}
	return b.String()
}
