package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

const secret = "0123456789abcdef0123456789abcdef-ingest-secret"

// catalog serves the one task the test announces, as the models bucket
// would once a worker announced it.
type catalog struct{}

func (catalog) Lookup(task string) (job.ModelInfo, bool) {
	return job.ModelInfo{Task: "sentiment", Version: "1"}, task == "sentiment"
}
func (catalog) Models() []job.ModelInfo { return []job.ModelInfo{{Task: "sentiment", Version: "1"}} }

// TestDocumentsFullQueue fills a small JOBS stream mid-upload: the answer
// names the first line not enqueued, every line before it is accounted
// for, and resending from there once the queue drains enqueues each
// document exactly once.
func TestDocumentsFullQueue(t *testing.T) {
	ctx := context.Background()
	nc := testenv.StartNATS(t).Connect(t)
	q, err := queue.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	top := queue.DefaultTopology()
	top.JobsMaxMsgs = 100
	if err := q.EnsureStreams(ctx, top); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.StartRedis(t).Client(t)
	bs := backfill.NewStore(rdb)
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: "jetinfer", Audience: "jetinfer", DevHS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ingest.New(ingest.Config{}, ingest.Deps{
		Records: store.New(rdb, time.Hour), Catalog: catalog{}, Verifier: v, Ready: q.Ready,
		Backfills: ingest.BackfillDeps{Store: bs, Publisher: q, Results: q, Chunk: 64},
	}).Handler())
	defer srv.Close()
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeBackfillsWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, body []byte) (int, ingest.DocumentsResponse, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var a ingest.DocumentsResponse
		_ = json.Unmarshal(data, &a)
		return resp.StatusCode, a, string(data)
	}
	st, _, body := post("/v1/backfills", []byte(`{"task":"sentiment"}`))
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal([]byte(body), &created)

	const n = 250
	var lines [][]byte
	for i := range n {
		lines = append(lines, fmt.Appendf(nil, `{"id":"d%d","text":"Story number %d."}`, i, i))
	}
	status, a, body := post("/v1/backfills/"+created.ID+"/documents", bytes.Join(lines, []byte("\n")))
	if status != http.StatusServiceUnavailable || a.Error == nil || a.Error.Code != "queue_full" || a.NextLine < 2 || a.NextLine > 101 {
		t.Fatalf("want 503 queue_full with next_line, got %d %s", status, body)
	}
	if a.Accepted != a.NextLine-1 {
		t.Fatalf("lines before next_line %d not all accepted: %+v", a.NextLine, a)
	}
	accepted := a.Accepted
	// Drain the queue as a worker would (from the tenant's consumer), then
	// resend from next_line.
	p, err := q.PullTenant(ctx, job.LaneBackfill, "sentiment", "acme", queue.DefaultConsumerConfig(), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	// A document that never arrives fails the test instead of hanging it.
	guard := time.AfterFunc(time.Minute, p.Stop)
	defer guard.Stop()
	drained := 0
	from := a.NextLine
	for from > 0 {
		for drained < int(accepted) {
			m, err := p.Next()
			if err != nil {
				t.Fatal(err)
			}
			if m.Job.Backfill != created.ID || m.Reply != job.ResultsSubject(created.ID) || m.Job.Lane != job.LaneBackfill {
				t.Fatalf("job %+v reply %q", m.Job, m.Reply)
			}
			_ = m.Ack()
			drained++
		}
		status, a, body = post("/v1/backfills/"+created.ID+"/documents", bytes.Join(lines[from-1:], []byte("\n")))
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Fatalf("resend: %d %s", status, body)
		}
		accepted += a.Accepted
		if a.NextLine > 0 {
			from += a.NextLine - 1
		} else {
			from = 0
		}
	}
	b, err := bs.Get(ctx, "acme", created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if accepted != n || b.Submitted != n {
		t.Fatalf("accepted %d, submitted %d, want %d each", accepted, b.Submitted, n)
	}
	// Everything sent again is a duplicate.
	if status, a, body := post("/v1/backfills/"+created.ID+"/documents", bytes.Join(lines, []byte("\n"))); status != http.StatusOK || a.Duplicates != n || a.Accepted != 0 {
		t.Fatalf("re-send: %d %s", status, body)
	}
	if status, _, body := post("/v1/backfills/nope/documents", []byte(strings.Join([]string{`{"id":"x","text":"y"}`}, ""))); status != http.StatusNotFound {
		t.Fatalf("unknown backfill: %d %s", status, body)
	}
}
