package queue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestClusterReplicasAndLeaderKill creates the topology with 3 replicas on
// a real 3-node cluster: every stream and the models bucket are R3, and a
// worker that opens the bucket keeps it so. Then publishers send jobs while
// the JOBS stream's leader is SIGKILLed: every Publish succeeds (it retries
// through the election with the same message id) and JOBS holds each job
// exactly once; so does every PublishBatch. The publish retry is the one
// ingest picks for R3 streams.
func TestClusterReplicasAndLeaderKill(t *testing.T) {
	cl := testenv.StartNATSCluster(t)
	nc := cl.Connect(t)
	q, ctx := newClient(t, nc, 2*time.Minute)
	topo := queue.DefaultTopology()
	topo.Replicas = testenv.ClusterSize
	if err := q.EnsureStreams(ctx, topo); err != nil {
		t.Fatal(err)
	}
	js := q.JetStream()
	for _, cfg := range topo.Streams() {
		s, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != testenv.ClusterSize {
			t.Errorf("stream %s has %d replicas, want %d", cfg.Name, got, testenv.ClusterSize)
		}
	}
	// A worker's client announces into the bucket ingest created; it must
	// not scale it back to one replica.
	wq, err := queue.New(testenv.ConnectNATS(t, cl.NodeURL(1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := wq.Announce(ctx, job.ModelInfo{Task: "sentiment"}); err != nil {
		t.Fatal(err)
	}
	checkBucketReplicas(ctx, t, js, testenv.ClusterSize)

	q.SetPublishRetry(queue.PublishRetryFor(q.StreamReplicas(ctx)))
	const publishers, each = 4, 150
	var published atomic.Int64
	var slowest atomic.Int64 // the longest Publish, in nanoseconds
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				j := &job.Job{ID: fmt.Sprintf("p%d-%d", p, i), Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk,
					Input: job.Input{Text: "x"}, Created: time.Now()}
				start := time.Now()
				if _, err := q.Publish(ctx, j, "", nil); err != nil {
					t.Errorf("publish %s after %s: %v", j.ID, time.Since(start).Round(time.Millisecond), err)
					return
				}
				for d := int64(time.Since(start)); ; {
					if old := slowest.Load(); d <= old || slowest.CompareAndSwap(old, d) {
						break
					}
				}
				if published.Add(1) == publishers*each/3 {
					close(killed)
				}
			}
		}()
	}
	// stopped is closed once every publisher has returned: one that failed
	// early must not leave the test waiting for a kill that never comes.
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	// A backfill upload's chunks go through PublishBatch: they ride out
	// the election the same way.
	const batch = 50
	var batches atomic.Int64
	singlesDone := make(chan struct{})
	var bwg sync.WaitGroup
	bwg.Add(1)
	go func() {
		defer bwg.Done()
		select {
		case <-killed:
		case <-stopped:
			return
		}
		for b := 0; ; b++ {
			select {
			case <-singlesDone:
				if b >= 3 {
					return
				}
			default:
			}
			batches.Add(1)
			jobs := make([]*job.Job, batch)
			for i := range jobs {
				jobs[i] = &job.Job{ID: fmt.Sprintf("b%d-%d", b, i), Tenant: "acme", Task: "sentiment", Lane: job.LaneBackfill,
					Backfill: "bf", DocID: fmt.Sprintf("%d-%d", b, i), Input: job.Input{Text: "x"}, Created: time.Now()}
			}
			for i, p := range q.PublishBatch(ctx, jobs, func(*job.Job) string { return "" }) {
				if p.Err != nil || p.Dup {
					t.Errorf("batch %d job %d: dup %v, %v", b, i, p.Dup, p.Err)
					return
				}
			}
		}
	}()
	select {
	case <-killed:
	case <-stopped:
	}
	if published.Load() < publishers*each/3 {
		bwg.Wait()
		t.Fatalf("the publishers stopped after %d jobs, before the kill", published.Load())
	}
	// The leader is looked up now, not before the publishes: a leader that
	// changed meanwhile would have the test kill a follower and prove
	// nothing.
	leader := cl.Leader(t, nc, job.StreamJobs)
	start, at := time.Now(), published.Load()
	cl.Kill(leader)
	wg.Wait()
	close(singlesDone)
	bwg.Wait()
	t.Logf("SIGKILLed %s (the JOBS leader) after %d publishes; the rest took %s, with %d batches; the slowest publish took %s of its %s",
		cl.Nodes[leader].Name, at, time.Since(start).Round(time.Millisecond), batches.Load(),
		time.Duration(slowest.Load()).Round(time.Millisecond), queue.ClusterPublishRetry)
	if newLeader := cl.Leader(t, nc, job.StreamJobs); newLeader == leader {
		t.Errorf("JOBS is still led by the killed %s", cl.Nodes[leader].Name)
	}
	s, err := js.Stream(ctx, job.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != uint64(publishers*each+batches.Load()*batch) {
		t.Errorf("JOBS holds %d messages, want each of the %d jobs once", got, publishers*each+batches.Load()*batch)
	}
	// The killed node comes back and catches up.
	cl.Start(leader)
}

func checkBucketReplicas(ctx context.Context, t *testing.T, js jetstream.JetStream, want int) {
	t.Helper()
	kv, err := js.KeyValue(ctx, queue.ModelsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; got != want {
		t.Errorf("bucket %s has %d replicas, want %d", queue.ModelsBucket, got, want)
	}
}

// TestEnsureStreamsWhileClusterForms creates the R3 topology while one
// node is shut down, as when ingest starts together with its NATS cluster:
// the meta leader refuses to place a replicated stream until every peer
// has reported ("no suitable peers for placement, peer offline"), and
// EnsureStreams retries through that instead of failing, so it finishes
// once the node is back.
func TestEnsureStreamsWhileClusterForms(t *testing.T) {
	cl := testenv.StartNATSCluster(t)
	const down = testenv.ClusterSize - 1
	cl.Stop(down)
	q, ctx := newClient(t, testenv.ConnectNATS(t, cl.NodeURL(0)), 2*time.Minute)
	topo := queue.DefaultTopology()
	topo.Replicas = testenv.ClusterSize
	done := make(chan error, 1)
	go func() { done <- q.EnsureStreams(ctx, topo) }()
	cl.Start(down)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkBucketReplicas(ctx, t, q.JetStream(), testenv.ClusterSize)
}
