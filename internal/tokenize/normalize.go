package tokenize

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// view is text together with its alignment to the original input. Byte i of s
// came from the original bytes [start[i], end[i]). A nil start means the
// identity alignment: byte i of s is byte base+i of the original.
type view struct {
	s          string
	start, end []int32
	base       int32
}

// origStart is the original offset where the normalized byte i starts.
func (v *view) origStart(i int) int {
	if v.start == nil {
		return int(v.base) + i
	}
	return int(v.start[i])
}

// origEnd is the original offset where the normalized bytes [.., b) end.
func (v *view) origEnd(b int) int {
	if v.start == nil {
		return int(v.base) + b
	}
	return int(v.end[b-1])
}

// origin returns the original range of the normalized bytes [i, j).
func (v *view) origin(i, j int) (int32, int32) {
	return int32(v.origStart(i)), int32(v.origEnd(j))
}

// buf accumulates normalized text with one alignment entry per byte.
type buf struct {
	b          []byte
	start, end []int32
	tmp        []byte
	marks      []mark
}

func (x *buf) reset() {
	x.b, x.start, x.end = x.b[:0], x.start[:0], x.end[:0]
}

func (x *buf) grow(n int) {
	x.b = growCap(x.b, n)
	x.start = growCap(x.start, n)
	x.end = growCap(x.end, n)
}

func growCap[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	ns := make([]T, len(s), 2*cap(s)+n)
	copy(ns, s)
	return ns
}

func (x *buf) addByte(c byte, s, e int32) {
	x.b = append(x.b, c)
	x.start = append(x.start, s)
	x.end = append(x.end, e)
}

func (x *buf) addString(str string, s, e int32) {
	x.b = append(x.b, str...)
	for range len(str) {
		x.start = append(x.start, s)
		x.end = append(x.end, e)
	}
}

func (x *buf) addRune(r rune, s, e int32) {
	if r < utf8.RuneSelf {
		x.addByte(byte(r), s, e)
		return
	}
	n := len(x.b)
	x.b = utf8.AppendRune(x.b, r)
	for range len(x.b) - n {
		x.start = append(x.start, s)
		x.end = append(x.end, e)
	}
}

// copyFrom appends src.s[i:j] keeping its alignment byte by byte.
func (x *buf) copyFrom(src *view, i, j int) {
	x.b = append(x.b, src.s[i:j]...)
	if src.start == nil {
		for k := i; k < j; k++ {
			x.start = append(x.start, src.base+int32(k))
			x.end = append(x.end, src.base+int32(k)+1)
		}
		return
	}
	x.start = append(x.start, src.start[i:j]...)
	x.end = append(x.end, src.end[i:j]...)
}

// view returns the buffer's content; it is valid until the next change.
func (x *buf) view() view {
	return view{s: unsafe.String(unsafe.SliceData(x.b), len(x.b)), start: x.start, end: x.end}
}

// normalizer rewrites src into dst (which it must not read), keeping the
// alignment to the original text.
type normalizer interface {
	normalize(dst *buf, src *view)
}

// parseNormalizer builds the normalizer chain of a tokenizer.json normalizer.
func parseNormalizer(raw json.RawMessage) ([]normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type              string            `json:"type"`
		CleanText         *bool             `json:"clean_text"`
		HandleChineseChar *bool             `json:"handle_chinese_chars"`
		StripAccents      *bool             `json:"strip_accents"`
		Lowercase         *bool             `json:"lowercase"`
		Normalizers       []json.RawMessage `json:"normalizers"`
		StripLeft         *bool             `json:"strip_left"`
		StripRight        *bool             `json:"strip_right"`
		Left              *bool             `json:"left"`
		Right             *bool             `json:"right"`
		Pattern           *struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	orTrue := func(b *bool) bool { return b == nil || *b }
	switch c.Type {
	case "BertNormalizer":
		lower := orTrue(c.Lowercase)
		strip := lower
		if c.StripAccents != nil {
			strip = *c.StripAccents
		}
		return []normalizer{newBertNormalizer(orTrue(c.CleanText), orTrue(c.HandleChineseChar), lower, strip)}, nil
	case "Sequence":
		var out []normalizer
		for _, n := range c.Normalizers {
			ns, err := parseNormalizer(n)
			if err != nil {
				return nil, err
			}
			out = append(out, ns...)
		}
		return out, nil
	case "NFC":
		return []normalizer{parseForm(norm.NFC)}, nil
	case "NFD":
		return []normalizer{parseForm(norm.NFD)}, nil
	case "NFKC":
		return []normalizer{parseForm(norm.NFKC)}, nil
	case "NFKD":
		return []normalizer{parseForm(norm.NFKD)}, nil
	case "Lowercase":
		return []normalizer{lowercaseNormalizer{}}, nil
	case "StripAccents":
		return []normalizer{stripAccentsNormalizer{}}, nil
	case "Strip":
		left, right := c.StripLeft, c.StripRight
		if left == nil {
			left = c.Left
		}
		if right == nil {
			right = c.Right
		}
		return []normalizer{stripNormalizer{left: orTrue(left), right: orTrue(right)}}, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String == "" {
			return nil, &UnsupportedError{Component: "normalizer", Type: "Replace (regex pattern)"}
		}
		return []normalizer{replaceNormalizer{pattern: *c.Pattern.String, content: c.Content}}, nil
	default:
		return nil, &UnsupportedError{Component: "normalizer", Type: c.Type}
	}
}

