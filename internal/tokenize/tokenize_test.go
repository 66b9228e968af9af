package tokenize

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// pieces returns the token strings of e and the original text they cover.
func pieces(tk *Tokenizer, text string, e *Encoding) (tokens, spans []string) {
	for i, id := range e.IDs {
		tokens = append(tokens, tk.Token(id))
		spans = append(spans, text[e.Offsets[i].Start:e.Offsets[i].End])
	}
	return tokens, spans
}

func TestEncodeEdgeCases(t *testing.T) {
	uncased := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	cased := load(t, casedFile(t))
	long := strings.Repeat("x", 101)
	for _, tc := range []struct {
		name        string
		tk          *Tokenizer
		text        string
		tokens      []string
		spans       []string // original text of each token
		wordIDs     []int    // checked when set
		wantNoToken bool
	}{
		{name: "empty", tk: uncased, text: "", wantNoToken: true},
		{name: "only spaces and controls", tk: uncased, text: " \t\x00\x01\u200b\ufeff\u3000 ", wantNoToken: true},
		{name: "lowercase and punctuation", tk: uncased, text: "Hello, World!",
			tokens: []string{"hello", ",", "world", "!"}, spans: []string{"Hello", ",", "World", "!"}, wordIDs: []int{0, 1, 2, 3}},
		{name: "accents stripped, offsets cover the accented letters", tk: uncased, text: "Société Générale",
			tokens: []string{"societe", "general", "##e"}, spans: []string{"Société", "Général", "e"}, wordIDs: []int{0, 1, 1}},
		{name: "accents kept when cased", tk: cased, text: "Zürich Ålesund",
			tokens: []string{"Zürich", "Å", "##les", "##und"}, spans: []string{"Zürich", "Å", "les", "und"}},
		{name: "decomposed accents", tk: uncased, text: "e\u0301cole",
			tokens: []string{"ecole"}, spans: []string{"e\u0301cole"}},
		{name: "chinese characters are words", tk: uncased, text: "在北京",
			tokens: []string{"[UNK]", "北", "京"}, spans: []string{"在", "北", "京"}, wordIDs: []int{0, 1, 2}},
		{name: "control characters inside a word are dropped", tk: uncased, text: "ab\x07cd",
			tokens: []string{"abc", "##d"}, spans: []string{"ab\x07c", "d"}},
		{name: "soft hyphen is dropped", tk: uncased, text: "co\u00adop",
			tokens: []string{"coop"}, spans: []string{"co\u00adop"}},
		{name: "tab and no-break space split words", tk: uncased, text: "a\tb\u00a0c",
			tokens: []string{"a", "b", "c"}, spans: []string{"a", "b", "c"}},
		{name: "word over 100 characters is one unknown token", tk: uncased, text: long + " ok",
			tokens: []string{"[UNK]", "ok"}, spans: []string{long, "ok"}},
		{name: "emoji is unknown", tk: uncased, text: "up 😀",
			tokens: []string{"up", "[UNK]"}, spans: []string{"up", "😀"}},
		{name: "special tokens in the text are kept whole", tk: uncased, text: "a[SEP]b [MASK]",
			tokens: []string{"a", "[SEP]", "b", "[MASK]"}, spans: []string{"a", "[SEP]", "b", "[MASK]"}, wordIDs: []int{0, 1, 2, 3}},
		{name: "final sigma", tk: uncased, text: "ΟΔΟΣ",
			tokens: []string{"ο", "##δ", "##ος"}, spans: []string{"Ο", "Δ", "ΟΣ"}},
		{name: "dotted capital I", tk: uncased, text: "İzmir",
			tokens: []string{"i", "##z", "##mir"}, spans: []string{"İ", "z", "mir"}},
		{name: "invalid UTF-8 is dropped", tk: uncased, text: "a\xffb \xc3",
			tokens: []string{"ab"}, spans: []string{"a\xffb"}},
		{name: "currency and percent", tk: uncased, text: "€4.2bn (+3%)",
			tokens: []string{"€", "##4", ".", "2", "##bn", "(", "+", "3", "%", ")"},
			spans:  []string{"€", "4", ".", "2", "bn", "(", "+", "3", "%", ")"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.tk.Encode(tc.text)
			checkInvariants(t, tc.tk, tc.text, e)
			if tc.wantNoToken {
				if len(e.IDs) != 0 {
					t.Fatalf("Encode(%q) = %v, want no tokens", tc.text, e.IDs)
				}
				return
			}
			tokens, spans := pieces(tc.tk, tc.text, e)
			if !slices.Equal(tokens, tc.tokens) {
				t.Errorf("tokens = %q, want %q", tokens, tc.tokens)
			}
			if !slices.Equal(spans, tc.spans) {
				t.Errorf("spans = %q, want %q", spans, tc.spans)
			}
			if tc.wordIDs != nil && !slices.Equal(e.WordIDs, tc.wordIDs) {
				t.Errorf("word ids = %v, want %v", e.WordIDs, tc.wordIDs)
			}
		})
	}
}

