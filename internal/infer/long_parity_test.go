package infer

// Parity of long inputs with the reference.
//
// TestWindowParityWithTransformersJS runs articles of one to many windows
// through jetinfer in one batch (their windows packed into one model call)
// and through reference/windows.mjs, which cuts the same windows from
// transformers.js's own tokenization, runs each through transformers.js's
// model alone and aggregates them as the package documents (token-weighted
// mean of per-window scores or of per-window mean-pooled states, then the
// max option and L2 normalisation). Scores and embedding components must
// agree within parityTol, and both must have used the same number of windows.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// overlapModel copies the model directory name (by symbolic links) into a
// temporary directory with jetinfer.json's stride removed, so that windows
// overlap by the default quarter, as a user's model without a stride would.
func overlapModel(t *testing.T, name string) string {
	t.Helper()
	src := testenv.ModelDir(t, name)
	dst := filepath.Join(t.TempDir(), name+"-overlap")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "jetinfer.json" {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	var mf map[string]any
	if err := readJSON(filepath.Join(src, "jetinfer.json"), &mf); err != nil {
		t.Fatal(err)
	}
	delete(mf, "stride")
	b, _ := json.Marshal(mf)
	if err := os.WriteFile(filepath.Join(dst, "jetinfer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func windowReference(t *testing.T, node, dir string, texts []string, maxWindows int, agg string) []json.RawMessage {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"model_dir": dir, "texts": texts, "max_windows": maxWindows, "aggregation": agg, "threads": 2})
	cmd := exec.Command(node, "windows.mjs")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node reference/windows.mjs: %v\n%s", err, stderr.String())
	}
	var res struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Results) != len(texts) {
		t.Fatalf("reference output (%v): %.300s", err, stdout.String())
	}
	return res.Results
}

func TestWindowParityWithTransformersJS(t *testing.T) {
	node := referenceNode(t)
	// One paragraph, then articles of about 400 and 1,500 tokens (the
	// benchmark covers longer ones; the cap cases cut these).
	texts := []string{newsDocs(t)[1], longArticle(t, 2000), longArticle(t, 7500)}
	for _, tc := range []struct {
		name, dir  string
		maxWindows int
		agg        string
	}{
		{"sentiment", testenv.ModelDir(t, sentimentModel), 0, ""},
		{"classifier", testenv.ModelDir(t, classifierModel), 0, ""},
		{"classifier overlapping, max, capped at 5", overlapModel(t, classifierModel), 5, job.WindowMax},
		{"embed overlapping, capped at 7", overlapModel(t, embedModel), 7, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			initORT(t)
			m, err := LoadModel(tc.dir, SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, _ := runTexts(t, m, job.Options{MaxWindows: tc.maxWindows, WindowAggregation: tc.agg}, texts...)
			want := windowReference(t, node, tc.dir, texts, tc.maxWindows, tc.agg)
			maxDiff := 0.0
			for i := range texts {
				var g, w longFields
				_ = json.Unmarshal(got[i], &g)
				_ = json.Unmarshal(want[i], &w)
				g.Windows = max(g.Windows, 1) // one window goes unsaid
				if g.Windows != w.Windows {
					t.Fatalf("text %d: %d windows, reference %d", i, g.Windows, w.Windows)
				}
				capped := tc.maxWindows > 0 && g.Windows == tc.maxWindows
				if g.Truncated != capped {
					t.Errorf("text %d: truncated %v with %d windows of a cap of %d", i, g.Truncated, g.Windows, tc.maxWindows)
				}
				if i == len(texts)-1 && w.Windows < 3 {
					t.Fatalf("the longest text took %d windows; the test needs many", w.Windows)
				}
				gotShape, wantShape := stripLong(t, got[i]), stripLong(t, want[i])
				if m.Info().Kind == FeatureExtraction {
					err = compareEmbeddings(gotShape, wantShape, &maxDiff)
				} else {
					err = compareLabels(gotShape, labelsArray(t, wantShape), &maxDiff)
				}
				if err != nil {
					t.Fatalf("text %d: %v", i, err)
				}
			}
			t.Logf("max difference %.2g", maxDiff)
		})
	}
}

// stripLong removes the long-input fields from a result, leaving its
// pipeline shape.
func stripLong(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "windows")
	delete(m, "truncated")
	b, _ := json.Marshal(m)
	return b
}

// labelsArray turns the reference's {"labels": [...]} into the bare array
// compareLabels takes as the reference.
func labelsArray(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var m struct {
		Labels json.RawMessage `json:"labels"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Labels
}
