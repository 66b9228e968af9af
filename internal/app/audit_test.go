package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
)

// auditLines waits until path holds at least n audit lines and returns them.
func auditLines(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		var lines []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("audit line %q: %v", sc.Bytes(), err)
			}
			lines = append(lines, l)
		}
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log holds %d lines, want %d:\n%s", len(lines), n, data)
		}
		time.Sleep(20 * time.Millisecond) // the file offers no signal to wait on
	}
}

// TestAuditLog sends a job, a backfill upload and refused requests through
// an ingest that writes its audit log to a file, behind a trusted proxy
// (loopback), and checks each line's fields; a unique marker in every text
// and path never reaches the log.
func TestAuditLog(t *testing.T) {
	s := newStack(t)
	s.announce("sentiment")
	path := filepath.Join(t.TempDir(), "audit.log")
	s.startIngestWith(func(c *config.Ingest) {
		c.Edge.AuditLog = path
		c.Edge.TrustedProxies = "127.0.0.1/32"
	})
	tok, claims := s.issueClaims(t, "acme", nil, auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeBackfillsWrite)
	readOnly, roClaims := s.issueClaims(t, "acme", nil, auth.ScopeJobsRead)
	marker := "audit-marker-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	send := func(method, path, token, contentType, body string) response {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, s.url+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", contentType)
		// A client's own claim, then the proxy's hop: the hop counts.
		req.Header.Set("X-Forwarded-For", "198.51.100.66, 203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return response{status: resp.StatusCode, body: b.Bytes()}
	}
	jobBody := `{"task":"sentiment","input":{"text":"` + marker + ` shares rose."}}`
	r := send("POST", "/v1/jobs", tok, "application/json", jobBody)
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	jobID := r.json(t)["id"].(string)
	r = send("POST", "/v1/backfills", tok, "application/json", `{"task":"sentiment","name":"`+marker+`"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create backfill: %d %s", r.status, r.body)
	}
	bfID := r.json(t)["id"].(string)
	docs := `{"id":"d1","text":"` + marker + ` one"}` + "\n" + `{"id":"d2","text":"` + marker + ` two"}` + "\n"
	if r = send("POST", "/v1/backfills/"+bfID+"/documents", tok, "application/x-ndjson", docs); r.status != http.StatusOK {
		t.Fatalf("documents: %d %s", r.status, r.body)
	}
	if r = send("POST", "/v1/jobs", readOnly, "application/json", jobBody); r.status != http.StatusForbidden {
		t.Fatalf("read-only submit: %d %s", r.status, r.body)
	}
	if r = send("GET", "/v1/jobs/"+marker+"?q="+marker, "", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	if r = send("GET", "/v1/"+marker, tok, "", ""); r.status != http.StatusNotFound {
		t.Fatalf("no route: %d %s", r.status, r.body)
	}
	if r = send("GET", "/healthz", "", "", ""); r.status != http.StatusOK {
		t.Fatalf("healthz: %d", r.status)
	}

	lines := auditLines(t, path, 6)
	if len(lines) != 6 {
		t.Fatalf("%d audit lines, want 6 (none for /healthz): %v", len(lines), lines)
	}
	want := []map[string]any{
		{"route": "POST /v1/jobs", "status": 202.0, "tenant": "acme", "sub": claims.Subject, "jti": claims.ID, "task": "sentiment", "job_id": jobID, "bytes_in": float64(len(jobBody))},
		{"route": "POST /v1/backfills", "status": 201.0, "tenant": "acme", "jti": claims.ID, "task": "sentiment", "backfill_id": bfID},
		{"route": "POST /v1/backfills/{id}/documents", "status": 200.0, "tenant": "acme", "jti": claims.ID, "task": "sentiment", "backfill_id": bfID, "bytes_in": float64(len(docs))},
		{"route": "POST /v1/jobs", "status": 403.0, "tenant": "acme", "jti": roClaims.ID, "job_id": ""},
		{"route": "GET /v1/jobs/{id}", "status": 401.0, "tenant": "", "jti": ""},
		{"route": "-", "status": 404.0},
	}
	for i, w := range want {
		l := lines[i]
		for k, v := range w {
			if l[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, l[k], v, l)
			}
		}
		if l["client"] != "203.0.113.9" {
			t.Errorf("line %d: client %v, want the trusted proxy's hop 203.0.113.9", i, l["client"])
		}
		for _, k := range []string{"time", "bytes_out", "latency_ms"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %d lacks %s: %v", i, k, l)
			}
		}
		if out, _ := l["bytes_out"].(float64); out <= 0 {
			t.Errorf("line %d: bytes_out %v", i, l["bytes_out"])
		}
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte(marker)) {
		t.Fatalf("request text or path in the audit log:\n%s", data)
	}
}
