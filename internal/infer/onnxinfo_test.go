package infer

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestReadGraphIOMatchesONNXRuntime reads each model's inputs and outputs
// from the file and compares them with what ONNX Runtime reports.
func TestReadGraphIOMatchesONNXRuntime(t *testing.T) {
	initORT(t)
	for _, name := range []string{sentimentModel, classifierModel, embedModel, nerModel} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(testenv.ModelDir(t, name), "model.onnx")
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ins, outs, err := readGraphIO(f)
			if err != nil {
				t.Fatal(err)
			}
			if !conventional(ins, outs) {
				t.Errorf("not conventional: %v %v", ins, outs)
			}
			oins, oouts, err := ort.GetInputOutputInfo(p)
			if err != nil {
				t.Fatal(err)
			}
			same := func(what string, got []ioInfo, want []ort.InputOutputInfo) {
				if len(got) != len(want) {
					t.Fatalf("%s: %v, ONNX Runtime says %v", what, got, want)
				}
				for i := range got {
					w := want[i]
					if got[i].name != w.Name || got[i].elem != int32(w.DataType) || !slices.Equal(got[i].dims, []int64(w.Dimensions)) {
						t.Errorf("%s %d: %v, ONNX Runtime says %v", what, i, got[i], w.String())
					}
				}
			}
			same("inputs", ins, oins)
			same("outputs", outs, oouts)
		})
	}
}

func FuzzReadGraphIO(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("<html>"))
	// A small real graph: the sentiment model.
	if b, err := os.ReadFile(filepath.Join(testenv.DataDir(), "models", sentimentModel, "model.onnx")); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, outs, err := readGraphIO(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, io := range append(ins, outs...) {
			if io.name == "" {
				t.Fatalf("unnamed input or output in %v %v", ins, outs)
			}
		}
	})
}
