package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot is the directory holding jetinfer's go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DataDir is where `make deps models` put their output: $JETINFER_HOME, or
// .jetinfer under the repository root.
func DataDir() string {
	if d := os.Getenv("JETINFER_HOME"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".jetinfer")
}

// ORTLib returns the path of the ONNX Runtime shared library, failing the test
// with a hint when `make deps` has not been run.
func ORTLib(t testing.TB) string {
	t.Helper()
	p := os.Getenv("JETINFER_ORT_LIB")
	if p == "" {
		p = filepath.Join(DataDir(), "lib", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ONNX Runtime library %s: %v (run `make deps`)", p, err)
	}
	return p
}

// ModelDir returns the directory of the model built by `make models` under
// name, failing the test with a hint when it is missing.
func ModelDir(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(DataDir(), "models", name)
	if _, err := os.Stat(filepath.Join(p, "model.onnx")); err != nil {
		t.Fatalf("model %s: %v (run `make models`)", name, err)
	}
	return p
}
