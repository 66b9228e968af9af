package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// TestExportsCappedPerTenant: following exports hold their slot while they
// stream. A tenant capped at one export is refused a second (429 naming the
// limit, with Retry-After) until its first ends; a tenant without a cap
// runs up to the server's ceiling.
func TestExportsCappedPerTenant(t *testing.T) {
	s := newStack(t)
	s.createTenant(tenant.Tenant{ID: "capped", Enabled: true, MaxExports: 1})
	s.announce("sentiment")
	s.startIngestWith(func(c *config.Ingest) { c.MaxExportsPerTenant = 2 })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	export := func(tok, id string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", s.url+"/v1/backfills/"+id+"/results", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	refused := func(resp *http.Response, limit string) {
		t.Helper()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("an export over the limit was served") // its body would stream on
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("export over the limit: %d (Retry-After %q) %s, want 429 with Retry-After 5", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		r := response{status: resp.StatusCode, body: body}
		if e := errorOf(t, r); e["code"] != "too_many_exports" || !strings.Contains(fmt.Sprint(e["message"]), " "+limit+" ") {
			t.Fatalf("refusal %s, want too_many_exports naming the limit %s", body, limit)
		}
	}
	backfillOf := func(tok string) string {
		t.Helper()
		r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment"})
		if r.status != http.StatusCreated {
			t.Fatalf("create backfill: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	capped := s.issue(t, "capped", auth.ScopeBackfillsWrite)
	cappedBF := backfillOf(capped)
	first := export(capped, cappedBF)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first export: %d", first.StatusCode)
	}
	refused(export(capped, cappedBF), "1")

	acme := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	acmeBF := backfillOf(acme)
	for range 2 {
		if r := export(acme, acmeBF); r.StatusCode != http.StatusOK {
			t.Fatalf("export under the server's ceiling: %d", r.StatusCode)
		}
	}
	refused(export(acme, acmeBF), "2")

	// The first export ends when its client leaves: its slot is free again.
	first.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := export(capped, cappedBF)
		if r.StatusCode == http.StatusOK {
			break
		}
		r.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("export after the first ended: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond) // the server notices the client left on its next read
	}
}
