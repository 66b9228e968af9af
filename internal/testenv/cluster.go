package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// ClusterSize is the number of nodes of the cluster in nats/cluster.
const ClusterSize = 3

// Cluster is a real 3-node nats-server cluster with JetStream: the
// installed nats-server binary (`make deps`) run as processes on loopback
// from the configurations in nats/cluster, with ports and routes set on the
// command line and each node's store directory written into its copy of the
// file (nats-server refuses -sd next to a store_dir). Being processes, its nodes can be
// SIGKILLed, stopped, wiped and started again; they are killed when the
// test ends, after their logs are printed if it failed.
type Cluster struct {
	t   testing.TB
	bin string
	// name is the cluster's name, its own (clusterName).
	name  string
	Nodes []*ClusterNode
}

// clusters numbers the clusters this process starts, for clusterName.
var clusters atomic.Int64

// clusterName is a name for a new cluster that no other test's cluster on
// this machine has. nats/cluster names every cluster "jetinfer"; with that
// name, a node of another test's (or package's) cluster that still dials a
// port its killed peer had, which FreePort has since handed to this
// cluster, would be taken in as a peer and spoil the meta group's
// elections. Under another name its route is refused.
func clusterName() string {
	return fmt.Sprintf("jetinfer-%d-%d", os.Getpid(), clusters.Add(1))
}

// ClusterNode is one node of a Cluster.
type ClusterNode struct {
	// Name is the node's server_name, as stream info reports leaders.
	Name string
	// Port, ClusterPort and HTTPPort are its client, route and monitoring
	// ports, kept across restarts.
	Port, ClusterPort, HTTPPort int
	// StoreDir is its JetStream store.
	StoreDir string
	// Log is where its output goes.
	Log string

	conf  string
	logAt int64 // the size of Log when the node was last launched
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
}

// NATSServerPath returns the nats-server binary `make deps` installed,
// failing the test with a hint when it is missing.
func NATSServerPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(DataDir(), "bin", "nats-server")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("nats-server %s: %v (run `make deps`)", p, err)
	}
	return p
}

// StartNATSCluster starts the three nodes and waits until JetStream has a
// meta leader, so streams can be created at once.
func StartNATSCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: NATSServerPath(t), name: clusterName()}
	dir := t.TempDir()
	for i := 1; i <= ClusterSize; i++ {
		n := &ClusterNode{
			Name:     fmt.Sprintf("nats-%d", i),
			StoreDir: filepath.Join(dir, fmt.Sprintf("nats-%d", i), "jetstream"),
			Log:      filepath.Join(dir, fmt.Sprintf("nats-%d.log", i)),
		}
		n.conf = renderNodeConf(t, i, filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i)), n.StoreDir)
		c.Nodes = append(c.Nodes, n)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("NATS nodes' logs:\n%s", c.Logs(40))
		}
		for i := range c.Nodes {
			c.Kill(i)
		}
	})
	// FreePorts' ports are free and distinct when it returns, but any
	// process on the machine may take one before the node binds it; the
	// node then exits, and the cluster starts again on other ports.
	for attempt := 1; ; attempt++ {
		ports := FreePorts(t, 3*len(c.Nodes))
		for i, n := range c.Nodes {
			n.Port, n.ClusterPort, n.HTTPPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		}
		for i := range c.Nodes {
			c.launch(i)
		}
		if c.awaitHealthy() {
			break
		}
		for i := range c.Nodes {
			c.Kill(i)
		}
		if attempt == 5 {
			t.Fatalf("a node found one of its ports taken %d times in a row; logs:\n%s", attempt, c.Logs(10))
		}
		for _, n := range c.Nodes {
			if err := os.RemoveAll(n.StoreDir); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.awaitMetaLeader()
	return c
}

// awaitMetaLeader waits until every node answers JetStream's account info
// without an error: a meta leader is elected and known cluster-wide, so
// streams can be created. /healthz can answer before that.
func (c *Cluster) awaitMetaLeader() {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for i := range c.Nodes {
		nc, err := nats.Connect(c.NodeURL(i), nats.Timeout(2*time.Second))
		if err != nil {
			c.t.Fatalf("%s: %v", c.Nodes[i].Name, err)
		}
		for {
			var info struct {
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			msg, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
			if err == nil {
				err = json.Unmarshal(msg.Data, &info)
			}
			if err == nil && info.Error == nil {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				c.t.Fatalf("JetStream on %s not ready after 90s (%v %+v); logs:\n%s", c.Nodes[i].Name, err, info.Error, c.Logs(30))
			}
			time.Sleep(50 * time.Millisecond)
		}
		nc.Close()
	}
}

// ClusterStoreLine is the store_dir line of the files in nats/cluster, which
// a node on this machine replaces with its own directory.
const ClusterStoreLine = "store_dir: /data/jetstream"

// renderNodeConf writes nats/cluster/nats-<i>.conf to path with store as its
// store directory and returns path.
func renderNodeConf(t testing.TB, i int, path, store string) string {
	t.Helper()
	src := filepath.Join(RepoRoot(), "nats", "cluster", fmt.Sprintf("nats-%d.conf", i))
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), ClusterStoreLine) {
		t.Fatalf("%s has no line %q to point at a store on this machine", src, ClusterStoreLine)
	}
	data = []byte(strings.Replace(string(data), ClusterStoreLine, fmt.Sprintf("store_dir: %q", store), 1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// args is node i's command line: its file from nats/cluster, with the
// addresses and store of this machine.
func (c *Cluster) args(i int) []string {
	n := c.Nodes[i]
	routes := make([]string, 0, len(c.Nodes))
	for _, m := range c.Nodes {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(m.ClusterPort))
	}
	return []string{"-c", n.conf, "-a", "127.0.0.1", "-p", strconv.Itoa(n.Port), "-m", strconv.Itoa(n.HTTPPort),
		"--cluster", "nats://127.0.0.1:" + strconv.Itoa(n.ClusterPort), "--cluster_name", c.name,
		"--routes", strings.Join(routes, ",")}
}

// launch starts node i's process without waiting for it.
func (c *Cluster) launch(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	n.logAt = fileSize(n.Log)
	cmd := exec.Command(c.bin, c.args(i)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
}

// URL is the client URL of every node, comma-separated: what ingest and
// workers are given, so that they reconnect to another node.
func (c *Cluster) URL() string {
	urls := make([]string, 0, len(c.Nodes))
	for i := range c.Nodes {
		urls = append(urls, c.NodeURL(i))
	}
	return strings.Join(urls, ",")
}

// NodeURL is node i's client URL.
func (c *Cluster) NodeURL(i int) string { return "nats://127.0.0.1:" + strconv.Itoa(c.Nodes[i].Port) }

// Connect returns a client connection to the cluster, closed when the test
// ends.
func (c *Cluster) Connect(t testing.TB) *nats.Conn { return ConnectNATS(t, c.URL()) }

// Running reports whether node i's process is up.
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Kill SIGKILLs node i, a crash, and waits for it to exit; a node that is
// down is left as it is.
func (c *Cluster) Kill(i int) { c.signal(i, syscall.SIGKILL) }

// Stop SIGTERMs node i, as an operator's restart does, and waits for it to
// exit.
func (c *Cluster) Stop(i int) { c.signal(i, syscall.SIGTERM) }

func (c *Cluster) signal(i int, sig syscall.Signal) {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Wipe deletes node i's JetStream store, a lost disk; the node must be down.
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("wipe %s: it is running", c.Nodes[i].Name)
	}
	if err := os.RemoveAll(c.Nodes[i].StoreDir); err != nil {
		c.t.Fatal(err)
	}
}

// Start starts node i again on its ports and store and waits until it is
// healthy: routed, and its streams caught up with their leaders.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("start %s: already running", c.Nodes[i].Name)
	}
	c.launch(i)
	c.AwaitHealthy(i)
}