func TestTokenizerMetadata(t *testing.T) {
	tk := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	if got := tk.Template(); !slices.Equal(got.Prefix, []int64{101}) || !slices.Equal(got.Suffix, []int64{102}) {
		t.Errorf("Template = %+v, want [CLS]=101 before and [SEP]=102 after", got)
	}
	if got := tk.PadID(); got != 0 {
		t.Errorf("PadID = %d, want 0", got)
	}
	if got := tk.VocabSize(); got != 30522 {
		t.Errorf("VocabSize = %d, want 30522", got)
	}
	for id, want := range map[int64]string{0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 7592: "hello", -1: "", 30522: ""} {
		if got := tk.Token(id); got != want {
			t.Errorf("Token(%d) = %q, want %q", id, got, want)
		}
	}
	if !tk.ContinuesSubwords() {
		t.Error("a WordPiece model marks word pieces with ##: ContinuesSubwords must be true")
	}
	// Template is a copy: changing it does not change the tokenizer.
	tpl := tk.Template()
	tpl.Prefix[0] = 7
	if tk.Template().Prefix[0] != 101 {
		t.Error("Template returned the tokenizer's own slice")
	}
}

func TestDecode(t *testing.T) {
	tk := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	for _, tc := range []struct{ text, want string }{
		{"Diamond Shamrock Corp", "diamond shamrock corp"},
		{"unaffable", "unaffable"},
		{"It's 3.5%, isn't it?", "it ' s 3. 5 %, isn ' t it?"},
		{"Société Générale", "societe generale"},
	} {
		if got := tk.Decode(tk.Encode(tc.text).IDs); got != tc.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", tc.text, got, tc.want)
		}
	}
	if got := tk.Decode([]int64{101, 7592, 102}); got != "[CLS] hello [SEP]" {
		t.Errorf("Decode with special tokens = %q", got)
	}
	if got := tk.Decode(nil); got != "" {
		t.Errorf("Decode(nil) = %q", got)
	}
	if got := tk.Decode([]int64{7592, 1 << 40}); got != "hello [UNK]" {
		t.Errorf("Decode with an unknown id = %q", got)
	}
}

// TestEncodeToDoesNotAllocate proves the hot path reuses the caller's
// slices and the pooled buffers.
func TestEncodeToDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	tk := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	text := strings.Join(newsLines(t)[:40], " ")
	var e Encoding
	tk.EncodeTo(&e, text)
	allocs := testing.AllocsPerRun(50, func() { tk.EncodeTo(&e, text) })
	if allocs > 0 {
		t.Errorf("EncodeTo allocates %.1f times per call, want 0", allocs)
	}
}

