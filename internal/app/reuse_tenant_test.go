package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// startWorkerTuned runs a worker serving the sentiment model, with tune
// (when not nil) applied to its configuration, waits until it serves
// (BERT-base takes a while to load on a busy machine), and returns a
// function that stops it (softly) and waits for it to exit.
func (s *stack) startWorkerTuned(tune func(*config.Worker)) (stop func()) {
	t := s.t
	var cfg config.Worker
	defaults(&cfg)
	cfg.NATS.URL = s.natsURL
	cfg.Redis.URL = s.redis.URL()
	cfg.ORTLib = testenv.ORTLib(t)
	cfg.Models = testenv.ModelDir(t, "sentiment")
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.IntraOpThreads = 1
	cfg.Log.Level = "warn"
	// Test receivers listen on loopback over plain http; retries are quick.
	cfg.Webhooks.AllowPrivate, cfg.Webhooks.AllowHTTP = true, true
	cfg.Webhooks.RetryBase, cfg.Webhooks.RetryMax = 100*time.Millisecond, 500*time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	ready := make(chan struct{})
	stop = s.run("worker", func(ctx context.Context) error {
		return app.RunWorker(ctx, cfg, testLogger(t), app.Hooks{Ready: func() { close(ready) }})
	})
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("worker did not become ready")
	}
	return stop
}

// runBackfill creates a backfill of the sentiment task for token's tenant,
// sends texts (ids prefixed by name), seals it and waits for it to complete.
func (s *stack) runBackfill(token, name string, texts []string) progress {
	s.t.Helper()
	r := s.do("POST", "/v1/backfills", token, map[string]any{"task": "sentiment", "name": name})
	if r.status != http.StatusCreated {
		s.t.Fatalf("create %s: %d %s", name, r.status, r.body)
	}
	id := r.json(s.t)["id"].(string)
	var body []byte
	for i, text := range texts {
		line, _ := json.Marshal(map[string]string{"id": fmt.Sprint(name, "-", i), "text": text})
		body = append(append(body, line...), '\n')
	}
	if a := s.sendDocs(id, token, "application/x-ndjson", body); a.Accepted != int64(len(texts)) {
		s.t.Fatalf("%s: documents %+v", name, a)
	}
	if r := s.post("/v1/backfills/"+id+"/seal", token, "application/json", nil); r.status != http.StatusOK {
		s.t.Fatalf("seal %s: %d %s", name, r.status, r.body)
	}
	p := s.awaitBackfill(id, token, func(p progress) bool { return p.State == "completed" })
	if p.Succeeded != int64(len(texts)) {
		s.t.Fatalf("%s completed with %+v", name, p)
	}
	return p
}

// TestReuseScopedByTenant: a tenant's backfill reuses results of texts that
// tenant ran before, never another tenant's (a reused count would tell it
// that some tenant ran that exact text), unless the worker is deployed
// with --reuse-across-tenants.
func TestReuseScopedByTenant(t *testing.T) {
	texts := make([]string, 6)
	for i := range texts {
		texts[i] = fmt.Sprintf("Confidential: company %d will announce a merger with a rival next week.", i)
	}
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			s := newStack(t)
			s.startIngest()
			s.startWorkerTuned(func(c *config.Worker) { c.ReuseAcrossTenants = shared })
			acme := s.issue(t, "acme", auth.ScopeBackfillsWrite)
			globex := s.issue(t, "globex", auth.ScopeBackfillsWrite)

			if p := s.runBackfill(acme, "acme-1", texts); p.Reused != 0 {
				t.Fatalf("first run of distinct texts reused %d", p.Reused)
			}
			want := int64(0)
			if shared {
				want = int64(len(texts))
			}
			if p := s.runBackfill(globex, "globex", texts); p.Reused != want {
				t.Fatalf("another tenant's identical texts: %d reused, want %d", p.Reused, want)
			}
			// The tenant's own cache works either way.
			if p := s.runBackfill(acme, "acme-2", texts); p.Reused != int64(len(texts)) {
				t.Fatalf("the same tenant's identical texts: %d reused, want %d", p.Reused, len(texts))
			}
		})
	}
}
