package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// A Redis outage far longer than the jobs' redelivery budget (MaxDeliver 2,
// so one nak would have spent it) delays jobs but kills none: the worker
// holds its batch and retries the store in place, and every job succeeds on
// its first delivery once Redis is back.
func TestLongRedisOutageSpendsNoDelivery(t *testing.T) {
	s := newStack(t)
	q := s.announce()
	var cfg config.Worker
	defaults(&cfg)
	cfg.NATS.URL, cfg.Redis.URL = s.nats.URL(), s.redis.URL()
	cfg.ORTLib, cfg.Models = testenv.ORTLib(t), testenv.ModelDir(t, "sentiment")
	cfg.HTTPAddr, cfg.IntraOpThreads, cfg.Log.Level = "127.0.0.1:0", 1, "error"
	cfg.MaxDeliver, cfg.AckWait = 2, 2*time.Second
	addr := make(chan string, 1)
	ready := make(chan struct{})
	s.run("worker", func(ctx context.Context) error {
		return app.RunWorker(ctx, cfg, testLogger(t), app.Hooks{Listening: func(a string) { addr <- a }, Ready: func() { close(ready) }})
	})
	workerURL := "http://" + <-addr
	<-ready

	s.redis.Stop()
	t0 := time.Now()
	const n = 8
	ctx := context.Background()
	for i := range n {
		j := &job.Job{ID: fmt.Sprintf("outage-%d", i), Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive,
			Input: job.Input{Text: "Profits rose sharply."}, Created: time.Now().UTC()}
		if _, err := q.Publish(ctx, j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	// Hold Redis down until the worker has retried the store a few times:
	// each try waits out go-redis's own dial retries, so this is several
	// seconds, past the ack wait and past the one nak (1 s) that would
	// have spent the budget.
	deadline := time.Now().Add(30 * time.Second)
	for storeRetries(t, workerURL) < 3 || time.Since(t0) < 2*cfg.AckWait {
		if time.Now().After(deadline) {
			t.Fatal("the worker never retried the store")
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := time.Since(t0)
	s.redis.Start()

	t.Logf("Redis was down for %s", held.Round(time.Millisecond))
	st := store.New(s.redis.Client(t), time.Hour)
	for i := range n {
		id := fmt.Sprintf("outage-%d", i)
		for {
			rec, err := st.Get(ctx, "acme", id)
			if err == nil && rec.Status.Final() {
				if rec.Status != job.StatusSucceeded || rec.Attempts != 1 {
					t.Fatalf("job %s ended %s after %d attempts (%+v), want succeeded on the first", id, rec.Status, rec.Attempts, rec.Error)
				}
				break
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Logf("get %s: %v", id, err)
			}
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatalf("job %s not final: %+v %v", id, rec, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func storeRetries(t *testing.T, workerURL string) float64 {
	text := scrape(t, workerURL)
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "jetinfer_worker_store_retries_total") {
			return value(t, text, strings.Fields(l)[0])
		}
	}
	return 0
}

// A restarted Redis answers LOADING while it reads its data set back (the
// second `make run` after a large backfill): ingest and a worker started
// meanwhile wait for it instead of failing, and then serve.
func TestStartWaitsForLoadingRedis(t *testing.T) {
	s := newStack(t)
	s.redis.RestartLoading(2000, 400*time.Microsecond) // about 0.8 s of LOADING
	s.startIngest()
	s.startWorker()
	r := s.do("POST", "/v1/infer/sentiment", s.token, map[string]any{"text": "Profits rose sharply."})
	if r.status != 200 {
		t.Fatalf("sync call after a loading start: %d %s", r.status, r.body)
	}
}