func TestEncodeToReusesAndResets(t *testing.T) {
	tk := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	var e Encoding
	tk.EncodeTo(&e, "a long first text with many words in it")
	tk.EncodeTo(&e, "short")
	want := tk.Encode("short")
	if !slices.Equal(e.IDs, want.IDs) || !slices.Equal(e.Offsets, want.Offsets) || !slices.Equal(e.WordIDs, want.WordIDs) {
		t.Errorf("EncodeTo after a longer text = %+v, want %+v", e, *want)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := load(t, tokenizerFile(t, "bert-base-uncased"))
	lines := newsLines(t)
	want := make([]*Encoding, len(lines))
	for i, l := range lines {
		want[i] = tk.Encode(l)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			var e Encoding
			for k := range lines {
				i := (k + g*31) % len(lines)
				tk.EncodeTo(&e, lines[i])
				if !slices.Equal(e.IDs, want[i].IDs) || !slices.Equal(e.Offsets, want[i].Offsets) {
					errs <- lines[i]
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for l := range errs {
		t.Errorf("concurrent Encode(%q) differs from sequential", l)
	}
}

// writeTokenizer writes a tokenizer.json built from doc into a temp dir.
func writeTokenizer(t testing.TB, doc map[string]any) string {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// genericDoc is a tokenizer.json exercising the generic normalizers and
// pre-tokenizers with a small WordPiece vocabulary.
func genericDoc() map[string]any {
	vocab := map[string]int{"[UNK]": 0, "[PAD]": 1, "cafe": 2, "fi": 3, "##nance": 4, "2024": 5, "2": 6, "##0": 7,
		"!": 8, ".": 9, "hello": 10, "1": 11, "0": 12, "##2": 13, "##4": 14, "4": 15, "a": 16, "##b": 17}
	return map[string]any{
		"added_tokens": []any{},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKD"},
			map[string]any{"type": "StripAccents"},
			map[string]any{"type": "Lowercase"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "``"}, "content": "\""},
			map[string]any{"type": "Strip", "strip_left": true, "strip_right": true},
		}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "WhitespaceSplit"},
			map[string]any{"type": "Punctuation", "behavior": "Isolated"},
			map[string]any{"type": "Digits", "individual_digits": true},
		}},
		"post_processor": map[string]any{"type": "BertProcessing", "cls": []any{"[CLS]", 101}, "sep": []any{"[SEP]", 102}},
		"decoder":        map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model":          map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
	}
}

func TestGenericPipeline(t *testing.T) {
	tk, err := Load(writeTokenizer(t, genericDoc()))
	if err != nil {
		t.Fatal(err)
	}
	text := "  CAFÉ ﬁnance 2024! Hello.ab "
	e := tk.Encode(text)
	checkInvariants(t, tk, text, e)
	tokens, spans := pieces(tk, text, e)
	wantTokens := []string{"cafe", "fi", "##nance", "2", "0", "2", "4", "!", "hello", ".", "a", "##b"}
	wantSpans := []string{"CAFÉ", "ﬁ", "nance", "2", "0", "2", "4", "!", "Hello", ".", "a", "b"}
	if !slices.Equal(tokens, wantTokens) || !slices.Equal(spans, wantSpans) {
		t.Errorf("tokens %q spans %q, want %q %q", tokens, spans, wantTokens, wantSpans)
	}
	if got := tk.Template(); !slices.Equal(got.Prefix, []int64{101}) || !slices.Equal(got.Suffix, []int64{102}) {
		t.Errorf("BertProcessing Template = %+v", got)
	}
	if got := tk.PadID(); got != 1 {
		t.Errorf("PadID from [PAD] in the vocabulary = %d, want 1", got)
	}
}

