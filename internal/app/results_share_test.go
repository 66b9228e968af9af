package app_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
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
