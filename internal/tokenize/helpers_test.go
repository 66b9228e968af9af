package tokenize

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// tokenizerFile returns the tokenizer.json that `make deps` copied for name
// (all-MiniLM-L6-v2, bert-base-uncased), failing with a hint when missing.
func tokenizerFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(testenv.DataDir(), "tokenizers", name, "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("tokenizer %s: %v (run `make deps`)", name, err)
	}
	return p
}

// casedFile returns a cased BERT tokenizer.json: the NER bench model's when
// `make models` has built it, otherwise one written from the cased BERT
// vocab.txt that `make deps` copied, the way Hugging Face converts
// bert-base-cased's vocabulary.
func casedFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(testenv.DataDir(), "models", "bert-base-cased-random-ner", "tokenizer.json")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	casedOnce.Do(func() { casedPath, casedErr = writeCasedTokenizer() })
	if casedErr != nil {
		t.Fatalf("cased BERT tokenizer: %v (run `make deps`)", casedErr)
	}
	return casedPath
}

var (
	casedOnce sync.Once
	casedPath string
	casedErr  error
)

func writeCasedTokenizer() (string, error) {
	vocabPath := filepath.Join(testenv.DataDir(), "tokenizers", "bert-base-cased", "vocab.txt")
	f, err := os.Open(vocabPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	vocab := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		tok := strings.TrimRight(sc.Text(), "\r")
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = len(vocab)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	var added []map[string]any
	for _, s := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} {
		added = append(added, map[string]any{
			"id": vocab[s], "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true,
		})
	}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer": map[string]any{
			"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
			"strip_accents": nil, "lowercase": false,
		},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{
			"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}},
			},
			"pair": []any{},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{vocab["[CLS]"]}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{vocab["[SEP]"]}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{
			"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": vocab,
		},
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "jetinfer-tokenize-cased-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "tokenizer.json")
	return p, os.WriteFile(p, data, 0o644)
}

var (
	loadMu sync.Mutex
	loaded = map[string]*Tokenizer{}
)

// load loads (once per test binary) the tokenizer at path.
func load(t testing.TB, path string) *Tokenizer {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if tk, ok := loaded[path]; ok {
		return tk
	}
	tk, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded[path] = tk
	return tk
}

// newsLines returns the non-empty lines of testdata/news.txt.
func newsLines(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "news.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// articles joins news lines into texts of about n tokens for tk.
func articles(t testing.TB, tk *Tokenizer, n int) []string {
	lines := newsLines(t)
	var out []string
	var cur []string
	count := 0
	for i := 0; len(out) < 40; i++ {
		l := lines[i%len(lines)]
		cur = append(cur, l)
		count += len(tk.Encode(l).IDs)
		if count >= n {
			out = append(out, strings.Join(cur, " "))
			cur, count = nil, 0
		}
	}
	return out
}

// checkInvariants fails when e is not a well-formed encoding of text.
func checkInvariants(t testing.TB, tk *Tokenizer, text string, e *Encoding) {
	t.Helper()
	if len(e.IDs) != len(e.Offsets) || len(e.IDs) != len(e.WordIDs) {
		t.Fatalf("%q: %d ids, %d offsets, %d word ids", text, len(e.IDs), len(e.Offsets), len(e.WordIDs))
	}
	prev := Offset{}
	prevWord := 0
	for i, id := range e.IDs {
		o := e.Offsets[i]
		if id < 0 || id >= int64(tk.VocabSize()) {
			t.Fatalf("%q: token %d: id %d outside vocabulary of %d", text, i, id, tk.VocabSize())
		}
		if o.Start < 0 || o.Start > o.End || o.End > len(text) {
			t.Fatalf("%q: token %d: offset %v outside [0, %d]", text, i, o, len(text))
		}
		if o.Start < prev.Start || o.End < prev.End {
			t.Fatalf("%q: token %d: offset %v before %v", text, i, o, prev)
		}
		if e.WordIDs[i] < prevWord || e.WordIDs[i] > prevWord+1 && i > 0 {
			t.Fatalf("%q: token %d: word id %d after %d", text, i, e.WordIDs[i], prevWord)
		}
		prev, prevWord = o, e.WordIDs[i]
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if casedPath != "" {
		os.RemoveAll(filepath.Dir(casedPath))
	}
	os.Exit(code)
}