func TestWordLevelAndWhitespace(t *testing.T) {
	doc := map[string]any{
		"added_tokens":   []any{map[string]any{"id": 3, "content": "<pad>", "special": true, "normalized": false}},
		"normalizer":     map[string]any{"type": "Lowercase"},
		"pre_tokenizer":  map[string]any{"type": "Whitespace"},
		"post_processor": nil,
		"decoder":        nil,
		"model":          map[string]any{"type": "WordLevel", "unk_token": "<unk>", "vocab": map[string]int{"<unk>": 0, "stocks": 1, "rally": 2, "<pad>": 3, "café": 4, "!!": 5}},
	}
	tk, err := Load(writeTokenizer(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	if tk.ContinuesSubwords() {
		t.Error("a WordLevel model has no word pieces: ContinuesSubwords must be false")
	}
	text := "Stocks RALLY!! Café crash<pad>"
	e := tk.Encode(text)
	checkInvariants(t, tk, text, e)
	tokens, spans := pieces(tk, text, e)
	if want := []string{"stocks", "rally", "!!", "café", "<unk>", "<pad>"}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %q, want %q", tokens, want)
	}
	if want := []string{"Stocks", "RALLY", "!!", "Café", "crash", "<pad>"}; !slices.Equal(spans, want) {
		t.Errorf("spans = %q, want %q", spans, want)
	}
	if tk.PadID() != 3 || len(tk.Template().Prefix) != 0 {
		t.Errorf("PadID %d, Template %+v", tk.PadID(), tk.Template())
	}
	if got := tk.Decode(e.IDs); got != "stocks rally !! café <unk> <pad>" {
		t.Errorf("Decode without a decoder = %q", got)
	}
}

// TestAddedTokens covers added tokens matched after normalization and the
// whitespace that lstrip/rstrip remove around them.
func TestAddedTokens(t *testing.T) {
	doc := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 5, "content": "<Ticker>", "special": false, "normalized": true},
			map[string]any{"id": 6, "content": "<sep>", "special": true, "normalized": false, "lstrip": true, "rstrip": true},
		},
		// NFD makes the normalized text longer than the original, so
		// normalized and original offsets differ after "é".
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFD"}, map[string]any{"type": "Lowercase"}}},
		"pre_tokenizer":  map[string]any{"type": "WhitespaceSplit"},
		"post_processor": nil,
		"decoder":        nil,
		"model": map[string]any{"type": "WordLevel", "unk_token": "<unk>",
			"vocab": map[string]int{"<unk>": 0, "buy": 1, "now": 2, "<ticker>": 5, "<sep>": 6, "sell": 7, "éé": 8}},
	}
	tk, err := Load(writeTokenizer(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	text := "ÉÉ <TICKER>now  <sep>  SELL"
	e := tk.Encode(text)
	checkInvariants(t, tk, text, e)
	tokens, spans := pieces(tk, text, e)
	if want := []string{"<unk>", "<Ticker>", "now", "<sep>", "sell"}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %q, want %q", tokens, want)
	}
	if want := []string{"ÉÉ", "<TICKER>", "now", "<sep>", "SELL"}; !slices.Equal(spans, want) {
		t.Errorf("spans = %q, want %q", spans, want)
	}
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(e.WordIDs, want) {
		t.Errorf("word ids = %v, want %v", e.WordIDs, want)
	}
}

