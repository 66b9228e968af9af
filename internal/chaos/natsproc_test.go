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
	serverProc
	port int
}

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	n := &natsProc{port: testenv.FreePort(t)}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n}\n",
		n.port, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	n.serverProc = serverProc{name: "nats-server", log: filepath.Join(dir, "nats.log"),
		cmd:   func() *exec.Cmd { return exec.Command(bins.nats, "-c", conf) },
		ready: n.jetStreamUp}
	n.start(t)
	t.Cleanup(n.kill)
	return n
}

func (n *natsProc) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *natsProc) Connect(t testing.TB) *nats.Conn { return testenv.ConnectNATS(t, n.URL()) }

// jetStreamUp reports whether JetStream answers: it recovers its streams
// before it does.
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
