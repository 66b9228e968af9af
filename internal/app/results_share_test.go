package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// TestResultsShareRefusesOnlyTheTenantOver: acme, whose share of RESULTS
// is one byte, fills it with its first backfill's results and is refused
// more backfill documents (429 results_share_full, naming its use and
// share), while globex, with the default share, is still admitted and its
// backfill completes. Once acme's export is purged, acme is admitted again.
func TestResultsShareRefusesOnlyTheTenantOver(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	one := int64(1)
	if _, err := tenant.NewStore(s.redis.Client(t)).Update(ctx, "acme", tenant.Patch{ResultsMaxBytes: &one}); err != nil {
		t.Fatal(err)
	}
	s.startIngestWith(func(c *config.Ingest) { c.Log.Level = "warn" })
	s.startWorker()
	acme := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	globex := s.issue(t, "globex", auth.ScopeBackfillsWrite)

	// acme's first backfill is admitted (it holds nothing yet) and fills
	// its share.
	first, p := s.completeBackfill(acme, map[string]any{"task": "sentiment"}, archive(0, 5, 5), 5)
	if p.Succeeded != 5 {
		t.Fatalf("acme's first backfill: %+v", p)
	}
	r := s.do("POST", "/v1/backfills", acme, map[string]any{"task": "sentiment"})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	second := r.json(t)["id"].(string)
	// Ingest (and the worker) cache a tenant's use for a second: past it,
	// acme's full share shows.
	time.Sleep(1100 * time.Millisecond)
	refused := s.post("/v1/backfills/"+second+"/documents", acme, "application/x-ndjson", archive(100, 1, 1))
	if refused.status != http.StatusTooManyRequests || !strings.Contains(string(refused.body), `"results_share_full"`) ||
		!strings.Contains(string(refused.body), "its share is 1") || refused.header.Get("Retry-After") == "" {
		t.Fatalf("acme over its share: %d %s (Retry-After %q); want 429 results_share_full", refused.status, refused.body, refused.header.Get("Retry-After"))
	}

	// globex is admitted meanwhile, and its backfill completes.
	if _, p := s.completeBackfill(globex, map[string]any{"task": "sentiment"}, archive(0, 20, 20), 20); p.Succeeded != 20 {
		t.Fatalf("globex's backfill: %+v", p)
	}

	// acme exports its first backfill and purges what it read: it is
	// under its share again.
	req, _ := http.NewRequest("GET", s.url+"/v1/backfills/"+first+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+acme)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	seq, err := strconv.ParseUint(resp.Trailer.Get(ingest.ResultsSeqTrailer), 10, 64)
	if err != nil || seq == 0 {
		t.Fatalf("export of %s: trailer %q: %v", first, resp.Trailer.Get(ingest.ResultsSeqTrailer), err)
	}
	if r := s.do("DELETE", "/v1/backfills/"+first+"/results?through="+strconv.FormatUint(seq, 10), acme, nil); r.status != http.StatusOK {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	if r := s.post("/v1/backfills/"+second+"/documents", acme, "application/x-ndjson", archive(100, 1, 1)); r.status != http.StatusOK {
		t.Fatalf("acme after its purge: %d %s; want admitted", r.status, r.body)
	}
}

// TestOpenAIBatchOverShareCompletes: an OpenAI batch's output is read once
// the batch completes and never purged before, so a worker that held its
// documents for the tenant's share of RESULTS would hold them forever.
// acme uploads a batch of embeddings while no worker serves them, then
// fills its one-byte share with a backfill; once the caches show it full,
// the embedding worker starts: the batch still completes, and its results
// do not count to the share.
func TestOpenAIBatchOverShareCompletes(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	one := int64(1)
	if _, err := tenant.NewStore(s.redis.Client(t)).Update(ctx, "acme", tenant.Patch{ResultsMaxBytes: &one}); err != nil {
		t.Fatal(err)
	}
	if err := s.announce().Announce(ctx, job.ModelInfo{Task: embedTask, Kind: "feature-extraction", Version: "test", MaxLength: 128}); err != nil {
		t.Fatal(err)
	}
	s.startIngestWith(func(c *config.Ingest) { c.Log.Level = "warn" })
	s.startWorker()
	acme := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	lines := make([]string, 20)
	for i := range lines {
		lines[i] = `{"custom_id":"r` + strconv.Itoa(i) + `","method":"POST","url":"/v1/embeddings","body":{"model":"` + embedTask + `","input":"Oil rose on supply fears."}}`
	}
	r := s.uploadBatchFile(t, acme, "batch", lines...)
	var file struct{ ID string }
	if err := json.Unmarshal(r.body, &file); err != nil || r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/openai/v1/batches", acme, map[string]any{"input_file_id": file.ID, "endpoint": "/v1/embeddings", "completion_window": "24h"})
	var batch struct {
		ID, Status    string
		RequestCounts struct{ Total, Completed int } `json:"request_counts"`
	}
	if err := json.Unmarshal(r.body, &batch); err != nil || r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if _, p := s.completeBackfill(acme, map[string]any{"task": "sentiment"}, archive(0, 5, 5), 5); p.Succeeded != 5 {
		t.Fatalf("acme's backfill: %+v", p)
	}
	time.Sleep(1100 * time.Millisecond) // the workers' cached use of acme shows its share full
	s.startWorkerModels("minilm-l6-random-embed")
	deadline := time.Now().Add(60 * time.Second)
	for batch.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("batch over its tenant's share did not complete: %+v", batch)
		}
		time.Sleep(200 * time.Millisecond)
		r = s.do("GET", "/openai/v1/batches/"+batch.ID, acme, nil)
		if err := json.Unmarshal(r.body, &batch); err != nil || r.status != 200 {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
	}
	if batch.RequestCounts.Completed != len(lines) {
		t.Errorf("batch completed with %+v, want %d completed", batch.RequestCounts, len(lines))
	}
	// Only the backfill's results count: the use is what it was.
	use, err := store.New(s.redis.Client(t), time.Hour).ResultsUsage(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if use <= 0 || use > 5*1024 {
		t.Errorf("acme's RESULTS use %d bytes: want the backfill's 5 small results only (20 embeddings are far more)", use)
	}
}