// bertNormalizer is BertNormalizer fused into one pass: clean_text, then
// spaces around CJK ideographs, then lowercase, then NFD with nonspacing
// marks removed, in the order and with the character classes of the
// reference implementation. Every step maps one character to zero or more
// characters, so the characters each input character became are aligned to
// it. ASCII goes through a lookup table; other characters below
// bertTableSize through a precomputed table.
type bertNormalizer struct {
	clean, chinese, lower, strip bool
	ascii                        *[128]int16 // -1: drop
	table                        *runeTable
}

type runeTable struct {
	off  []uint32 // rune r maps to data[off[r]:off[r+1]]
	data []byte
}

const bertTableSize = 0x3100

var bertTables [16]struct {
	once  sync.Once
	ascii [128]int16
	table runeTable
}

func newBertNormalizer(clean, chinese, lower, strip bool) *bertNormalizer {
	n := &bertNormalizer{clean: clean, chinese: chinese, lower: lower, strip: strip}
	k := 0
	for i, b := range []bool{clean, chinese, lower, strip} {
		if b {
			k |= 1 << i
		}
	}
	t := &bertTables[k]
	t.once.Do(func() {
		var tmp buf
		for r := range rune(128) {
			tmp.reset()
			n.mapRune(&tmp, r, 0, 0)
			t.ascii[r] = -1
			if len(tmp.b) == 1 {
				t.ascii[r] = int16(tmp.b[0])
			}
		}
		t.table.off = make([]uint32, bertTableSize+1)
		for r := range rune(bertTableSize) {
			tmp.reset()
			if !(r >= 0xD800 && r < 0xE000) {
				n.mapRune(&tmp, r, 0, 0)
			}
			t.table.data = append(t.table.data, tmp.b...)
			t.table.off[r+1] = uint32(len(t.table.data))
		}
	})
	n.ascii, n.table = &t.ascii, &t.table
	return n
}

func (n *bertNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s) + len(s)/4)
	ascii := n.ascii
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if m := ascii[c]; m >= 0 {
				o := src.origStart(i)
				dst.b = append(dst.b, byte(m))
				dst.start = append(dst.start, int32(o))
				dst.end = append(dst.end, int32(src.origEnd(i+1)))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		os, oe := src.origin(i, i+size)
		switch {
		case size == 1: // invalid UTF-8: U+FFFD
			if !n.clean {
				dst.addRune(utf8.RuneError, os, oe)
			}
		case r == 'Σ' && n.lower:
			if finalSigma(s, i, size, n.clean) {
				dst.addRune('ς', os, oe)
			} else {
				dst.addRune('σ', os, oe)
			}
		case r < bertTableSize:
			dst.addString(unsafe.String(unsafe.SliceData(n.table.data[n.table.off[r]:]), n.table.off[r+1]-n.table.off[r]), os, oe)
		case r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF:
			// CJK unified ideographs: no case, no decomposition.
			if n.chinese {
				dst.addByte(' ', os, oe)
				dst.addRune(r, os, oe)
				dst.addByte(' ', os, oe)
			} else {
				dst.addRune(r, os, oe)
			}
		default:
			n.mapRune(dst, r, os, oe)
		}
		i += size
	}
}

