package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestTenantWindowCapLowersJobs: a tenant's max_windows caps every job it
// submits, alone or in a batch, even one asking for more: a news article
// needing many windows comes back truncated with the tenant's count of
// windows; one asking for fewer keeps its own count.
func TestTenantWindowCapLowersJobs(t *testing.T) {
	s := newStack(t)
	const tenantCap = 2
	win := tenantCap
	if _, err := tenant.NewStore(s.redis.Client(t)).Update(context.Background(), "acme", tenant.Patch{MaxWindows: &win}); err != nil {
		t.Fatal(err)
	}
	s.startIngest()
	s.startWorker()

	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "infer", "testdata", "news.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// The whole file is thousands of tokens: many more 512-token windows
	// than the tenant allows, and fewer than the request asks for.
	article := strings.TrimSpace(string(raw))
	submit := func(opts map[string]any) map[string]any {
		t.Helper()
		r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
			"input": map[string]any{"text": article}, "options": opts})
		if r.status != http.StatusAccepted {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		final, _ := s.poll(r.json(t)["id"].(string))
		return final
	}
	truncatedAtCap := func(t *testing.T, final map[string]any) {
		t.Helper()
		res, _ := final["result"].(map[string]any)
		if final["status"] != "succeeded" || res["truncated"] != true || res["windows"] != float64(tenantCap) {
			t.Fatalf("want succeeded, truncated, %d windows; got %v", tenantCap, final)
		}
	}

	t.Run("job asking for more", func(t *testing.T) {
		truncatedAtCap(t, submit(map[string]any{"max_windows": 10}))
	})
	t.Run("job asking for the model's cap", func(t *testing.T) {
		truncatedAtCap(t, submit(nil))
	})
	t.Run("job asking for fewer", func(t *testing.T) {
		final := submit(map[string]any{"max_windows": 1})
		res, _ := final["result"].(map[string]any)
		if final["status"] != "succeeded" || res["truncated"] != true || res["windows"] != nil {
			t.Fatalf("want succeeded, truncated to one row; got %v", final)
		}
	})
	t.Run("batch job", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs/batch", s.token, map[string]any{"jobs": []any{map[string]any{"task": "sentiment",
			"input": map[string]any{"text": article}, "options": map[string]any{"max_windows": 10}}}})
		if r.status != http.StatusAccepted {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		item := r.json(t)["jobs"].([]any)[0].(map[string]any)["job"].(map[string]any)
		final, _ := s.poll(item["id"].(string))
		truncatedAtCap(t, final)
	})
}