func TestParseErrors(t *testing.T) {
	doc := genericDoc()
	doc["model"] = map[string]any{"type": "Mystery", "vocab": map[string]int{"a": 0}}
	_, err := Parse(mustJSON(t, doc))
	var unsupported *UnsupportedError
	if !errors.As(err, &unsupported) || unsupported.Component != "model" || unsupported.Type != "Mystery" {
		t.Errorf("Parse with an unknown model: %v, want an UnsupportedError naming model \"Mystery\"", err)
	}
	if _, err := Parse([]byte("{")); err == nil {
		t.Error("Parse accepted truncated JSON")
	}
	if _, err := Parse([]byte(`{"model":null}`)); err == nil {
		t.Error("Parse accepted a tokenizer.json without a model")
	}
	doc = genericDoc()
	doc["model"].(map[string]any)["unk_token"] = "<missing>"
	if _, err := Parse(mustJSON(t, doc)); err == nil || !strings.Contains(err.Error(), "<missing>") {
		t.Errorf("Parse with an unknown unk_token: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

// TestFallbackBPE runs a model the package does not implement through the
// fallback, behind the same API.
func TestFallbackBPE(t *testing.T) {
	doc := map[string]any{
		"added_tokens":   []any{},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "Whitespace"},
		"post_processor": nil,
		"decoder":        nil,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false,
			"vocab":  map[string]int{"<unk>": 0, "l": 1, "o": 2, "w": 3, "e": 4, "r": 5, "lo": 6, "low": 7, "er": 8},
			"merges": []string{"l o", "lo w", "e r"}},
	}
	tk, err := Load(writeTokenizer(t, doc))
	if err != nil {
		t.Fatalf("Load BPE through the fallback: %v", err)
	}
	if tk.ContinuesSubwords() {
		t.Error("a BPE without continuing_subword_prefix does not mark word pieces: ContinuesSubwords must be false")
	}
	text := "lower low"
	e := tk.Encode(text)
	checkInvariants(t, tk, text, e)
	tokens, spans := pieces(tk, text, e)
	if want := []string{"low", "er", "low"}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %q, want %q", tokens, want)
	}
	if want := []string{"low", "er", "low"}; !slices.Equal(spans, want) {
		t.Errorf("spans = %q, want %q", spans, want)
	}
	if tk.VocabSize() != 9 {
		t.Errorf("VocabSize = %d, want 9", tk.VocabSize())
	}
}

func TestNFDFixForFallback(t *testing.T) {
	in := []byte(`{"normalizer":{"type":"BertNormalizer","lowercase":true,"strip_accents":null},"model":{}}`)
	out, err := withNFDFix(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Normalizer struct {
			Type        string `json:"type"`
			Normalizers []struct {
				Type string `json:"type"`
			} `json:"normalizers"`
		} `json:"normalizer"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Normalizer
	if n.Type != "Sequence" || len(n.Normalizers) != 2 || n.Normalizers[0].Type != "NFD" || n.Normalizers[1].Type != "BertNormalizer" {
		t.Errorf("normalizer after the fix = %+v, want Sequence[NFD, BertNormalizer]", n)
	}
	cased := []byte(`{"normalizer":{"type":"BertNormalizer","lowercase":false,"strip_accents":null}}`)
	if out, _ := withNFDFix(cased); string(out) != string(cased) {
		t.Errorf("the fix changed a cased normalizer: %s", out)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzEncode checks that no input makes Encode panic or produce offsets
// outside the text, out of order, or off character boundaries, or ids outside
// the vocabulary, for the uncased, cased and generic pipelines.
func FuzzEncode(f *testing.F) {
	for _, l := range newsLines(f) {
		f.Add(l)
	}
	for _, s := range []string{"", "\xff\xfe", "ΑΣ\u0301Σ", "İ\u0307", "[CLS][SEP]", "a\u0000b", strings.Repeat("é", 120), "\uf900\U00020000", "``x``"} {
		f.Add(s)
	}
	tks := []*Tokenizer{
		load(f, tokenizerFile(f, "all-MiniLM-L6-v2")),
		load(f, casedFile(f)),
	}
	generic, err := Parse(mustJSON(f, genericDoc()))
	if err != nil {
		f.Fatal(err)
	}
	tks = append(tks, generic)
	f.Fuzz(func(t *testing.T, text string) {
		for _, tk := range tks {
			e := tk.Encode(text)
			checkInvariants(t, tk, text, e)
			for _, o := range e.Offsets {
				if utf8.ValidString(text) && (!utf8.RuneStart(text[o.Start]) || o.End < len(text) && !utf8.RuneStart(text[o.End])) {
					t.Fatalf("%q: offset %v splits a character", text, o)
				}
			}
		}
	})
}
