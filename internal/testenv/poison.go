package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// PoisonWord is a word the poison model's tokenizer maps to an id past the
// end of the model's embedding table.
const PoisonWord = "nightshade"

// PoisonModel makes a copy of the sentiment model, task "poison", whose
// tokenizer maps PoisonWord to an id the graph's embedding table does not
// have: ONNX Runtime then fails every call that holds a document with the
// word, as a poison document does, while the rest of the model works.
func PoisonModel(t testing.TB) string {
	t.Helper()
	src := ModelDir(t, "sentiment")
	dst := filepath.Join(t.TempDir(), "poison")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.onnx", "config.json", "tokenizer_config.json", "special_tokens_map.json"} {
		if err := os.Symlink(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
	rewrite := func(name string, edit func(m map[string]any)) {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		data, _ = json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rewrite("tokenizer.json", func(m map[string]any) {
		vocab := m["model"].(map[string]any)["vocab"].(map[string]any)
		vocab[PoisonWord] = 1_000_000
	})
	rewrite("jetinfer.json", func(m map[string]any) {
		m["task"] = "poison"
		m["description"] = "test model: the sentiment model, failing on documents with the word " + PoisonWord
		// Too long is the other kind of poison here: refused, not windowed.
		m["long_input"] = "error"
	})
	return dst
}
