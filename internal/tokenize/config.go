package tokenize

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// fileConfig is the part of a tokenizer.json this package reads. Components
// are kept raw and decoded by type.
type fileConfig struct {
	AddedTokens   []addedTokenConfig `json:"added_tokens"`
	Normalizer    json.RawMessage    `json:"normalizer"`
	PreTokenizer  json.RawMessage    `json:"pre_tokenizer"`
	Model         json.RawMessage    `json:"model"`
	PostProcessor json.RawMessage    `json:"post_processor"`
	Decoder       json.RawMessage    `json:"decoder"`
	Padding       *struct {
		PadID    *int64 `json:"pad_id"`
		PadToken string `json:"pad_token"`
	} `json:"padding"`
}

type addedTokenConfig struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// isNull reports whether a raw component is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// UnsupportedError names a tokenizer.json component this package cannot run
// natively (and that the fallback could not run either).
type UnsupportedError struct {
	// Component is the kind of component: "normalizer", "pre_tokenizer",
	// "model", "post_processor" or "decoder".
	Component string
	// Type is the component's "type" in tokenizer.json.
	Type string
}

// Error says which component is unsupported.
func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported %s %q", e.Component, e.Type)
}

// modelConfig covers WordPiece, WordLevel and enough of the others to name them.
type modelConfig struct {
	Type                    string           `json:"type"`
	Vocab                   json.RawMessage  `json:"vocab"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	MaxInputCharsPerWord    *int             `json:"max_input_chars_per_word"`
	Merges                  *json.RawMessage `json:"merges"`
}

// continuesSubwords reports whether the model has a continuing-subword
// prefix: WordPiece's defaults to "##", a BPE's to none.
func (m *modelConfig) continuesSubwords() bool {
	if m.ContinuingSubwordPrefix != nil {
		return *m.ContinuingSubwordPrefix != ""
	}
	return m.modelType() == "WordPiece"
}

// modelType resolves a model's type, inferring it like the reference
// implementations do when the "type" tag is missing (older tokenizer.json
// files such as bert-base-uncased's).
func (m *modelConfig) modelType() string {
	if m.Type != "" {
		return m.Type
	}
	v := strings.TrimSpace(string(m.Vocab))
	switch {
	case strings.HasPrefix(v, "["):
		return "Unigram"
	case m.Merges != nil:
		return "BPE"
	case m.ContinuingSubwordPrefix != nil || m.MaxInputCharsPerWord != nil:
		return "WordPiece"
	default:
		return "WordLevel"
	}
}

// buildVocab decodes a {"token": id} vocabulary and merges the added tokens
// into it (added tokens win, as in the reference implementation).
func buildVocab(raw json.RawMessage, added []addedTokenConfig) (map[string]int32, []string, error) {
	var v map[string]int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, fmt.Errorf("model vocab: %w", err)
	}
	ids := make(map[string]int32, len(v)+len(added))
	maxID := int64(-1)
	put := func(tok string, id int64) error {
		if id < 0 || id > math.MaxInt32 {
			return fmt.Errorf("token %q: id %d out of range", tok, id)
		}
		ids[tok] = int32(id)
		maxID = max(maxID, id)
		return nil
	}
	for tok, id := range v {
		if err := put(tok, id); err != nil {
			return nil, nil, fmt.Errorf("model vocab: %w", err)
		}
	}
	for _, a := range added {
		if err := put(a.Content, a.ID); err != nil {
			return nil, nil, fmt.Errorf("added_tokens: %w", err)
		}
	}
	if maxID > 1<<24 {
		return nil, nil, fmt.Errorf("model vocab: id %d too large", maxID)
	}
	tokens := make([]string, maxID+1)
	// Deterministic id → token when two tokens share an id: the
	// lexicographically first vocab entry, then added tokens override.
	keys := make([]string, 0, len(v))
	for tok := range v {
		keys = append(keys, tok)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	for _, tok := range keys {
		tokens[v[tok]] = tok
	}
	for _, a := range added {
		tokens[a.ID] = a.Content
	}
	return ids, tokens, nil
}

// templateConfig covers the post-processors whose single-sequence template
// this package reports.
type templateConfig struct {
	Type   string `json:"type"`
	Single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int64 `json:"ids"`
	} `json:"special_tokens"`
	CLS        []json.RawMessage `json:"cls"`
	SEP        []json.RawMessage `json:"sep"`
	Processors []json.RawMessage `json:"processors"`
}

// parseTemplate turns a post_processor into the Template around a single
// sequence.
func parseTemplate(raw json.RawMessage) (Template, error) {
	var tpl Template
	if isNull(raw) {
		return tpl, nil
	}
	var c templateConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return tpl, fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "TemplateProcessing":
		seen := false
		for _, it := range c.Single {
			switch {
			case it.Sequence != nil:
				seen = true
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return tpl, fmt.Errorf("post_processor: special token %q not defined", it.SpecialToken.ID)
				}
				if seen {
					tpl.Suffix = append(tpl.Suffix, st.IDs...)
				} else {
					tpl.Prefix = append(tpl.Prefix, st.IDs...)
				}
			}
		}
	case "BertProcessing", "RobertaProcessing":
		cls, err := pairID(c.CLS)
		if err != nil {
			return tpl, fmt.Errorf("post_processor %s cls: %w", c.Type, err)
		}
		sep, err := pairID(c.SEP)
		if err != nil {
			return tpl, fmt.Errorf("post_processor %s sep: %w", c.Type, err)
		}
		tpl.Prefix, tpl.Suffix = []int64{cls}, []int64{sep}
	case "ByteLevel":
	case "Sequence":
		for _, p := range c.Processors {
			t, err := parseTemplate(p)
			if err != nil {
				return tpl, err
			}
			tpl.Prefix = append(tpl.Prefix, t.Prefix...)
			tpl.Suffix = append(t.Suffix, tpl.Suffix...)
		}
	default:
		return tpl, &UnsupportedError{Component: "post_processor", Type: c.Type}
	}
	return tpl, nil
}

// pairID reads the id of a ["[CLS]", 101] pair.
func pairID(p []json.RawMessage) (int64, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("want [token, id], got %d elements", len(p))
	}
	var id int64
	if err := json.Unmarshal(p[1], &id); err != nil {
		return 0, err
	}
	return id, nil
}
