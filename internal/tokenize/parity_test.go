package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

type referenceResult struct {
	IDs     []int64  `json:"ids"`
	Tokens  []string `json:"tokens"`
	Offsets [][2]int `json:"offsets"`
	Decoded string   `json:"decoded"`
	Error   string   `json:"error"`
}

// runReference encodes texts with reference/tokenize.mjs
// (@huggingface/tokenizers).
func runReference(t *testing.T, node, tokenizer string, texts []string) []referenceResult {
	t.Helper()
	in, err := json.Marshal(map[string]any{"tokenizer": tokenizer, "texts": texts})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "tokenize.mjs")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node reference/tokenize.mjs: %v\n%s", err, stderr.String())
	}
	var res struct {
		Results []referenceResult `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("reference output: %v", err)
	}
	if len(res.Results) != len(texts) {
		t.Fatalf("reference returned %d results for %d texts", len(res.Results), len(texts))
	}
	return res.Results
}

// TestParityWithReference requires identical ids, byte offsets and decoded
// text to Hugging Face's JavaScript tokenizer (reference/tokenize.mjs), on
// testdata/news.txt, ~512-token articles and reproducible random strings of
// tricky characters, for the uncased MiniLM, bert-base-uncased, the cased BERT
// vocabulary, the sentiment model when built, and variants exercising the
// generic normalizers (NFKD, StripAccents, Lowercase, Sequence with NFD) and
// BertNormalizer's other options.
func TestParityWithReference(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	mod := filepath.Join(testenv.RepoRoot(), "reference", "node_modules", "@huggingface", "tokenizers")
	if _, err := os.Stat(mod); err != nil {
		t.Fatalf("reference tokenizer: %v (run `make deps`)", err)
	}
	cases := []struct{ name, path string }{
		{"all-MiniLM-L6-v2", tokenizerFile(t, "all-MiniLM-L6-v2")},
		{"bert-base-uncased", tokenizerFile(t, "bert-base-uncased")},
		{"bert-base-cased", casedFile(t)},
	}
	// The shipped sentiment model's own vocabulary, once `make models` built it.
	if p := filepath.Join(testenv.DataDir(), "models", "sentiment", "tokenizer.json"); fileExists(p) {
		cases = append(cases, struct{ name, path string }{"sentiment", p})
	}
	// The generic normalizers in front of the same vocabulary.
	cases = append(cases, struct{ name, path string }{"sequence-nfkd-stripaccents-lowercase",
		variant(t, tokenizerFile(t, "all-MiniLM-L6-v2"), `{"type":"Sequence","normalizers":[{"type":"NFKD"},{"type":"StripAccents"},{"type":"Lowercase"}]}`)})
	cases = append(cases, struct{ name, path string }{"sequence-nfd-bertnormalizer",
		variant(t, tokenizerFile(t, "bert-base-uncased"), `{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}]}`)})
	cases = append(cases, struct{ name, path string }{"cased-strip-accents",
		variant(t, casedFile(t), `{"type":"BertNormalizer","clean_text":false,"handle_chinese_chars":false,"strip_accents":true,"lowercase":false}`)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := load(t, tc.path)
			texts := append(newsLines(t), articles(t, tk, 512)[:5]...)
			texts = append(texts, "", " ", "[CLS]", "\x00", "ΑΣ", "a\u0301")
			texts = append(texts, randomTexts(300)...)
			want := runReference(t, node, tc.path, texts)
			mismatches, tokens := 0, 0
			for i, text := range texts {
				w := want[i]
				if w.Error != "" {
					t.Errorf("reference cannot align %q: %s", text, w.Error)
					continue
				}
				got := tk.Encode(text)
				tokens += len(got.IDs)
				gotOffsets := make([][2]int, len(got.Offsets))
				for k, o := range got.Offsets {
					gotOffsets[k] = [2]int{o.Start, o.End}
				}
				if !slices.Equal(got.IDs, w.IDs) || !slices.Equal(gotOffsets, w.Offsets) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("text %d %q:\n%s", i, text, diffTokens(tk, text, got, w))
					}
					continue
				}
				checkInvariants(t, tk, text, got)
				if d := tk.Decode(got.IDs); d != w.Decoded {
					t.Errorf("text %d: Decode = %q, reference %q", i, d, w.Decoded)
				}
			}
			if mismatches > 0 {
				t.Errorf("%d of %d texts differ from the reference", mismatches, len(texts))
			}
			t.Logf("%d texts, %d tokens identical to the reference", len(texts), tokens)
		})
	}
}

// diffTokens shows both tokenizations side by side from the first difference.
func diffTokens(tk *Tokenizer, text string, got *Encoding, want referenceResult) string {
	var b strings.Builder
	first := 0
	for first < len(got.IDs) && first < len(want.IDs) && got.IDs[first] == want.IDs[first] &&
		got.Offsets[first].Start == want.Offsets[first][0] && got.Offsets[first].End == want.Offsets[first][1] {
		first++
	}
	for k := max(0, first-2); k < first+6; k++ {
		g, w := "-", "-"
		if k < len(got.IDs) {
			o := got.Offsets[k]
			g = fmt.Sprintf("%d %q %v %q", got.IDs[k], tk.Token(got.IDs[k]), o, text[o.Start:o.End])
		}
		if k < len(want.IDs) {
			o := want.Offsets[k]
			w = fmt.Sprintf("%d %q %v", want.IDs[k], want.Tokens[k], o)
		}
		fmt.Fprintf(&b, "  %3d got %-50s want %s\n", k, g, w)
	}
	return b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// randomPool is what randomTexts draws from: words and characters where
// normalization, case mapping and character classes are easy to get wrong.
var randomPool = []string{
	"the", "Stock", "MARKET", "said", " ", " ", " ", "  ", "\t", "\n", "\r\n", ",", ".", "'", "\"", "-", "—", "–", "(", ")",
	"$", "€", "£", "¥", "%", "+", "=", "<", ">", "^", "`", "|", "~", "#", "@", "&", "*", "/", "\\", "_",
	"0", "1", "42", "3.14", "1,000", "½", "²", "①", "٣", "१",
	"é", "É", "ñ", "Ñ", "ü", "Ü", "ø", "Ø", "å", "Å", "æ", "ß", "ẞ", "İ", "ı", "ǅ", "ǆ", "Ǆ", "ﬁ", "ﬀ",
	"Σ", "σ", "ς", "ΟΔΟΣ", "Ά", "ΐ", "Ω", "Ж", "ж", "Ё", "Ա", "ա", "Ⴀ", "Ꭰ", "ꭰ", "𐐀", "𐐨",
	"e\u0301", "\u0301", "\u0308", "a\u0323\u0302", "\u0903", "\u20dd", "ि",
	"中", "國", "日本", "ア", "ｱ", "ｶﾞ", "한", "국", "\u1100\u1161", "\uf900", "\U00020000", "\u3007",
	"😀", "👍🏽", "👨\u200d👩", "🇺🇸", "❤️", "\u2603",
	"\u00a0", "\u2009", "\u3000", "\u2028", "\u0085", "\u180e", "\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad",
	"\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1f", "\x7f", "\u009f", "\ue000", "\ufffd", "\U000e0001",
	"[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]", "[cls]", "[", "]",
	"Ｆｕｌｌ", "，", "。", "「", "」", "、", "¿", "¡", "«", "»", "‘", "’", "“", "”", "„", "…", "•", "·", "†", "§", "¶", "©", "®", "™", "°",
	"Ⅻ", "ⅻ", "Ⓐ", "ⓐ", "ſ", "K", "Å", "ŉ", "ǰ", "ΐ", "ᾈ", "ᾀ", "ﬃ",
}

// randomTexts returns n reproducible random texts from randomPool.
func randomTexts(n int) []string {
	rng := rand.New(rand.NewPCG(1987, 10))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range 1 + rng.IntN(25) {
			b.WriteString(randomPool[rng.IntN(len(randomPool))])
		}
		out[i] = b.String()
	}
	return out
}

// variant writes a copy of the tokenizer.json at path with another normalizer.
func variant(t *testing.T, path, normalizer string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["normalizer"] = json.RawMessage(normalizer)
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, mustJSON(t, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
