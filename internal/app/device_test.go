package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/infer"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestWorkerOnDevice runs the whole system with the worker's models on the
// accelerator JETINFER_TEST_DEVICE names (cuda:0; `make test-device`), and
// requires every task's answers through ingest, synchronous and polled, to
// match the same model run in-process on the CPU. Skipped without one.
func TestWorkerOnDevice(t *testing.T) {
	dev := os.Getenv("JETINFER_TEST_DEVICE")
	if dev == "" || dev == "cpu" {
		t.Skip("no accelerator: set JETINFER_TEST_DEVICE=cuda:0 (make test-device)")
	}
	texts := []string{
		"Shares of Acme Corp surged 12% in Frankfurt after the company reported record quarterly profit.",
		"The central bank in Washington left rates unchanged, citing weak growth and rising unemployment.",
		"Regulators fined Globex Holdings $40 million over misleading disclosures to investors in London.",
		"Oil prices slipped as OPEC members argued over output cuts.",
	}
	names := []string{"sentiment", "minilm-l6-random-classifier", "minilm-l6-random-embed", "bert-base-cased-random-ner"}

	// What each model answers on the CPU, in-process, closed before the
	// worker starts (its exit shuts ONNX Runtime down).
	if err := infer.Init(testenv.ORTLib(t)); err != nil {
		t.Fatal(err)
	}
	want := map[string][][]byte{}
	var dirs []string
	for _, name := range names {
		dir := testenv.ModelDir(t, name)
		dirs = append(dirs, dir)
		m, err := infer.LoadModel(dir, infer.SessionOptions{IntraOpThreads: 2})
		if err != nil {
			t.Fatal(err)
		}
		task := m.Info().Task
		for _, s := range texts {
			in, err := m.Prepare(s, job.Options{Truncate: true})
			if err != nil {
				t.Fatal(err)
			}
			outs, _, err := m.Run(context.Background(), []*infer.Input{in})
			if err != nil || outs[0].Err != nil {
				t.Fatalf("%s on cpu: %v %v", name, err, outs[0].Err)
			}
			want[task] = append(want[task], outs[0].Result)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}

	s := newStack(t)
	s.startIngest()
	var cfg config.Worker
	defaults(&cfg)
	cfg.NATS.URL, cfg.Redis.URL = s.nats.URL(), s.redis.URL()
	cfg.ORTLib, cfg.Models, cfg.Device = testenv.ORTLib(t), strings.Join(dirs, ","), dev
	cfg.CUDAOptions = "use_tf32=0" // full fp32, comparable with the CPU
	cfg.HTTPAddr, cfg.Log.Level = "127.0.0.1:0", "warn"
	ready := make(chan struct{})
	s.run("worker", func(ctx context.Context) error {
		return app.RunWorker(ctx, cfg, testLogger(t), app.Hooks{Ready: func() { close(ready) }})
	})
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("worker did not become ready")
	}

	const tol = 1e-4
	check := func(how, task string, i int, got []byte) {
		t.Helper()
		d, err := testenv.JSONDiff(want[task][i], got)
		if err != nil || d > tol {
			t.Errorf("%s %s text %d on %s: difference %g (tolerance %g), %v\ncpu: %s\ngot: %s", how, task, i, dev, d, tol, err, want[task][i], got)
		}
	}
	for task := range want {
		// Synchronous, one at a time.
		for i, text := range texts {
			r := s.do("POST", "/v1/infer/"+task+"?wait=60s", s.token, map[string]any{"text": text})
			if r.status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", task, r.status, r.body)
			}
			var m struct {
				Status string          `json:"status"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(r.body, &m); err != nil || m.Status != "succeeded" {
				t.Fatalf("%s: %v %s", task, err, r.body)
			}
			check("sync", task, i, m.Result)
		}
		// Fire and forget, all at once, so that the worker batches them.
		ids := make([]string, len(texts))
		for i, text := range texts {
			r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": task, "input": map[string]any{"text": text}})
			if r.status != http.StatusAccepted {
				t.Fatalf("%s: status %d: %s", task, r.status, r.body)
			}
			ids[i] = r.json(t)["id"].(string)
		}
		for i, id := range ids {
			final, _ := s.poll(id)
			if final["status"] != "succeeded" {
				t.Fatalf("%s job %s: %v", task, id, final)
			}
			got, _ := json.Marshal(final["result"])
			check("polled", task, i, got)
		}
	}
}
