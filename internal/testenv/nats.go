package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is an embedded nats-server with JetStream enabled.
type NATS struct {
	t       testing.TB
	opts    server.Options
	Server  *server.Server
	storeIn string
}

// StartNATS starts a JetStream-enabled nats-server on a random port with its
// store in a temporary directory. It is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, storeIn: t.TempDir()}
	n.opts = server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  n.storeIn,
		// Tests publish bursts far above the defaults' slow-consumer limits.
		MaxPayload: 8 << 20,
	}
	n.start()
	// Pin the port so a restart comes back where clients reconnect to.
	n.opts.Port = n.Server.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Shutdown)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	opts := n.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatalf("nats-server not ready")
	}
	n.Server = s
}

// URL is the client URL of the server.
func (n *NATS) URL() string { return n.Server.ClientURL() }

// Shutdown stops the server; it is safe to call more than once.
func (n *NATS) Shutdown() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
	}
}

// Restart stops the server and starts it again on the same port and store, as
// an operator restarting nats-server would.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Shutdown()
	n.start()
}

// Connect returns a client connection closed when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn { return ConnectNATS(t, n.URL()) }

// ConnectNATS connects to the server at url, reconnecting for ever, and
// closes the connection when the test ends.
func ConnectNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
