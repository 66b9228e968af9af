package infer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// initORT initialises ONNX Runtime for a test (once per process).
func initORT(t testing.TB) {
	t.Helper()
	if err := Init(testenv.ORTLib(t)); err != nil {
		t.Fatal(err)
	}
}

// TestInitErrorNamesThePath runs in a child process: ONNX Runtime can hold
// one environment per process, and the other tests keep theirs.
func TestInitErrorNamesThePath(t *testing.T) {
	lib := testenv.ORTLib(t)
	if os.Getenv("JETINFER_INFER_INIT_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestInitErrorNamesThePath$", "-test.v")
		cmd.Env = append(os.Environ(), "JETINFER_INFER_INIT_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	missing := filepath.Join(t.TempDir(), "no-such-libonnxruntime.so")
	garbage := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(garbage, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{missing, garbage, t.TempDir(), ""} {
		err := Init(p)
		if err == nil || (p != "" && !strings.Contains(err.Error(), p)) {
			t.Errorf("Init(%q) = %v, want an error naming the path", p, err)
		}
	}
	if _, err := LoadModel(t.TempDir(), SessionOptions{}); err == nil || !strings.Contains(err.Error(), "infer.Init") {
		t.Errorf("LoadModel before Init = %v", err)
	}
	if err := Init(lib); err != nil {
		t.Fatalf("Init after failures: %v", err)
	}
	if err := Init(lib); err != nil {
		t.Fatalf("Init twice with the same path: %v", err)
	}
	if err := Init(garbage); err == nil || !strings.Contains(err.Error(), lib) {
		t.Fatalf("Init with another path once initialised = %v, want an error naming both", err)
	}
	if err := Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestCUDAMissingMessageIsClear(t *testing.T) {
	initORT(t)
	lib := testenv.ORTLib(t)
	so, err := newSessionOptions(SessionOptions{Device: "cuda:1"}.withDefaults())
	if err == nil {
		so.Destroy()
		t.Skipf("%s has a CUDA execution provider", lib)
	}
	t.Log(err)
	for _, want := range []string{"cuda:1", lib, "CUDA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBadDevice(t *testing.T) {
	for _, d := range []string{"gpu", "cuda:x", "cuda:-1", "CPU"} {
		if _, _, err := parseDevice(d); err == nil || !strings.Contains(err.Error(), d) {
			t.Errorf("parseDevice(%q) = %v", d, err)
		}
	}
	for d, want := range map[string]int{"cuda": 0, "cuda:3": 3} {
		if cuda, id, err := parseDevice(d); err != nil || !cuda || id != want {
			t.Errorf("parseDevice(%q) = %v %d %v", d, cuda, id, err)
		}
	}
}