// AwaitHealthy waits until node i's /healthz answers 200: JetStream is up
// on it, it knows the meta leader, and every stream replica it holds is
// current. Restarting the next node before that could take a quorum away.
func (c *Cluster) AwaitHealthy(i int) {
	c.t.Helper()
	if !c.awaitHealthy(i) {
		c.t.Fatalf("%s cannot listen again: one of its ports was taken while it was down; its log:\n%s", c.Nodes[i].Name,
			tailFile(c.Nodes[i].Log, 30))
	}
}

// awaitHealthy waits until the nodes with the given indices (every node
// when none is given) are healthy, watching them all at once: a node's
// health needs the others (a meta leader), so a node that exited because
// one of its ports was taken must be seen while the others wait for it. It
// reports false for such a node; any other exit, or 90 s without health,
// fails the test.
func (c *Cluster) awaitHealthy(nodes ...int) bool {
	c.t.Helper()
	if len(nodes) == 0 {
		for i := range c.Nodes {
			nodes = append(nodes, i)
		}
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		waiting := nodes[:0:0]
		for _, i := range nodes {
			n := c.Nodes[i]
			if resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(n.HTTPPort) + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					continue
				}
			}
			n.mu.Lock()
			done := n.done
			n.mu.Unlock()
			select {
			case <-done:
				if strings.Contains(logSince(n.Log, n.logAt), "address already in use") {
					return false
				}
				c.t.Fatalf("%s exited; its log:\n%s", n.Name, tailFile(n.Log, 30))
			default:
			}
			waiting = append(waiting, i)
		}
		if len(waiting) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			n := c.Nodes[waiting[0]]
			c.t.Fatalf("%s not healthy after 90s; its log:\n%s", n.Name, tailFile(n.Log, 30))
		}
		nodes = waiting
		time.Sleep(50 * time.Millisecond)
	}
}

// Index is the index of the node named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// Leader is the index of the node leading stream, waiting for one to be
// elected. It asks JetStream's stream info (its Cluster.Leader) over the
// JetStream API subject: internal/queue is the only package that uses the
// jetstream client.
func (c *Cluster) Leader(t testing.TB, nc *nats.Conn, stream string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info struct {
			Cluster struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		}
		msg, err := nc.Request("$JS.API.STREAM.INFO."+stream, nil, 2*time.Second)
		if err == nil {
			err = json.Unmarshal(msg.Data, &info)
		}
		if i := c.Index(info.Cluster.Leader); err == nil && i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s has no leader after 30s (last error %v)", stream, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Logs returns the last n lines of every node's log, for a failed test.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, node := range c.Nodes {
		fmt.Fprintf(&b, "--- %s\n%s\n", node.Name, tailFile(node.Log, n))
	}
	return b.String()
}

// tailFile is the last n lines of a node's log at path, less the warnings
// that answer AwaitHealthy's polls (20 a second while a node is not
// healthy, they would fill the tail and hide why): it ends with the last of
// those and how many there were.
func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	var lines []string
	var polls int
	var lastPoll string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.Contains(l, "Healthcheck failed") {
			polls++
			lastPoll = l
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if polls > 0 {
		lines = append(lines, fmt.Sprintf("%s (and %d health checks failed in all)", lastPoll, polls))
	}
	return strings.Join(lines, "\n")
}
