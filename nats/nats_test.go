// Package nats_test checks the NATS server configurations and the JetStream
// stream and consumer definitions kept in nats/: the servers parse and
// describe a JetStream cluster, and the JSON definitions are exactly what
// internal/queue creates (run with -update to rewrite them from the code).
package nats_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

var update = flag.Bool("update", false, "rewrite nats/streams and nats/consumers from internal/queue")

// Tasks whose consumers are kept as JSON: the models make run and the
// benchmarks serve. Other tasks' consumers are created the same way.
var tasks = []string{"sentiment", "bench-classify", "bench-embed", "bench-ner"}

func TestSingleNodeConfig(t *testing.T) {
	o := parse(t, "single.conf")
	if !o.JetStream || o.StoreDir == "" || o.ServerName == "" {
		t.Fatalf("jetstream %v store %q name %q", o.JetStream, o.StoreDir, o.ServerName)
	}
	if o.Port != 4222 || o.HTTPPort != 8222 {
		t.Errorf("client port %d, monitoring %d: want 4222 and 8222", o.Port, o.HTTPPort)
	}
	checkLimits(t, o)
}

func TestClusterConfigs(t *testing.T) {
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		o := parse(t, filepath.Join("cluster", "nats-"+string(rune('0'+i))+".conf"))
		if !o.JetStream || o.StoreDir == "" {
			t.Errorf("node %d: JetStream off", i)
		}
		if names[o.ServerName] || o.ServerName == "" {
			t.Errorf("node %d: server_name %q missing or repeated", i, o.ServerName)
		}
		names[o.ServerName] = true
		if o.Cluster.Name != "jetinfer" || o.Cluster.Port != 6222 {
			t.Errorf("node %d: cluster %q port %d", i, o.Cluster.Name, o.Cluster.Port)
		}
		if len(o.Routes) != 3 {
			t.Errorf("node %d: %d routes, want all 3 nodes", i, len(o.Routes))
		}
		for _, r := range o.Routes {
			if !strings.HasPrefix(r.Host, "nats-") || r.Port() != "6222" {
				t.Errorf("node %d: route %s", i, r)
			}
		}
		checkLimits(t, o)
	}
}

// checkLimits: a job message (up to JOBS's MaxMsgSize) must fit max_payload,
// and the file store must hold the bounded streams.
func checkLimits(t *testing.T, o *server.Options) {
	t.Helper()
	topo := queue.DefaultTopology()
	var jobsMax int32
	for _, s := range topo.Streams() {
		if s.Name == job.StreamJobs {
			jobsMax = s.MaxMsgSize
		}
	}
	if o.MaxPayload < jobsMax {
		t.Errorf("max_payload %d below the JOBS stream's max message size %d", o.MaxPayload, jobsMax)
	}
	if o.JetStreamMaxStore < topo.JobsMaxBytes+topo.ResultsMaxBytes {
		t.Errorf("max_file_store %d cannot hold JOBS and RESULTS at their limits", o.JetStreamMaxStore)
	}
	// docs/durability.md promises an fsync every two minutes; an unquoted
	// 2m parses as the number 2,000,000 and so as that many seconds.
	if o.SyncInterval != 2*time.Minute {
		t.Errorf("sync_interval is %s, want 2m (quote the value)", o.SyncInterval)
	}
}

func parse(t *testing.T, path string) *server.Options {
	t.Helper()
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return o
}

// The JSON definitions are what the code creates: streams with 3 replicas
// (the cluster), consumers with the default consumer settings.
func TestDefinitionsMatchCode(t *testing.T) {
	topo := queue.DefaultTopology()
	topo.Replicas = 3
	want := map[string]any{}
	for _, s := range topo.Streams() {
		want[filepath.Join("streams", s.Name+".json")] = s
	}
	cc := queue.DefaultConsumerConfig()
	for _, task := range tasks {
		for _, l := range job.Lanes {
			want[filepath.Join("consumers", queue.ConsumerName(l, task)+".json")] = cc.Consumer(l, task)
		}
	}
	for path, v := range want {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		if *update {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (go test ./nats -update writes it)", path, err)
			continue
		}
		if !bytes.Equal(have, data) {
			t.Errorf("%s differs from what internal/queue creates (go test ./nats -update rewrites it):\n%s", path, data)
		}
	}
	// No stale file stays behind.
	for _, dir := range []string{"streams", "consumers"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			if _, ok := want[f]; !ok {
				t.Errorf("%s is not a definition the code makes", f)
			}
		}
	}
}
