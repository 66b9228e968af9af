package app_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
)

var newsTemplates = []string{
	"Shares of company %d surged after record profit and strong growth.",
	"Company %d warned of heavy losses as the fraud inquiry widened.",
	"Company %d reported quarterly results in line with estimates.",
}

// archive writes n NDJSON documents doc-<from>..; texts repeat every
// distinct documents, as wire stories repeat across archives.
func archive(from, n, distinct int) []byte {
	var b bytes.Buffer
	for i := from; i < from+n; i++ {
		k := i % distinct
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprint("doc-", i),
			"text": fmt.Sprintf(newsTemplates[k%len(newsTemplates)], k), "meta": map[string]any{"n": i}})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (s *stack) post(path, token, contentType string, body []byte) response {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: data}
}

type docsAnswer struct {
	Accepted      int64 `json:"accepted"`
	Duplicates    int64 `json:"duplicates"`
	RejectedTotal int64 `json:"rejected_total"`
	Rejected      []struct {
		Line   int64  `json:"line"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

func (s *stack) sendDocs(id, token, contentType string, body []byte) docsAnswer {
	s.t.Helper()
	r := s.post("/v1/backfills/"+id+"/documents", token, contentType, body)
	if r.status != http.StatusOK {
		s.t.Fatalf("documents: %d %s", r.status, r.body)
	}
	var a docsAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		s.t.Fatal(err)
	}
	return a
}

type progress struct {
	State     string  `json:"state"`
	Submitted int64   `json:"submitted"`
	Succeeded int64   `json:"succeeded"`
	Failed    int64   `json:"failed"`
	Dead      int64   `json:"dead"`
	Canceled  int64   `json:"canceled"`
	Reused    int64   `json:"reused"`
	Pending   int64   `json:"pending"`
	DocsPerS  float64 `json:"docs_per_s"`
}

func (s *stack) progress(id, token string) progress {
	s.t.Helper()
	r := s.do("GET", "/v1/backfills/"+id, token, nil)
	if r.status != http.StatusOK {
		s.t.Fatalf("progress: %d %s", r.status, r.body)
	}
	var p progress
	if err := json.Unmarshal(r.body, &p); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// completeBackfill creates a backfill of create's fields as tok, sends it
// the NDJSON documents docs (n of them, all to be accepted), seals it and
// waits for it to complete; it returns its id and final progress.
func (s *stack) completeBackfill(tok string, create map[string]any, docs []byte, n int) (string, progress) {
	t := s.t
	t.Helper()
	r := s.do("POST", "/v1/backfills", tok, create)
	if r.status != http.StatusCreated {
		t.Fatalf("create backfill: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if a := s.sendDocs(id, tok, "application/x-ndjson", docs); a.Accepted != int64(n) {
		t.Fatalf("documents: %+v", a)
	}
	if r := s.post("/v1/backfills/"+id+"/seal", tok, "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("seal: %d %s", r.status, r.body)
	}
	return id, s.awaitBackfill(id, tok, func(p progress) bool { return p.State == "completed" })
}

// awaitBackfill polls the progress until until says so.
func (s *stack) awaitBackfill(id, token string, until func(progress) bool) progress {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p := s.progress(id, token)
		if until(p) {
			return p
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("backfill %s stuck at %+v", id, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// results reads the export: a map of document id to how many lines named it.
func (s *stack) results(id, token string) (map[string]int, map[string]string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/backfills/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("results: %d %s", resp.StatusCode, b)
	}
	count, status := map[string]int{}, map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			ID     string           `json:"id"`
			Status string           `json:"status"`
			Result json.RawMessage  `json:"result"`
			Meta   struct{ N *int } `json:"meta"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			s.t.Fatalf("result line %q: %v", sc.Bytes(), err)
		}
		count[l.ID]++
		status[l.ID] = l.Status
		if l.Status == "succeeded" && !strings.Contains(string(l.Result), `"labels"`) {
			s.t.Fatalf("result line without labels: %s", sc.Bytes())
		}
		// NDJSON documents carry meta {"n": i} through to their result.
		if n, err := strconv.Atoi(strings.TrimPrefix(l.ID, "doc-")); err == nil && n < 2900 && (l.Meta.N == nil || *l.Meta.N != n) {
			s.t.Fatalf("result line lost its meta: %s", sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		s.t.Fatalf("reading results: %v", err)
	}
	return count, status
}

func TestBackfillEndToEnd(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	stopWorker := s.startWorker()
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)

	if r := s.do("POST", "/v1/backfills", s.token, map[string]any{"task": "sentiment"}); r.status != http.StatusForbidden {
		t.Fatalf("create without backfills:write: %d", r.status)
	}
	if r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "nope"}); r.status != http.StatusBadRequest {
		t.Fatalf("unknown task: %d %s", r.status, r.body)
	}
	r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment", "name": "reuters-1987"})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if r.header.Get("Location") != "/v1/backfills/"+id {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
	other := s.issue(t, "globex", auth.ScopeBackfillsWrite)
	if r := s.do("GET", "/v1/backfills/"+id, other, nil); r.status != http.StatusNotFound {
		t.Fatalf("other tenant sees the backfill: %d", r.status)
	}

	const n, distinct = 3000, 150
	// Part one, plain NDJSON, with bad lines and an id repeated in the body.
	part1 := archive(0, 1500, distinct)
	bad := "{\"id\":\"x\"}\nnot json\n{\"id\":\"doc-3\",\"text\":\"repeat of doc-3 in the same body\"}\n{\"id\":\"y\",\"text\":\"\"}\n"
	body1 := append(append([]byte{}, part1...), bad...)
	a := s.sendDocs(id, tok, "application/x-ndjson", body1)
	if a.Accepted != 1500 || a.Duplicates != 1 || a.RejectedTotal != 3 || len(a.Rejected) != 3 {
		t.Fatalf("part one: %+v", a)
	}
	if a.Rejected[0].Line != 1501 || a.Rejected[1].Line != 1502 || a.Rejected[2].Line != 1504 {
		t.Fatalf("rejected lines %+v", a.Rejected)
	}
	// Part two, gzipped; then part one again, as after an interruption.
	if a := s.sendDocs(id, tok, "application/x-ndjson", gzipped(t, archive(1500, 1400, distinct))); a.Accepted != 1400 || a.RejectedTotal != 0 {
		t.Fatalf("part two: %+v", a)
	}
	if a := s.sendDocs(id, tok, "application/x-ndjson", part1); a.Accepted != 0 || a.Duplicates != 1500 {
		t.Fatalf("re-sent part one: %+v", a)
	}
	// Part three, CSV.
	var csv strings.Builder
	csv.WriteString("id,text\n")
	for i := 2900; i < n; i++ {
		k := i % distinct
		fmt.Fprintf(&csv, "doc-%d,\"%s\"\n", i, fmt.Sprintf(newsTemplates[k%len(newsTemplates)], k))
	}
	if a := s.sendDocs(id, tok, "text/csv", []byte(csv.String())); a.Accepted != n-2900 {
		t.Fatalf("csv: %+v", a)
	}

	if r := s.post("/v1/backfills/"+id+"/seal", tok, "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("seal: %d %s", r.status, r.body)
	}
	if a := s.post("/v1/backfills/"+id+"/documents", tok, "application/x-ndjson", archive(n, 1, 1)); a.status != http.StatusConflict {
		t.Fatalf("documents after seal: %d %s", a.status, a.body)
	}
	p := s.awaitBackfill(id, tok, func(p progress) bool { return p.State == "completed" })
	t.Logf("completed: %+v", p)
	if p.Submitted != n || p.Succeeded+p.Failed+p.Dead != n || p.Pending != 0 || p.Succeeded != n {
		t.Fatalf("completed with %+v", p)
	}
	if p.Reused < n/2 {
		t.Fatalf("only %d of %d documents reused with %d distinct texts", p.Reused, n, distinct)
	}
	if p.DocsPerS <= 0 {
		t.Fatalf("no rate: %+v", p)
	}

	count, status := s.results(id, tok)
	if len(count) != n {
		t.Fatalf("%d documents in the export, want %d", len(count), n)
	}
	for i := range n {
		doc := fmt.Sprint("doc-", i)
		if count[doc] != 1 || status[doc] != "succeeded" {
			t.Fatalf("%s: %d lines, status %q", doc, count[doc], status[doc])
		}
	}
	// No job record per document lives in Redis.
	rdb := s.redis.Client(t)
	if keys, _ := rdb.Keys(context.Background(), "ji:job:*").Result(); len(keys) != 0 {
		t.Fatalf("%d job records in Redis, e.g. %s", len(keys), keys[0])
	}

	t.Run("cancel", func(t *testing.T) {
		stopWorker()
		r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment"})
		id := r.json(t)["id"].(string)
		if a := s.sendDocs(id, tok, "application/x-ndjson", archive(0, 500, 500)); a.Accepted != 500 {
			t.Fatalf("%+v", a)
		}
		r = s.do("DELETE", "/v1/backfills/"+id, tok, nil)
		if r.status != http.StatusOK || r.json(t)["state"] != "canceled" {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		if a := s.post("/v1/backfills/"+id+"/documents", tok, "application/x-ndjson", archive(500, 1, 1)); a.status != http.StatusConflict {
			t.Fatalf("documents after cancel: %d", a.status)
		}
		s.startWorker()
		p := s.awaitBackfill(id, tok, func(p progress) bool { return p.Pending == 0 })
		if p.State != "canceled" || p.Canceled != 500 || p.Succeeded != 0 {
			t.Fatalf("after cancel: %+v", p)
		}
		if count, _ := s.results(id, tok); len(count) != 0 {
			t.Fatalf("%d results for a backfill canceled before it ran", len(count))
		}
	})
}
