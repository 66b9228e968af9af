package chaos_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// natsServer is what a cluster needs of its nats-server: testenv's
// embedded one, or natsProc.
type natsServer interface {
	URL() string
	Connect(t testing.TB) *nats.Conn
}

// natsProc is nats-server run as a process of its own (built from the
// module's nats-server by TestMain), so that a test can SIGKILL it: a crash,
// where testenv.NATS can only shut down cleanly. Its JetStream store keeps
// the server's defaults (sync every two minutes): a killed process loses
// nothing it wrote, as the page cache survives it.
type natsProc struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	n := &natsProc{port: testenv.FreePort(t), dir: t.TempDir()}
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n}\n", n.port, filepath.Join(n.dir, "js"))
	if err := os.WriteFile(filepath.Join(n.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start(t)
	t.Cleanup(n.kill)
	return n
}

func (n *natsProc) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *natsProc) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// start runs the server on its port and store and waits until JetStream
// answers (it recovers its streams first).
func (n *natsProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(n.dir, "nats.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command(bins.nats, "-c", filepath.Join(n.dir, "nats.conf"))
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	done := make(chan struct{})
	n.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(n.cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("nats-server exited at start; log:\n%s", tail(filepath.Join(n.dir, "nats.log"), 20))
		default:
		}
		if n.jetStreamUp() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not ready; log:\n%s", tail(filepath.Join(n.dir, "nats.log"), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *natsProc) jetStreamUp() bool {
	nc, err := nats.Connect(n.URL(), nats.Timeout(200*time.Millisecond), nats.NoReconnect())
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// kill SIGKILLs the server and waits for it to exit.
func (n *natsProc) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}