// mapRune appends what the normalizer makes of r (context-free).
func (n *bertNormalizer) mapRune(dst *buf, r rune, os, oe int32) {
	if n.clean {
		if r == 0 || r == utf8.RuneError || isControl(r) {
			return
		}
		if isJSSpace(r) {
			dst.addByte(' ', os, oe)
			return
		}
	}
	pad := n.chinese && isCJK(r)
	if pad {
		dst.addByte(' ', os, oe)
	}
	if n.lower {
		if r == 'İ' {
			// The one unconditional multi-character lowercase mapping.
			n.afterLower(dst, 'i', os, oe)
			n.afterLower(dst, 0x307, os, oe)
		} else {
			n.afterLower(dst, unicode.ToLower(r), os, oe)
		}
	} else {
		n.afterLower(dst, r, os, oe)
	}
	if pad {
		dst.addByte(' ', os, oe)
	}
}

func (n *bertNormalizer) afterLower(dst *buf, r rune, os, oe int32) {
	if !n.strip || r < utf8.RuneSelf {
		dst.addRune(r, os, oe)
		return
	}
	appendDecomposedNoMn(dst, r, os, oe, unicode.Mn)
}

// appendDecomposedNoMn appends the canonical decomposition of r without the
// characters of category drop.
func appendDecomposedNoMn(dst *buf, r rune, os, oe int32, drop *unicode.RangeTable) {
	if r >= 0xAC00 && r <= 0xD7A3 { // Hangul syllable: algorithmic decomposition
		const sBase, lBase, vBase, tBase, tCount, nCount = 0xAC00, 0x1100, 0x1161, 0x11A7, 28, 588
		si := r - sBase
		dst.addRune(lBase+si/nCount, os, oe)
		dst.addRune(vBase+(si%nCount)/tCount, os, oe)
		if t := si % tCount; t != 0 {
			dst.addRune(tBase+t, os, oe)
		}
		return
	}
	var enc [utf8.UTFMax]byte
	d := norm.NFD.Properties(enc[:utf8.EncodeRune(enc[:], r)]).Decomposition()
	if d == nil {
		if !unicode.Is(drop, r) {
			dst.addRune(r, os, oe)
		}
		return
	}
	for len(d) > 0 {
		c, size := utf8.DecodeRune(d)
		if !unicode.Is(drop, c) {
			dst.addRune(c, os, oe)
		}
		d = d[size:]
	}
}

// isControl is the reference's control-character test: categories Cc, Cf, Co
// and Cs, except tab, newline and carriage return.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	if r < 0x80 {
		return r < 0x20 || r == 0x7f
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// isJSSpace is JavaScript's \s: the characters BertNormalizer turns into a
// space and BertPreTokenizer splits on.
func isJSSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// isCJK is the reference's "Chinese character" test, applied to UTF-16 code
// units as the reference does: characters outside the Basic Multilingual
// Plane are never padded.
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0xF900 && r <= 0xFAFF
}

// finalSigma applies Unicode's Final_Sigma condition (as JavaScript's
// toLowerCase does) to the capital sigma at s[i:i+size].
func finalSigma(s string, i, size int, clean bool) bool {
	skip := func(r rune) bool {
		return caseIgnorable(r) || clean && (r == 0 || r == utf8.RuneError || isControl(r))
	}
	before := false
	for j := i; j > 0; {
		r, n := utf8.DecodeLastRuneInString(s[:j])
		j -= n
		if skip(r) {
			continue
		}
		before = isCased(r)
		break
	}
	if !before {
		return false
	}
	for j := i + size; j < len(s); {
		r, n := utf8.DecodeRuneInString(s[j:])
		j += n
		if skip(r) {
			continue
		}
		return !isCased(r)
	}
	return true
}

func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xA8, 0xAD, 0xAF, 0xB4, 0xB7, 0xB8, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return r >= 0x80 && unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// unicodeNormalizer applies a Unicode normalization form. The decomposing
// forms (NFD, NFKD) work character by character, so each output character
// is aligned to the input character it came from (combining marks keep their
// alignment when canonical ordering moves them). The composing forms (NFC,
// NFKC) work segment by segment; the characters of a rewritten segment are
// aligned to the whole input segment.
type unicodeNormalizer struct{ form norm.Form }

func parseForm(f norm.Form) normalizer {
	if f == norm.NFD || f == norm.NFKD {
		return decomposer{form: f}
	}
	return unicodeNormalizer{form: f}
}

