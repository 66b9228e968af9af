package infer

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	initMu   sync.Mutex
	initPath string // the library loaded, "" when none
)

// Init loads the ONNX Runtime shared library at libPath and creates the
// process's ONNX Runtime environment. It is idempotent: calling it again with
// the same path does nothing, with another path it fails, since a process can
// hold only one environment. The error names the path when loading fails.
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" {
		if initPath == libPath {
			return nil
		}
		return fmt.Errorf("onnxruntime: already initialised with %s, cannot switch to %s", initPath, libPath)
	}
	if libPath == "" {
		return errors.New("onnxruntime: no library path given (set JETINFER_ORT_LIB)")
	}
	if st, err := os.Stat(libPath); err != nil {
		return fmt.Errorf("onnxruntime library %s: %w", libPath, err)
	} else if st.IsDir() {
		return fmt.Errorf("onnxruntime library %s: is a directory, want the libonnxruntime.so file", libPath)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnxruntime library %s: %w", libPath, err)
	}
	initPath = libPath
	return nil
}

// Shutdown destroys the ONNX Runtime environment created by Init. Every model
// must be closed first. After Shutdown, Init may be called again.
func Shutdown() error {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath == "" {
		return nil
	}
	initPath = ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("onnxruntime shutdown: %w", err)
	}
	return nil
}

// libPath returns the library Init loaded, or an error when Init has not run.
func libPath() (string, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath == "" {
		return "", errors.New("onnxruntime is not initialised: call infer.Init first")
	}
	return initPath, nil
}

// SessionOptions says where and how a model's ONNX Runtime session runs.
type SessionOptions struct {
	// Device is "cpu" or "cuda:N" (N the CUDA device id; "cuda" means
	// "cuda:0"). Defaults to "cpu".
	Device string
	// IntraOpThreads is the size of the thread pool one operator uses.
	// Defaults to runtime.NumCPU().
	IntraOpThreads int
	// InterOpThreads is the number of operators run in parallel. Defaults to 1.
	InterOpThreads int
	// CUDAOptions are CUDA execution provider options (see ONNX Runtime's
	// CUDA provider documentation), such as use_tf32=0 for full fp32 matrix
	// products or gpu_mem_limit. device_id comes from Device and may not be
	// set here. Ignored on cpu.
	CUDAOptions map[string]string
}

func (o SessionOptions) withDefaults() SessionOptions {
	if o.Device == "" {
		o.Device = "cpu"
	}
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = runtime.NumCPU()
	}
	if o.InterOpThreads <= 0 {
		o.InterOpThreads = 1
	}
	return o
}

// sessionConfig holds ONNX Runtime session config entries set on every
// session (see onnxruntime_session_options_config_keys.h).
//
// Intra-op threads do not spin waiting for work: a worker shares its cores
// with its own tokenizing goroutines (and, on these machines, with other
// processes), and spinning threads take CPU from them. Measured on 2 shared
// cores with the MiniLM-L6 classifier, interleaved runs of the two settings
// in one process: without spinning 15% faster at batch 1, 27% at batch 8 and
// 15% at batch 32.
var sessionConfig = map[string]string{
	"session.intra_op.allow_spinning": "0",
}

// parseDevice splits "cpu", "cuda" and "cuda:N".
func parseDevice(d string) (cuda bool, id int, err error) {
	switch {
	case d == "cpu":
		return false, 0, nil
	case d == "cuda":
		return true, 0, nil
	case strings.HasPrefix(d, "cuda:"):
		n, err := strconv.Atoi(d[len("cuda:"):])
		if err != nil || n < 0 {
			return false, 0, fmt.Errorf("device %q: want cpu or cuda:N with N a device number", d)
		}
		return true, n, nil
	}
	return false, 0, fmt.Errorf("device %q: want cpu or cuda:N", d)
}

// newSessionOptions builds the ONNX Runtime options of a serving session.
func newSessionOptions(o SessionOptions) (*ort.SessionOptions, error) {
	cuda, dev, err := parseDevice(o.Device)
	if err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, fmt.Errorf("graph optimisation level: %w", err)
	}
	if err := so.SetExecutionMode(ort.ExecutionModeSequential); err != nil {
		return nil, fmt.Errorf("execution mode: %w", err)
	}
	if err := so.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
		return nil, fmt.Errorf("intra-op threads %d: %w", o.IntraOpThreads, err)
	}
	if err := so.SetInterOpNumThreads(o.InterOpThreads); err != nil {
		return nil, fmt.Errorf("inter-op threads %d: %w", o.InterOpThreads, err)
	}
	for k, v := range sessionConfig {
		if err := so.AddSessionConfigEntry(k, v); err != nil {
			return nil, fmt.Errorf("session config %s=%s: %w", k, v, err)
		}
	}
	if cuda {
		if err := appendCUDA(so, dev, o.CUDAOptions); err != nil {
			return nil, err
		}
	}
	ok = true
	return so, nil
}

// appendCUDA adds the CUDA execution provider on device dev to so, with the
// provider options opts.
func appendCUDA(so *ort.SessionOptions, dev int, opts map[string]string) error {
	lib, _ := libPath()
	fail := func(err error) error {
		return fmt.Errorf("device cuda:%d: the ONNX Runtime library %s cannot use CUDA (a CPU-only build? are libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside it, see make deps-cuda, and CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH?): %w", dev, lib, err)
	}
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fail(err)
	}
	defer co.Destroy()
	kv := map[string]string{"device_id": strconv.Itoa(dev)}
	for k, v := range opts {
		if k == "device_id" {
			return fmt.Errorf("device cuda:%d: set the CUDA device with the device, not the CUDA option device_id", dev)
		}
		kv[k] = v
	}
	if err := co.Update(kv); err != nil {
		return fail(err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fail(err)
	}
	return nil
}
