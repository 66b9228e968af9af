package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// fallback runs models this package does not implement (BPE, Unigram, and
// pipelines with components it lacks) through github.com/sugarme/tokenizer.
// It is much slower than the native path and serialises calls.
type fallback struct {
	mu       sync.Mutex
	tk       *sugarme.Tokenizer
	tokens   []string
	unkToken string
}

func newFallback(data []byte) (*fallback, error) {
	data, err := withNFDFix(data)
	if err != nil {
		return nil, err
	}
	var (
		tk    *sugarme.Tokenizer
		perr  error
		panik any
	)
	func() {
		defer func() { panik = recover() }()
		tk, perr = pretrained.FromReader(bytes.NewReader(data))
	}()
	if panik != nil {
		return nil, fmt.Errorf("sugarme: %v", panik)
	}
	if perr != nil {
		return nil, fmt.Errorf("sugarme: %w", perr)
	}
	vocab := tk.GetVocab(true)
	maxID := -1
	for _, id := range vocab {
		maxID = max(maxID, id)
	}
	f := &fallback{tk: tk, tokens: make([]string, maxID+1)}
	for tok, id := range vocab {
		if id >= 0 {
			f.tokens[id] = tok
		}
	}
	var m struct {
		Model struct {
			UnkToken *string `json:"unk_token"`
		} `json:"model"`
	}
	if json.Unmarshal(data, &m) == nil && m.Model.UnkToken != nil {
		f.unkToken = *m.Model.UnkToken
	}
	return f, nil
}

// withNFDFix puts an NFD normalizer before a lowercasing, accent-stripping
// BertNormalizer: sugarme's strips accents only from decomposed text, so
// without it accented words become [UNK] on uncased vocabularies.
func withNFDFix(data []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var n struct {
		Type         string `json:"type"`
		Lowercase    *bool  `json:"lowercase"`
		StripAccents *bool  `json:"strip_accents"`
	}
	if isNull(doc["normalizer"]) || json.Unmarshal(doc["normalizer"], &n) != nil || n.Type != "BertNormalizer" {
		return data, nil
	}
	lower := n.Lowercase == nil || *n.Lowercase
	strip := lower
	if n.StripAccents != nil {
		strip = *n.StripAccents
	}
	if !strip {
		return data, nil
	}
	seq, err := json.Marshal(map[string]any{
		"type":        "Sequence",
		"normalizers": []json.RawMessage{json.RawMessage(`{"type":"NFD"}`), doc["normalizer"]},
	})
	if err != nil {
		return nil, err
	}
	doc["normalizer"] = seq
	return json.Marshal(doc)
}

func (f *fallback) encode(dst *Encoding, text string) {
	f.mu.Lock()
	var (
		enc   *sugarme.Encoding
		err   error
		panik any
	)
	func() {
		defer func() { panik = recover() }()
		enc, err = f.tk.EncodeSingle(text, false)
	}()
	f.mu.Unlock()
	if panik != nil || err != nil || enc == nil {
		return
	}
	for i, id := range enc.Ids {
		o := Offset{}
		if i < len(enc.Offsets) && len(enc.Offsets[i]) == 2 {
			o = Offset{Start: enc.Offsets[i][0], End: enc.Offsets[i][1]}
		}
		o.Start = min(max(o.Start, 0), len(text))
		o.End = min(max(o.End, o.Start), len(text))
		w := i
		if i < len(enc.Words) && enc.Words[i] >= 0 {
			w = enc.Words[i]
		}
		dst.IDs = append(dst.IDs, int64(id))
		dst.Offsets = append(dst.Offsets, o)
		dst.WordIDs = append(dst.WordIDs, w)
	}
}

func (f *fallback) decode(ids []int64) string {
	in := make([]int, len(ids))
	for i, id := range ids {
		in[i] = int(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tk.Decode(in, false)
}
