package ingest_test

import (
	"bytes"
	"compress/gzip"
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
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// tenantAdmitter admits against the real tenant store, mapping a refusal
// to its reason; the statuses are checked by the application's tests.
type tenantAdmitter struct{ ts *tenant.Store }

func (a tenantAdmitter) Admit(ctx context.Context, id, jti string, docs int64) (ingest.Admission, error) {
	d, err := a.ts.Admit(ctx, id, jti, docs, time.Now())
	if err != nil {
		return ingest.Admission{}, err
	}
	out := ingest.Admission{Allowed: d.Allowed, MaxBodyBytes: d.MaxBodyBytes, Code: d.Reason, Headers: http.Header{}}
	if !d.Allowed {
		out.Status, out.Message = http.StatusTooManyRequests, d.Reason
		if d.Reason == tenant.ReasonTenantDisabled {
			out.Status = http.StatusForbidden
		}
	}
	return out, nil
}

// uploadRig is ingest with backfills on real NATS and Redis, admitting
// against a real tenant store, with chunks of uploadChunk lines.
type uploadRig struct {
	t   *testing.T
	url string
	tok string
	bs  *backfill.Store
	ts  *tenant.Store
}

const uploadChunk = 10

func newUploadRig(t *testing.T, cfg ingest.Config, tn tenant.Tenant) *uploadRig {
	t.Helper()
	ctx := context.Background()
	q, err := queue.New(testenv.StartNATS(t).Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.StartRedis(t).Client(t)
	r := &uploadRig{t: t, bs: backfill.NewStore(rdb), ts: tenant.NewStore(rdb)}
	tn.ID, tn.Enabled = "acme", true
	if _, err := r.ts.Create(ctx, tn); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: "jetinfer", Audience: "jetinfer", DevHS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ingest.New(cfg, ingest.Deps{
		Records: store.New(rdb, time.Hour), Catalog: catalog{}, Verifier: v, Ready: q.Ready,
		Admitter:  tenantAdmitter{ts: r.ts},
		Backfills: ingest.BackfillDeps{Store: r.bs, Publisher: q, Results: q, Chunk: uploadChunk},
	}).Handler())
	t.Cleanup(srv.Close)
	r.url = srv.URL
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if r.tok, _, err = signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeBackfillsWrite}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *uploadRig) post(path string, body io.Reader) (int, ingest.DocumentsResponse, string) {
	r.t.Helper()
	req, _ := http.NewRequest("POST", r.url+path, body)
	req.Header.Set("Authorization", "Bearer "+r.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var a ingest.DocumentsResponse
	_ = json.Unmarshal(data, &a)
	return resp.StatusCode, a, string(data)
}

func (r *uploadRig) create() string {
	r.t.Helper()
	st, _, body := r.post("/v1/backfills", strings.NewReader(`{"task":"sentiment"}`))
	if st != http.StatusCreated {
		r.t.Fatalf("create: %d %s", st, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal([]byte(body), &created)
	return created.ID
}

// docLines are NDJSON documents d<from>..d<from+n-1>, each padded to pad
// bytes of text.
func docLines(from, n, pad int) []byte {
	var b bytes.Buffer
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"id":"d%d","text":"Story %d %s"}`+"\n", i, i, strings.Repeat("x", pad))
	}
	return b.Bytes()
}

// TestDocumentsDecompressedLimit: a small gzip body that expands past the
// upload limit is cut off with 413 naming the limit, and the tenant's body
// limit lowers the server's.
func TestDocumentsDecompressedLimit(t *testing.T) {
	const serverLimit, tenantLimit = 64 << 10, 16 << 10
	for _, tc := range []struct {
		name   string
		tenant tenant.Tenant
		limit  int64
	}{
		{"server", tenant.Tenant{}, serverLimit},
		{"tenant", tenant.Tenant{MaxBodyBytes: tenantLimit}, tenantLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newUploadRig(t, ingest.Config{MaxUploadBytes: serverLimit}, tc.tenant)
			id := r.create()
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			_, _ = zw.Write(docLines(0, 1000, 200)) // about 220 KB
			_ = zw.Close()
			status, a, body := r.post("/v1/backfills/"+id+"/documents", &gz)
			if status != http.StatusRequestEntityTooLarge || a.Error == nil || a.Error.Code != "body_too_large" ||
				!strings.Contains(a.Error.Message, fmt.Sprint(tc.limit)) {
				t.Fatalf("want 413 body_too_large naming %d, got %d %s", tc.limit, status, body)
			}
			// Every line before next_line is accounted for; none after it.
			if a.NextLine < 2 || a.Accepted != a.NextLine-1 || a.Accepted*220 > tc.limit {
				t.Fatalf("accepted %d, next_line %d for a %d-byte limit", a.Accepted, a.NextLine, tc.limit)
			}
			// A body under the limit goes through whole.
			if status, a, body := r.post("/v1/backfills/"+id+"/documents", bytes.NewReader(docLines(5000, 20, 10))); status != http.StatusOK || a.Accepted != 20 {
				t.Fatalf("small body: %d %s", status, body)
			}
		})
	}
}

// TestDocumentsChargeScannedLines: every chunk of lines scanned costs one
// request of the rate limit even when no line is new, and a disabled
// tenant is refused even then.
func TestDocumentsChargeScannedLines(t *testing.T) {
	// Five requests at once, then one per 100s: nothing rests meanwhile.
	r := newUploadRig(t, ingest.Config{}, tenant.Tenant{RatePerSec: 0.01, Burst: 5})
	id := r.create() // 1
	body := docLines(0, uploadChunk, 10)
	// 2 (the request) and 3 (its one chunk).
	if status, a, raw := r.post("/v1/backfills/"+id+"/documents", bytes.NewReader(body)); status != http.StatusOK || a.Accepted != uploadChunk {
		t.Fatalf("first upload: %d %s", status, raw)
	}
	// Five chunks of duplicates: 4 (the request), 5 (the first chunk), and
	// the second chunk finds the limit exhausted.
	dups := bytes.Repeat(body, 5)
	status, a, raw := r.post("/v1/backfills/"+id+"/documents", bytes.NewReader(dups))
	if status != http.StatusTooManyRequests || a.Error == nil || a.Error.Code != tenant.ReasonRateLimited ||
		a.Duplicates != 2*uploadChunk || a.NextLine != uploadChunk+1 {
		t.Fatalf("want 429 after one chunk of duplicates with next_line %d, got %d %s", uploadChunk+1, status, raw)
	}
	if err := r.ts.Disable(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	if status, _, raw := r.post("/v1/backfills/"+id+"/documents", bytes.NewReader(body)); status != http.StatusForbidden {
		t.Fatalf("disabled tenant, nothing new: want 403, got %d %s", status, raw)
	}
}

// TestDocumentsRefusedOnceClosed seals (or cancels) a backfill in the
// middle of a streaming upload: the chunks after it are refused with 409
// naming the state, and a canceled backfill charges no further quota.
func TestDocumentsRefusedOnceClosed(t *testing.T) {
	ctx := context.Background()
	for _, state := range []backfill.State{backfill.StateSealed, backfill.StateCanceled} {
		t.Run(string(state), func(t *testing.T) {
			r := newUploadRig(t, ingest.Config{}, tenant.Tenant{DailyQuota: 1000})
			id := r.create()
			pr, pw := io.Pipe()
			type answer struct {
				status int
				a      ingest.DocumentsResponse
				raw    string
			}
			done := make(chan answer, 1)
			go func() {
				st, a, raw := r.post("/v1/backfills/"+id+"/documents", pr)
				done <- answer{st, a, raw}
			}()
			if _, err := pw.Write(docLines(0, uploadChunk, 10)); err != nil {
				t.Fatal(err)
			}
			// The first chunk is enqueued and marked.
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, err := r.bs.Get(ctx, "acme", id)
				if err == nil && b.Submitted == uploadChunk {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("first chunk not marked: %+v %v", b, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			var err error
			if state == backfill.StateSealed {
				_, err = r.bs.Seal(ctx, "acme", id, time.Now())
			} else {
				_, err = r.bs.Cancel(ctx, "acme", id, time.Now())
			}
			if err != nil {
				t.Fatal(err)
			}
			_, _ = pw.Write(docLines(uploadChunk, 3*uploadChunk, 10))
			_ = pw.Close()
			got := <-done
			if got.status != http.StatusConflict || got.a.Error == nil || got.a.Error.Code != "backfill_not_open" ||
				!strings.Contains(got.a.Error.Message, string(state)) || got.a.Accepted != uploadChunk || got.a.NextLine != uploadChunk+1 {
				t.Fatalf("want 409 naming %s after %d accepted, got %d %s", state, uploadChunk, got.status, got.raw)
			}
			b, err := r.bs.Get(ctx, "acme", id)
			if err != nil || b.Submitted != uploadChunk {
				t.Fatalf("submitted %+v %v, want %d", b, err, uploadChunk)
			}
			u, err := r.ts.Usage(ctx, "acme", time.Now())
			if err != nil || u.Used != uploadChunk {
				t.Fatalf("quota used %d (%v), want only the first chunk's %d", u.Used, err, uploadChunk)
			}
		})
	}
}
