package infer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// brokenDir copies the sentiment model directory (model.onnx linked), then
// lets break change it.
func brokenDir(t *testing.T, break_ func(dir string)) string {
	t.Helper()
	src := testenv.ModelDir(t, sentimentModel)
	dir := t.TempDir()
	for _, f := range []string{"tokenizer.json", "config.json", "jetinfer.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(src, "model.onnx"), filepath.Join(dir, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	break_(dir)
	return dir
}

func write(t *testing.T, path, content string) {
	t.Helper()
	os.Remove(path)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editJSON rewrites the JSON object in path with edit.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if b, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	write(t, path, string(b))
}

func TestLoadModelBrokenDirs(t *testing.T) {
	initORT(t)
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string // in the error
	}{
		{"missing model.onnx", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "model.onnx")) },
			[]string{"model.onnx", "no such file"}},
		{"model.onnx is not ONNX", func(t *testing.T, d string) { write(t, filepath.Join(d, "model.onnx"), "<html>") },
			[]string{"model.onnx", "not a loadable ONNX model"}},
		{"missing config.json", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "config.json")) },
			[]string{"config.json", "missing"}},
		{"bad JSON in config.json", func(t *testing.T, d string) { write(t, filepath.Join(d, "config.json"), `{"id2label": {"0": "neg",}`) },
			[]string{"config.json", "bad JSON"}},
		{"id2label missing", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(v map[string]any) { delete(v, "id2label") })
		}, []string{"config.json", "id2label is missing"}},
		{"id2label key not an index", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(v map[string]any) { v["id2label"] = map[string]any{"a": "x", "1": "y", "2": "z"} })
		}, []string{"config.json", `"a"`}},
		{"id2label disagrees with the logits", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "config.json"), func(v map[string]any) { v["id2label"] = map[string]any{"0": "neg", "1": "pos"} })
		}, []string{"model.onnx", "id2label names 2"}},
		{"missing jetinfer.json", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "jetinfer.json")) },
			[]string{"jetinfer.json", "missing"}},
		{"bad JSON in jetinfer.json", func(t *testing.T, d string) { write(t, filepath.Join(d, "jetinfer.json"), `{"kind":`) },
			[]string{"jetinfer.json", "bad JSON"}},
		{"unknown kind", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { v["kind"] = "summarization" })
		}, []string{"jetinfer.json", `unknown kind "summarization"`}},
		{"no kind", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { delete(v, "kind") })
		}, []string{"jetinfer.json", "kind is missing"}},
		{"unknown function_to_apply", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { v["function_to_apply"] = "relu" })
		}, []string{"jetinfer.json", "relu"}},
		{"max_length leaves no room", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { v["max_length"] = 1; v["kind"] = "token-classification" })
		}, []string{"jetinfer.json", "max_length 1"}},
		{"missing tokenizer.json", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "tokenizer.json")) },
			[]string{"tokenizer.json", "no such file"}},
		{"tokenizer.json is not a tokenizer", func(t *testing.T, d string) { write(t, filepath.Join(d, "tokenizer.json"), `{"model": 42}`) },
			[]string{"tokenizer.json"}},
		{"a classifier declared feature-extraction", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { v["kind"] = "feature-extraction" })
		}, []string{"model.onnx", "rank 3"}},
		{"a classifier declared token-classification", func(t *testing.T, d string) {
			editJSON(t, filepath.Join(d, "jetinfer.json"), func(v map[string]any) { v["kind"] = "token-classification" })
		}, []string{"model.onnx", "rank 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := brokenDir(t, func(d string) { tt.break_(t, d) })
			m, err := LoadModel(dir, SessionOptions{IntraOpThreads: 1})
			if err == nil {
				m.Close()
				t.Fatal("LoadModel succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory's file", err)
			}
		})
	}

	// The unbroken copy loads: the cases above fail for their own reason.
	m, err := LoadModel(brokenDir(t, func(string) {}), SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatalf("the unbroken copy: %v", err)
	}
	m.Close()
}

func TestLoadModelOnMissingCUDA(t *testing.T) {
	initORT(t)
	_, err := LoadModel(testenv.ModelDir(t, sentimentModel), SessionOptions{Device: "cuda:0"})
	if err == nil {
		t.Skip("this ONNX Runtime library has CUDA")
	}
	for _, w := range []string{"model.onnx", "cuda:0", "cannot use CUDA"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if _, err := LoadModel(testenv.ModelDir(t, sentimentModel), SessionOptions{Device: "tpu"}); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("device tpu: %v", err)
	}
}
