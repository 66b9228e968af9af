package tokenize

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// variantPostProcessor writes a copy of the tokenizer.json at path with
// another post_processor.
func variantPostProcessor(t *testing.T, path, pp string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["post_processor"] = json.RawMessage(pp)
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, mustJSON(t, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPairParityWithReference requires the ids and token type ids of text
// pairs (query and passage, premise and hypothesis) to equal what
// @huggingface/tokenizers makes of them with its pair template
// (reference/tokenize.mjs), for TemplateProcessing (the MiniLM and BERT
// tokenizers) and the BertProcessing and RobertaProcessing forms.
func TestPairParityWithReference(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	minilm := tokenizerFile(t, "all-MiniLM-L6-v2")
	cases := []struct{ name, path string }{
		{"all-MiniLM-L6-v2", minilm},
		{"bert-base-cased", casedFile(t)},
		{"bert-processing", variantPostProcessor(t, minilm, `{"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]}`)},
		{"roberta-processing", variantPostProcessor(t, minilm, `{"type":"RobertaProcessing","sep":["[SEP]",102],"cls":["[CLS]",101],"trim_offsets":true,"add_prefix_space":false}`)},
	}
	lines := newsLines(t)
	var pairs [][2]string
	for i := 0; i+1 < len(lines) && len(pairs) < 60; i += 2 {
		pairs = append(pairs, [2]string{lines[i], lines[i+1]})
	}
	pairs = append(pairs,
		[2]string{"Who won the election?", "This example is politics."},
		[2]string{"Ölpreis fällt", "[SEP] inside the second text"},
		[2]string{"a", "b"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := load(t, tc.path)
			want := runPairReference(t, node, tc.path, pairs)
			tpl := tk.PairTemplate()
			for i, p := range pairs {
				ids, types := tpl.Encode(tk.Encode(p[0]).IDs, tk.Encode(p[1]).IDs)
				w := want[i]
				if !slices.Equal(ids, w.IDs) {
					t.Fatalf("pair %d %q: ids\n got %v\nwant %v", i, p, ids, w.IDs)
				}
				if w.Types != nil && !slices.Equal(types, w.Types) {
					t.Fatalf("pair %d %q: token_type_ids\n got %v\nwant %v", i, p, types, w.Types)
				}
			}
		})
	}
}

type pairReference struct {
	IDs   []int64 `json:"ids"`
	Types []int64 `json:"token_type_ids"`
}

func runPairReference(t *testing.T, node, tokenizer string, pairs [][2]string) []pairReference {
	t.Helper()
	in, err := json.Marshal(map[string]any{"tokenizer": tokenizer, "texts": []string{}, "pairs": pairs})
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
		Pairs []pairReference `json:"pairs"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("reference output: %v", err)
	}
	if len(res.Pairs) != len(pairs) {
		t.Fatalf("reference returned %d pairs for %d", len(res.Pairs), len(pairs))
	}
	return res.Pairs
}

// TestPairTemplateFill checks the BERT template's layout and that Fill
// writes exactly Specials()+len(a)+len(b) positions, leaving the rest alone.
func TestPairTemplateFill(t *testing.T) {
	tk := load(t, tokenizerFile(t, "all-MiniLM-L6-v2"))
	tpl := tk.PairTemplate()
	if tpl.Specials() != 3 {
		t.Fatalf("Specials = %d, want 3", tpl.Specials())
	}
	ids := []int64{-1, -1, -1, -1, -1, -1, -1, -1}
	types := []int64{-1, -1, -1, -1, -1, -1, -1, -1}
	n := tpl.Fill(ids, types, []int64{7, 8}, []int64{9})
	if n != 6 {
		t.Fatalf("Fill wrote %d, want 6", n)
	}
	if want := []int64{101, 7, 8, 102, 9, 102, -1, -1}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if want := []int64{0, 0, 0, 0, 1, 1, -1, -1}; !slices.Equal(types, want) {
		t.Errorf("types %v, want %v", types, want)
	}
}
