package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestRunScriptRestartsWorker starts the local stack the way `make run`
// does (scripts/run.sh, on ports of its own), SIGKILLs its worker process,
// and checks that the script restarts it as an orchestrator would and that
// jobs succeed before and after; then that SIGTERM stops the whole stack.
func TestRunScriptRestartsWorker(t *testing.T) {
	data := testenv.DataDir()
	home := t.TempDir()
	for _, d := range []string{"bin", "models", "lib"} {
		if err := os.Symlink(filepath.Join(data, d), filepath.Join(home, d)); err != nil {
			t.Fatal(err)
		}
	}
	ingestPort, workerPort, opsPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	cmd := exec.Command("bash", filepath.Join(testenv.RepoRoot(), "scripts", "run.sh"))
	cmd.Env = append(os.Environ(),
		"JETINFER_HOME="+home,
		"JETINFER_ADDR=127.0.0.1:"+strconv.Itoa(ingestPort),
		"JETINFER_RUN_NATS_PORT="+strconv.Itoa(testenv.FreePort(t)),
		"JETINFER_RUN_REDIS_PORT="+strconv.Itoa(testenv.FreePort(t)),
		"JETINFER_RUN_WORKER_PORT="+strconv.Itoa(workerPort),
		"JETINFER_RUN_OPS_PORT="+strconv.Itoa(opsPort),
		"JETINFER_RUN_BIN="+bins.dir,
		"JETINFER_ORT_LIB="+testenv.ORTLib(t),
	)
	outPath := filepath.Join(t.TempDir(), "run.out")
	outFile, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	output := func() string { b, _ := os.ReadFile(outPath); return string(b) }
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this test started
			<-exited
		}
		if t.Failed() {
			t.Logf("run.sh output:\n%s", output())
			for _, f := range []string{"worker-0.log", "ingest.log"} {
				t.Logf("--- %s\n%s", f, tail(filepath.Join(home, "logs", f), 20))
			}
		}
	})

	// run.sh writes the development token once everything is ready.
	tokenFile := filepath.Join(home, "dev.token")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if b, err := os.ReadFile(tokenFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("run.sh exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("run.sh did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(tok))
	// Metrics are on ingest's operations port, and run.sh says where.
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(opsPort) + "/metrics"
	if resp, err := httpClient.Get(metricsURL); err != nil {
		t.Errorf("GET %s: %v", metricsURL, err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", metricsURL, resp.StatusCode)
		}
	}
	for i := 0; !strings.Contains(output(), metricsURL); i++ {
		if i == 50 {
			t.Errorf("run.sh does not print the metrics URL %s", metricsURL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(ingestPort)
	infer := func(text string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"text": text})
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/infer/sentiment", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rec map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&rec)
		if resp.StatusCode != http.StatusOK || rec["status"] != "succeeded" {
			t.Fatalf("infer: %d %v", resp.StatusCode, rec)
		}
	}
	infer("Shares surged after record profits.")

	first := workerPID(t, workerPort)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The supervisor starts a new worker process on the same port.
	deadline = time.Now().Add(60 * time.Second)
	var second int
	for {
		if pid := findWorker(workerPort); pid != 0 && pid != first && healthy(workerPort) {
			second = pid
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed worker was not restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	infer("The bank collapsed amid fraud charges.")
	if !strings.Contains(output(), "worker 0 exited") {
		t.Errorf("run.sh did not report the worker's exit:\n%s", output())
	}

	// SIGTERM stops the stack: ingest, workers, brokers.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		stopped = true
	case <-time.After(60 * time.Second):
		t.Fatal("run.sh did not stop on SIGTERM")
	}
	if err := syscall.Kill(second, 0); err == nil {
		t.Errorf("worker %d outlived run.sh", second)
	}
}

// workerPID is the process id of the worker serving health on port.
func workerPID(t *testing.T, port int) int {
	t.Helper()
	pid := findWorker(port)
	if pid == 0 {
		t.Fatalf("no worker process with --http-addr 127.0.0.1:%d", port)
	}
	return pid
}

// findWorker finds the worker binary started with --http-addr on port by
// its command line: the port is this test's own, so the match is exact.
func findWorker(port int) int {
	want := "--http-addr\x00127.0.0.1:" + strconv.Itoa(port) + "\x00"
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(b), bins.worker+"\x00") || !strings.Contains(string(b), want) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie awaiting its parent
		}
		return pid
	}
	return 0
}

func healthy(port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
