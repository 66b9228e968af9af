package tokenize

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// span is a byte range [s, e) of the normalized text.
type span struct{ s, e int32 }

// preTokenizer splits each span of in into words, appending them to out.
type preTokenizer interface {
	split(out []span, s string, in []span) []span
}

// Character classes of ASCII bytes for the pre-tokenizers.
const (
	clsOther = iota
	clsSpace
	clsPunct
)

var asciiClass = func() (t [128]uint8) {
	for c := range 128 {
		switch {
		case c == ' ' || c >= '\t' && c <= '\r':
			t[c] = clsSpace
		case c >= 0x21 && c <= 0x2F || c >= 0x3A && c <= 0x40 || c >= 0x5B && c <= 0x60 || c >= 0x7B && c <= 0x7E:
			t[c] = clsPunct
		}
	}
	return t
}()

// isBertPunct is the reference's punctuation: ASCII punctuation and symbols,
// and Unicode category P.
func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r] == clsPunct
	}
	return unicode.IsPunct(r)
}

func parsePreTokenizer(raw json.RawMessage) ([]preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type             string            `json:"type"`
		Pretokenizers    []json.RawMessage `json:"pretokenizers"`
		Behavior         string            `json:"behavior"`
		IndividualDigits bool              `json:"individual_digits"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "BertPreTokenizer":
		return []preTokenizer{bertPreTokenizer{}}, nil
	case "Whitespace":
		return []preTokenizer{whitespacePreTokenizer{}}, nil
	case "WhitespaceSplit":
		return []preTokenizer{whitespaceSplit{}}, nil
	case "Punctuation":
		switch c.Behavior {
		case "", "Isolated":
			return []preTokenizer{classSplit{is: isBertPunct}}, nil
		case "Contiguous":
			return []preTokenizer{classSplit{is: isBertPunct, contiguous: true}}, nil
		case "Removed":
			return []preTokenizer{classSplit{is: isBertPunct, removed: true}}, nil
		}
		return nil, &UnsupportedError{Component: "pre_tokenizer", Type: "Punctuation (behavior " + c.Behavior + ")"}
	case "Digits":
		return []preTokenizer{classSplit{is: unicode.IsNumber, contiguous: !c.IndividualDigits}}, nil
	case "Sequence":
		var out []preTokenizer
		for _, p := range c.Pretokenizers {
			ps, err := parsePreTokenizer(p)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
		}
		return out, nil
	default:
		return nil, &UnsupportedError{Component: "pre_tokenizer", Type: c.Type}
	}
}

// bertPreTokenizer splits on whitespace (dropped) and punctuation (each
// character its own word).
type bertPreTokenizer struct{}

func (bertPreTokenizer) split(out []span, s string, in []span) []span {
	for _, sp := range in {
		w := int32(-1) // start of the current word, -1 when none
		for i := sp.s; i < sp.e; {
			c := s[i]
			var cls uint8
			size := int32(1)
			if c < utf8.RuneSelf {
				cls = asciiClass[c]
			} else {
				r, n := utf8.DecodeRuneInString(s[i:sp.e])
				size = int32(n)
				switch {
				case isJSSpace(r):
					cls = clsSpace
				case unicode.IsPunct(r):
					cls = clsPunct
				}
			}
			if cls == clsOther {
				if w < 0 {
					w = i
				}
			} else {
				if w >= 0 {
					out = append(out, span{w, i})
					w = -1
				}
				if cls == clsPunct {
					out = append(out, span{i, i + size})
				}
			}
			i += size
		}
		if w >= 0 {
			out = append(out, span{w, sp.e})
		}
	}
	return out
}

// whitespacePreTokenizer is the pattern \w+|[^\w\s]+ with Unicode classes.
type whitespacePreTokenizer struct{}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.Nd, unicode.Pc, unicode.Other_Alphabetic, unicode.Nl) || r == 0x200C || r == 0x200D
}

func (whitespacePreTokenizer) split(out []span, s string, in []span) []span {
	for _, sp := range in {
		w, wcls := int32(-1), 0 // 1: word chars, 2: other non-space
		for i := sp.s; i < sp.e; {
			r, n := rune(s[i]), int32(1)
			if r >= utf8.RuneSelf {
				var k int
				r, k = utf8.DecodeRuneInString(s[i:sp.e])
				n = int32(k)
			}
			cls := 2
			switch {
			case isWordRune(r):
				cls = 1
			case unicode.IsSpace(r):
				cls = 0
			}
			if cls != wcls && w >= 0 {
				out = append(out, span{w, i})
				w = -1
			}
			if cls != 0 && w < 0 {
				w = i
			}
			wcls = cls
			i += n
		}
		if w >= 0 {
			out = append(out, span{w, sp.e})
		}
	}
	return out
}

// whitespaceSplit splits on Unicode whitespace.
type whitespaceSplit struct{}

func (whitespaceSplit) split(out []span, s string, in []span) []span {
	for _, sp := range in {
		w := int32(-1)
		for i := sp.s; i < sp.e; {
			r, n := rune(s[i]), int32(1)
			if r >= utf8.RuneSelf {
				var k int
				r, k = utf8.DecodeRuneInString(s[i:sp.e])
				n = int32(k)
			}
			if unicode.IsSpace(r) {
				if w >= 0 {
					out = append(out, span{w, i})
					w = -1
				}
			} else if w < 0 {
				w = i
			}
			i += n
		}
		if w >= 0 {
			out = append(out, span{w, sp.e})
		}
	}
	return out
}

// classSplit splits each span around the characters in a class: each one
// isolated, runs of them kept together (contiguous), or dropped (removed).
// Characters outside the class stay together.
type classSplit struct {
	is                  func(rune) bool
	contiguous, removed bool
}

func (c classSplit) split(out []span, s string, in []span) []span {
	for _, sp := range in {
		w, wIn := int32(-1), false
		for i := sp.s; i < sp.e; {
			r, n := rune(s[i]), int32(1)
			if r >= utf8.RuneSelf {
				var k int
				r, k = utf8.DecodeRuneInString(s[i:sp.e])
				n = int32(k)
			}
			in := c.is(r)
			if w >= 0 && (in != wIn || in && !c.contiguous) {
				out = append(out, span{w, i})
				w = -1
			}
			if w < 0 && !(in && c.removed) {
				w, wIn = i, in
			}
			i += n
		}
		if w >= 0 {
			out = append(out, span{w, sp.e})
		}
	}
	return out
}