func (n unicodeNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s))
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf && (i+1 == len(s) || s[i+1] < utf8.RuneSelf) {
			dst.copyFrom(src, i, i+1)
			i++
			continue
		}
		j := i + n.form.NextBoundaryInString(s[i:], true)
		if j <= i {
			j = len(s)
		}
		seg := s[i:j]
		if n.form.IsNormalString(seg) {
			dst.copyFrom(src, i, j)
		} else {
			dst.tmp = n.form.AppendString(dst.tmp[:0], seg)
			os, oe := src.origin(i, j)
			dst.addString(unsafe.String(unsafe.SliceData(dst.tmp), len(dst.tmp)), os, oe)
		}
		i = j
	}
}

// decomposer is NFD or NFKD: full decomposition of each character, then
// canonical ordering of each run of combining marks.
type decomposer struct{ form norm.Form }

// mark is a combining mark waiting for canonical ordering.
type mark struct {
	r      rune
	ccc    uint8
	os, oe int32
}

func (n decomposer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s))
	marks := dst.marks[:0]
	add := func(c rune, os, oe int32) {
		var enc [utf8.UTFMax]byte
		ccc := n.form.Properties(enc[:utf8.EncodeRune(enc[:], c)]).CCC()
		if ccc == 0 {
			marks = flushMarks(dst, marks)
			dst.addRune(c, os, oe)
			return
		}
		marks = append(marks, mark{c, ccc, os, oe})
	}
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			marks = flushMarks(dst, marks)
			dst.copyFrom(src, i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		os, oe := src.origin(i, i+size)
		i += size
		if r >= 0xAC00 && r <= 0xD7A3 { // Hangul syllable: algorithmic decomposition
			const sBase, lBase, vBase, tBase, tCount, nCount = 0xAC00, 0x1100, 0x1161, 0x11A7, 28, 588
			si := r - sBase
			add(lBase+si/nCount, os, oe)
			add(vBase+(si%nCount)/tCount, os, oe)
			if t := si % tCount; t != 0 {
				add(tBase+t, os, oe)
			}
			continue
		}
		var enc [utf8.UTFMax]byte
		d := n.form.Properties(enc[:utf8.EncodeRune(enc[:], r)]).Decomposition()
		if d == nil {
			add(r, os, oe)
			continue
		}
		for len(d) > 0 {
			c, k := utf8.DecodeRune(d)
			add(c, os, oe)
			d = d[k:]
		}
	}
	dst.marks = flushMarks(dst, marks)
}

// flushMarks appends the pending marks in canonical (stable, by combining
// class) order and empties the list.
func flushMarks(dst *buf, marks []mark) []mark {
	for i := 1; i < len(marks); i++ {
		for j := i; j > 0 && marks[j-1].ccc > marks[j].ccc; j-- {
			marks[j-1], marks[j] = marks[j], marks[j-1]
		}
	}
	for _, m := range marks {
		dst.addRune(m.r, m.os, m.oe)
	}
	return marks[:0]
}

// lowercaseNormalizer is the Lowercase normalizer with JavaScript's
// toLowerCase semantics (final sigma, dotted capital I).
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			os, oe := src.origin(i, i+1)
			dst.addByte(c, os, oe)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		os, oe := src.origin(i, i+size)
		switch {
		case r == 'Σ':
			if finalSigma(s, i, size, false) {
				dst.addRune('ς', os, oe)
			} else {
				dst.addRune('σ', os, oe)
			}
		case r == 'İ':
			dst.addString("i\u0307", os, oe)
		default:
			dst.addRune(unicode.ToLower(r), os, oe)
		}
		i += size
	}
}

// stripAccentsNormalizer removes every combining mark (category M).
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s))
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			dst.copyFrom(src, i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.Is(unicode.M, r) {
			dst.copyFrom(src, i, i+size)
		}
		i += size
	}
}

// stripNormalizer trims whitespace at either end.
type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	i, j := 0, len(s)
	if n.left {
		i = len(s) - len(strings.TrimLeftFunc(s, isJSSpace))
	}
	if n.right {
		j = i + len(strings.TrimRightFunc(s[i:], isJSSpace))
	}
	dst.grow(j - i)
	dst.copyFrom(src, i, j)
}

// replaceNormalizer replaces every occurrence of a literal pattern; the
// replacement is aligned to the replaced original range.
type replaceNormalizer struct{ pattern, content string }

func (n replaceNormalizer) normalize(dst *buf, src *view) {
	s := src.s
	dst.grow(len(s))
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], n.pattern)
		if k < 0 {
			dst.copyFrom(src, i, len(s))
			return
		}
		dst.copyFrom(src, i, i+k)
		os, oe := src.origin(i+k, i+k+len(n.pattern))
		dst.addString(n.content, os, oe)
		i += k + len(n.pattern)
	}
}
