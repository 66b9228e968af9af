package tokenize

import (
	"encoding/json"
	"fmt"
)

// PairTemplate is what the post-processor makes of a pair of sequences (a
// query and a passage, a premise and a hypothesis): the special tokens
// before, between and after them, and the token type id of every position.
// For BERT it is [CLS] A [SEP] B [SEP] with type ids 0 up to the first
// [SEP] and 1 after it; for RoBERTa <s> A </s></s> B </s>.
type PairTemplate struct {
	parts []pairPart
}

// pairPart is one item of a pair template: special tokens, or sequence A or
// B, with the type id its tokens get.
type pairPart struct {
	ids []int64 // special tokens; nil for a sequence
	seq byte    // 'A', 'B', or 0 for special tokens
	typ int64
}

// PairTemplate returns the template the post-processor applies to a pair.
func (t *Tokenizer) PairTemplate() PairTemplate {
	return PairTemplate{parts: append([]pairPart(nil), t.pair.parts...)}
}

// Specials is the number of special tokens the template adds to a pair.
func (p PairTemplate) Specials() int {
	n := 0
	for _, pt := range p.parts {
		n += len(pt.ids)
	}
	return n
}

// Fill writes the template applied to sequences a and b into ids and types
// (token type ids), which must hold at least Specials()+len(a)+len(b)
// elements, and returns how many it wrote. It allocates nothing, so a batch
// is filled in place.
func (p PairTemplate) Fill(ids, types []int64, a, b []int64) int {
	k := 0
	put := func(src []int64, typ int64) {
		n := copy(ids[k:], src)
		for i := range n {
			types[k+i] = typ
		}
		k += n
	}
	for _, pt := range p.parts {
		switch pt.seq {
		case 'A':
			put(a, pt.typ)
		case 'B':
			put(b, pt.typ)
		default:
			put(pt.ids, pt.typ)
		}
	}
	return k
}

// Encode returns the ids and token type ids of the pair a, b with the
// template's special tokens.
func (p PairTemplate) Encode(a, b []int64) (ids, types []int64) {
	n := p.Specials() + len(a) + len(b)
	ids, types = make([]int64, n), make([]int64, n)
	p.Fill(ids, types, a, b)
	return ids, types
}

// templateItem is one item of a TemplateProcessing "single" or "pair" list.
type templateItem struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int64  `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int64  `json:"type_id"`
	} `json:"Sequence"`
}

// parsePairTemplate turns a post_processor into the template around a pair.
// Without a post-processor a pair is A then B, typed 0 and 1, as the Rust
// tokenizers library encodes it.
func parsePairTemplate(raw json.RawMessage) (PairTemplate, error) {
	plain := PairTemplate{parts: []pairPart{{seq: 'A'}, {seq: 'B', typ: 1}}}
	if isNull(raw) {
		return plain, nil
	}
	var c struct {
		templateConfig
		Pair []templateItem `json:"pair"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return plain, fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "TemplateProcessing":
		var p PairTemplate
		seen := map[byte]bool{}
		for _, it := range c.Pair {
			switch {
			case it.Sequence != nil:
				id := it.Sequence.ID
				if id != "A" && id != "B" {
					return plain, fmt.Errorf("post_processor: pair sequence %q (want A or B)", id)
				}
				seen[id[0]] = true
				p.parts = append(p.parts, pairPart{seq: id[0], typ: it.Sequence.TypeID})
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return plain, fmt.Errorf("post_processor: special token %q not defined", it.SpecialToken.ID)
				}
				p.parts = append(p.parts, pairPart{ids: st.IDs, typ: it.SpecialToken.TypeID})
			}
		}
		if !seen['A'] || !seen['B'] {
			return plain, fmt.Errorf("post_processor: the pair template must name sequences A and B")
		}
		return p, nil
	case "BertProcessing":
		cls, sep, err := clsSep(c.templateConfig)
		if err != nil {
			return plain, err
		}
		return PairTemplate{parts: []pairPart{{ids: []int64{cls}}, {seq: 'A'}, {ids: []int64{sep}},
			{seq: 'B', typ: 1}, {ids: []int64{sep}, typ: 1}}}, nil
	case "RobertaProcessing":
		// As the reference types them: 1 from the second </s> on. (RoBERTa
		// exports have no token_type_ids input, so the ids go unused there.)
		cls, sep, err := clsSep(c.templateConfig)
		if err != nil {
			return plain, err
		}
		return PairTemplate{parts: []pairPart{{ids: []int64{cls}}, {seq: 'A'}, {ids: []int64{sep}},
			{ids: []int64{sep}, typ: 1}, {seq: 'B', typ: 1}, {ids: []int64{sep}, typ: 1}}}, nil
	case "ByteLevel":
		return plain, nil
	case "Sequence":
		// The template-making processor of the sequence decides (ByteLevel
		// only fixes offsets).
		out := plain
		for _, sub := range c.Processors {
			p, err := parsePairTemplate(sub)
			if err != nil {
				return plain, err
			}
			if p.Specials() > 0 {
				out = p
			}
		}
		return out, nil
	}
	return plain, &UnsupportedError{Component: "post_processor", Type: c.Type}
}

func clsSep(c templateConfig) (cls, sep int64, err error) {
	if cls, err = pairID(c.CLS); err != nil {
		return 0, 0, fmt.Errorf("post_processor %s cls: %w", c.Type, err)
	}
	if sep, err = pairID(c.SEP); err != nil {
		return 0, 0, fmt.Errorf("post_processor %s sep: %w", c.Type, err)
	}
	return cls, sep, nil
}
