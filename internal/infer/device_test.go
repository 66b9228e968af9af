package infer

// Tests on an accelerator. They run only where JETINFER_TEST_DEVICE names one
// (cuda:0) and JETINFER_ORT_LIB points at an ONNX Runtime build with its
// execution provider: `make test-device`. Machines without a GPU skip them.

import (
	"os"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// testDevice returns the device JETINFER_TEST_DEVICE names, or skips.
func testDevice(t testing.TB) string {
	t.Helper()
	d := os.Getenv("JETINFER_TEST_DEVICE")
	if d == "" || d == "cpu" {
		t.Skip("no accelerator: set JETINFER_TEST_DEVICE=cuda:0 (make test-device)")
	}
	return d
}

// deviceTol is the largest difference allowed between a score or embedding
// component computed on the accelerator in full fp32 and on the CPU.
const deviceTol = 1e-4

// TestDeviceMatchesCPU runs every model on the CPU and on the accelerator
// over the same batches (news paragraphs, and a long article that NER splits
// into windows) and requires the same answers: the same labels, entities and
// offsets, and numbers within deviceTol, with TF32 off. With TF32 on (ONNX
// Runtime's default on Ampere and later) it logs how far the answers move.
func TestDeviceMatchesCPU(t *testing.T) {
	dev := testDevice(t)
	docs := newsDocs(t)
	if len(docs) > 96 {
		docs = docs[:96]
	}
	long := longArticle(t, 12_000)
	for _, name := range []string{sentimentModel, classifierModel, embedModel, nerModel} {
		t.Run(name, func(t *testing.T) {
			cpu := loadModel(t, name)
			exact := loadModelWith(t, name, SessionOptions{Device: dev, CUDAOptions: map[string]string{"use_tf32": "0"}})
			tf32 := loadModelWith(t, name, SessionOptions{Device: dev})
			texts := append(append([]string(nil), docs...), long)
			opts := job.Options{Truncate: true}
			var worstExact, worstTF32 float64
			tf32Mismatch := 0
			for lo := 0; lo < len(texts); lo += 16 {
				batch := texts[lo:min(lo+16, len(texts))]
				want, _ := runTexts(t, cpu, opts, batch...)
				got, _ := runTexts(t, exact, opts, batch...)
				fast, _ := runTexts(t, tf32, opts, batch...)
				for i := range want {
					d, err := testenv.JSONDiff(want[i], got[i])
					if err != nil {
						t.Fatalf("text %d: %s: %v\ncpu:    %s\n%s: %s", lo+i, dev, err, clip(want[i]), dev, clip(got[i]))
					}
					worstExact = max(worstExact, d)
					if d > deviceTol {
						t.Errorf("text %d: %s differs from cpu by %g (tolerance %g)", lo+i, dev, d, deviceTol)
					}
					if d, err := testenv.JSONDiff(want[i], fast[i]); err != nil {
						tf32Mismatch++
					} else {
						worstTF32 = max(worstTF32, d)
					}
				}
			}
			t.Logf("%s on %s: %d texts, largest difference from cpu %.2g (fp32); with TF32 %.2g, %d answers with another shape",
				name, dev, len(texts), worstExact, worstTF32, tf32Mismatch)
		})
	}
}

func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}
