package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestClusterR3 runs ingest and a worker on a real 3-node NATS cluster
// (the nats/cluster configurations) with --stream-replicas 3: ingest
// creates every stream and the models bucket on all three nodes, and
// synchronous jobs, fire-and-forget jobs and a backfill all finish, each
// backfill document with exactly one result.
func TestClusterR3(t *testing.T) {
	cl := testenv.StartNATSCluster(t)
	s := newStackOn(t, cl.URL())
	s.startIngestWith(func(c *config.Ingest) { c.StreamReplicas = testenv.ClusterSize })
	s.startWorker()

	q, err := queue.New(cl.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := q.JetStream()
	for _, cfg := range queue.DefaultTopology().Streams() {
		st, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != testenv.ClusterSize || info.Cluster == nil || len(info.Cluster.Replicas) != testenv.ClusterSize-1 {
			t.Errorf("stream %s: %d replicas configured, cluster %+v", cfg.Name, info.Config.Replicas, info.Cluster)
		}
	}
	if st, err := js.Stream(ctx, "KV_"+queue.ModelsBucket); err != nil || st.CachedInfo().Config.Replicas != testenv.ClusterSize {
		t.Errorf("bucket %s is not R%d: %v", queue.ModelsBucket, testenv.ClusterSize, err)
	}

	for i := range 10 {
		text := fmt.Sprintf("Shares surged after the company reported record profit and strong growth. Story %d.", i)
		r := s.do("POST", "/v1/infer/sentiment", s.token, map[string]any{"text": text})
		if r.status != http.StatusOK {
			t.Fatalf("infer %d: %d %s", i, r.status, r.body)
		}
		if got := topLabel(t, r.json(t)["result"]); got != "positive" {
			t.Fatalf("infer %d: top label %q", i, got)
		}
	}
	r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
		"input": map[string]any{"text": "The bank collapsed amid fraud charges and heavy losses."}})
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	if final, _ := s.poll(r.json(t)["id"].(string)); final["status"] != "succeeded" || topLabel(t, final["result"]) != "negative" {
		t.Fatalf("fire and forget: %v", final)
	}

	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	const n = 600
	id, p := s.completeBackfill(tok, map[string]any{"task": "sentiment"}, archive(0, n, n), n)
	if p.Succeeded != n {
		t.Fatalf("completed with %+v", p)
	}
	count, _ := s.results(id, tok)
	for i := range n {
		if doc := fmt.Sprint("doc-", i); count[doc] != 1 {
			t.Fatalf("%s: %d result lines, want 1", doc, count[doc])
		}
	}
}
