package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestRunScriptRestartsWorker starts the local stack the way `make run`
// does (scripts/run.sh, on ports of its own), SIGKILLs its worker process,
// and checks that the script restarts it as an orchestrator would and that
// jobs succeed before and after; then that SIGTERM stops the whole stack.
func TestRunScriptRestartsWorker(t *testing.T) {
	rs := startRunScript(t)
	infer, output := rs.infer, rs.output
	workerPort := rs.workerPort
	// Metrics are on ingest's operations port, and run.sh says where.
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(rs.opsPort) + "/metrics"
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
	infer("Shares surged after record profits.")

	first := workerPID(t, workerPort)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The supervisor starts a new worker process on the same port.
	deadline := time.Now().Add(60 * time.Second)
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
	rs.stop()
	if err := syscall.Kill(second, 0); err == nil {
		t.Errorf("worker %d outlived run.sh", second)
	}
}

// TestRunScriptNATSCluster starts the local stack as `make run
// NATS_NODES=3` does: three nats-server processes from nats/cluster on
// loopback, streams with a copy on each. A job succeeds, the JOBS stream
// stands on three nodes, a job still succeeds with the stream's leader
// SIGKILLed, and SIGTERM stops every node.
func TestRunScriptNATSCluster(t *testing.T) {
	base := consecutivePorts(t, 9)
	clientPort, routes, mon := base, base+3, base+6
	rs := startRunScript(t, "JETINFER_RUN_NATS_NODES=3",
		"JETINFER_RUN_NATS_PORT="+strconv.Itoa(clientPort),
		"JETINFER_RUN_NATS_CLUSTER_PORT="+strconv.Itoa(routes),
		"JETINFER_RUN_NATS_HTTP_PORT="+strconv.Itoa(mon))
	rs.infer("Shares surged after record profits.")

	nc, err := natsgo.Connect(fmt.Sprintf("nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d", clientPort, clientPort+1, clientPort+2))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, job.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("JOBS has %d replicas, cluster %+v; want 3 copies", info.Config.Replicas, info.Cluster)
	}
	// The leader's process: the node whose monitoring port names it.
	leader := 0
	for i := range 3 {
		var v struct {
			Name string `json:"server_name"`
		}
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", mon+i))
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.Name == info.Cluster.Leader {
			leader = findProc("/nats-server", "-p\x00"+strconv.Itoa(clientPort+i)+"\x00")
		}
	}
	if leader == 0 {
		t.Fatalf("no node is the JOBS leader %q", info.Cluster.Leader)
	}
	if err := syscall.Kill(leader, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The two nodes left elect a leader; the synchronous call is answered
	// once they have (ingest and the worker reconnect on their own).
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, rec := rs.try("The bank collapsed amid fraud charges.")
		if code == http.StatusOK && rec["status"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer with the JOBS leader gone: %d %v", code, rec)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rs.stop()
	for i := range 3 {
		if pid := findProc("/nats-server", "-p\x00"+strconv.Itoa(clientPort+i)+"\x00"); pid != 0 {
			t.Errorf("nats-server on port %d (pid %d) outlived run.sh", clientPort+i, pid)
		}
	}
}

// runScript is scripts/run.sh running on ports of its own, its data in a
// fresh JETINFER_HOME.
type runScript struct {
	t                   *testing.T
	base, token         string
	workerPort, opsPort int
	output              func() string
	cmd                 *exec.Cmd
	exited              chan error
	stopped             bool
}

// startRunScript starts scripts/run.sh with env added to its environment
// (where it names a variable set here, it wins) and returns once it has printed the development token (everything is
// ready then). It is SIGKILLed, with its process group, when the test ends
// unless stop stopped it.
func startRunScript(t *testing.T, env ...string) *runScript {
	t.Helper()
	data := testenv.DataDir()
	home := t.TempDir()
	for _, d := range []string{"bin", "models", "lib"} {
		if err := os.Symlink(filepath.Join(data, d), filepath.Join(home, d)); err != nil {
			t.Fatal(err)
		}
	}
	// Distinct ports: run.sh binds them only later, so ports chosen one
	// by one could repeat.
	ports := testenv.FreePorts(t, 5)
	rs := &runScript{t: t, workerPort: ports[0], opsPort: ports[1], exited: make(chan error, 1)}
	ingestPort := ports[2]
	rs.base = "http://127.0.0.1:" + strconv.Itoa(ingestPort)
	cmd := exec.Command("bash", filepath.Join(testenv.RepoRoot(), "scripts", "run.sh"))
	cmd.Env = append(os.Environ(),
		"JETINFER_HOME="+home,
		"JETINFER_ADDR=127.0.0.1:"+strconv.Itoa(ingestPort),
		"JETINFER_RUN_REDIS_PORT="+strconv.Itoa(ports[3]),
		"JETINFER_RUN_NATS_PORT="+strconv.Itoa(ports[4]),
		"JETINFER_RUN_WORKER_PORT="+strconv.Itoa(rs.workerPort),
		"JETINFER_RUN_OPS_PORT="+strconv.Itoa(rs.opsPort),
		"JETINFER_RUN_BIN="+bins.dir,
		"JETINFER_ORT_LIB="+testenv.ORTLib(t),
	)
	cmd.Env = append(cmd.Env, env...)
	outPath := filepath.Join(t.TempDir(), "run.out")
	outFile, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outFile.Close() })
	cmd.Stdout, cmd.Stderr = outFile, outFile
	rs.output = func() string { b, _ := os.ReadFile(outPath); return string(b) }
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rs.cmd = cmd
	go func() { rs.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if !rs.stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this test started
			<-rs.exited
		}
		if t.Failed() {
			t.Logf("run.sh output:\n%s", rs.output())
			logs, _ := filepath.Glob(filepath.Join(home, "logs", "*.log"))
			for _, f := range logs {
				t.Logf("--- %s\n%s", filepath.Base(f), tail(f, 20))
			}
		}
	})

	// run.sh writes the development token once everything is ready.
	tokenFile := filepath.Join(home, "dev.token")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if b, err := os.ReadFile(tokenFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			rs.token = strings.TrimSpace(string(b))
			return rs
		}
		select {
		case err := <-rs.exited:
			rs.stopped = true
			t.Fatalf("run.sh exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("run.sh did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// try makes one synchronous sentiment call and returns its status and
// record.
func (rs *runScript) try(text string) (int, map[string]any) {
	body, _ := json.Marshal(map[string]string{"text": text})
	req, _ := http.NewRequest(http.MethodPost, rs.base+"/v1/infer/sentiment", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+rs.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var rec map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&rec)
	return resp.StatusCode, rec
}

// infer makes one synchronous call that must succeed.
func (rs *runScript) infer(text string) {
	rs.t.Helper()
	if code, rec := rs.try(text); code != http.StatusOK || rec["status"] != "succeeded" {
		rs.t.Fatalf("infer: %d %v", code, rec)
	}
}

// stop SIGTERMs run.sh and waits for it to stop the stack.
func (rs *runScript) stop() {
	rs.t.Helper()
	if err := rs.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		rs.t.Fatal(err)
	}
	select {
	case <-rs.exited:
		rs.stopped = true
	case <-time.After(60 * time.Second):
		rs.t.Fatal("run.sh did not stop on SIGTERM")
	}
}

// consecutivePorts returns the first of n consecutive loopback ports that
// were free a moment ago (run.sh numbers a cluster's nodes from a base).
// They are below the kernel's ephemeral range, where FreePorts (port 0)
// never picks, so the test's other ports cannot land among them.
func consecutivePorts(t *testing.T, n int) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low-n <= 10000 {
		t.Fatalf("no room below the ephemeral port range (from %d) for %d ports", low, n)
	}
	for range 100 {
		base := 10000 + rand.IntN(low-n-10000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
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
	return findProc(bins.worker, "--http-addr\x00127.0.0.1:"+strconv.Itoa(port)+"\x00")
}

// findProc finds a live process whose program path ends with prog and
// whose command line (arguments NUL-separated) contains arg; 0 if none.
func findProc(prog, arg string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if err != nil || !strings.HasSuffix(argv0, prog) || !strings.Contains(string(b), arg) {
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
