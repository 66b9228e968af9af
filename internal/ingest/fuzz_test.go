package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

const (
	fuzzSecret   = "0123456789abcdef0123456789abcdef-fuzz-secret"
	fuzzMaxText  = 512
	fuzzMaxBody  = 4096
	fuzzTenantID = "fuzz"
)

// checkedPublisher publishes through the real queue after checking that
// the job is one ingest may enqueue: whatever the request, nothing invalid
// reaches the queue.
type checkedPublisher struct {
	q       *queue.Client
	catalog ingest.Catalog
	mu      sync.Mutex
	bad     []string
	n       int
}

func (p *checkedPublisher) Publish(ctx context.Context, j *job.Job, reply string, hdr map[string][]string) (bool, error) {
	var why []string
	t := j.Input.Text
	if t == "" || strings.TrimSpace(t) == "" || !utf8.ValidString(t) || len(t) > fuzzMaxText {
		why = append(why, fmt.Sprintf("text %q", t))
	}
	if _, ok := p.catalog.Lookup(j.Task); !ok || !job.ValidTaskName(j.Task) {
		why = append(why, fmt.Sprintf("task %q", j.Task))
	}
	if !j.Lane.Requestable() {
		why = append(why, fmt.Sprintf("lane %q", j.Lane))
	}
	if j.Tenant != fuzzTenantID || j.ID == "" {
		why = append(why, fmt.Sprintf("tenant %q id %q", j.Tenant, j.ID))
	}
	if j.Options.TopK < 0 || (j.Options.Aggregation != "" && j.Options.Aggregation != "simple" && j.Options.Aggregation != "none") {
		why = append(why, fmt.Sprintf("options %+v", j.Options))
	}
	why = append(why, pairProblems(p.catalog, j)...)
	p.mu.Lock()
	p.n++
	if len(why) > 0 {
		p.bad = append(p.bad, strings.Join(why, ", "))
	}
	p.mu.Unlock()
	if len(why) > 0 {
		return false, fmt.Errorf("invalid job: %s", strings.Join(why, ", "))
	}
	return p.q.Publish(ctx, j, reply, hdr)
}

// published returns how many jobs were published and the invalid ones.
func (p *checkedPublisher) published() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, append([]string(nil), p.bad...)
}

// fuzzAPI is an ingest on real NATS and Redis with small limits.
type fuzzAPI struct {
	h     http.Handler
	pub   *checkedPublisher
	token string
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	n := testenv.StartNATS(tb)
	rd := testenv.StartRedis(tb)
	q, err := queue.New(n.Connect(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		tb.Fatal(err)
	}
	for _, m := range []job.ModelInfo{
		{Task: "sentiment", Kind: "text-classification", Version: "fuzz", MaxLength: 128},
		{Task: "ner", Kind: "token-classification", Version: "fuzz", MaxLength: 128},
		{Task: "rerank", Kind: "text-ranking", Version: "fuzz", MaxLength: 128},
		{Task: "zeroshot", Kind: "zero-shot-classification", Version: "fuzz", MaxLength: 128},
	} {
		if err := q.Announce(ctx, m); err != nil {
			tb.Fatal(err)
		}
	}
	catalog, err := q.WatchModels(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	replies, err := queue.NewReplies(n.Connect(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = replies.Close() })
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: "jetinfer", Audience: "jetinfer", DevHS256Secret: []byte(fuzzSecret)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(fuzzSecret))
	if err != nil {
		tb.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: fuzzTenantID, Scopes: auth.Scopes, TTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	rdb := rd.Client(tb)
	pub := &checkedPublisher{q: q, catalog: catalog}
	api := ingest.New(ingest.Config{MaxBodyBytes: fuzzMaxBody, MaxTextBytes: fuzzMaxText, MaxWait: time.Millisecond},
		ingest.Deps{
			Publisher: pub, Records: store.New(rdb, time.Minute), Replies: replies, Catalog: catalog,
			Verifier: v, Ready: q.Ready,
			Backfills: ingest.BackfillDeps{Store: backfill.NewStore(rdb), Publisher: q, Results: q},
		})
	return &fuzzAPI{h: api.Handler(), pub: pub, token: tok}
}

// serve runs one request and checks what every answer must satisfy: no
// 5xx, a JSON body, an error object with a code and a message on a
// refusal, the field named on every 400 and 413, and nothing invalid
// published.
func (a *fuzzAPI) serve(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	req.Header.Set("Authorization", "Bearer "+a.token)
	before, _ := a.pub.published()
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	after, bad := a.pub.published()
	if len(bad) > 0 {
		t.Fatalf("invalid jobs published: %v", bad)
	}
	// A synchronous call with no worker ends in 504 with its job id: the
	// job was valid and is queued.
	timeout := w.Code == http.StatusGatewayTimeout && strings.Contains(w.Body.String(), `"job_id"`)
	if w.Code >= 500 && !timeout {
		t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, w.Code, w.Body)
	}
	if w.Code/100 == 3 {
		return w // ServeMux redirecting an unclean path
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if w.Code >= 400 {
		var e struct {
			Error ingest.Error `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("status %d with body %q", w.Code, w.Body)
		}
		if (w.Code == http.StatusBadRequest || w.Code == http.StatusRequestEntityTooLarge) && e.Error.Field == "" {
			t.Fatalf("status %d names no field: %s", w.Code, w.Body)
		}
		if after != before && !timeout {
			t.Fatalf("status %d after publishing a job", w.Code)
		}
	} else if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("status %d with body %q", w.Code, w.Body)
	}
	return w
}

var submitSeeds = []string{
	`{"task":"sentiment","input":{"text":"Shares rose."}}`,
	`{"task":"ner","input":{"text":"Diamond Shamrock Corp said"},"lane":"bulk","options":{"aggregation":"none"}}`,
	`{"task":"sentiment","input":{"text":"x"},"options":{"top_k":2,"truncate":true}}`,
	`{"task":"sentiment","input":{"text":"x"},"extra":1}`,
	`{"task":"sentiment","input":{"text":7}}`,
	`{"task":"sentiment","input":{"text":""}}`,
	`{"task":"sentiment","input":{"text":" \t\n"}}`,
	"{\"task\":\"sentiment\",\"input\":{\"text\":\"\xff\xfe\"}}",
	`{"task":"sentiment","input":{"text":"\ud800"}}`,
	`{"task":"nope","input":{"text":"x"}}`,
	`{"task":"jobs.>","input":{"text":"x"}}`,
	`{"task":"sentiment","input":{"text":"x"},"lane":"fast"}`,
	`{"task":"sentiment","input":{"text":"x"},"options":{"top_k":-1}}`,
	`{"task":"sentiment","input":{"text":"x"},"options":{"top_k":1e99}}`,
	`{"task":"sentiment","input":{"text":"x"}}{"task":"sentiment"}`,
	`{"task":"sentiment","input":{"text":"x"}} trailing`,
	`{"task":"sentiment","input":null}`,
	`null`, `[]`, `"x"`, `{`, ``, `{"task":"sentiment","input":{"text":"` + strings.Repeat("é", 300) + `"}}`,
	`{"task":"sentiment","input":{"text":"` + strings.Repeat("é", 300) + `"},"options":{"truncate":true}}`,
	`{"task":"sentiment","input":{"text":"` + strings.Repeat("a", 5000) + `"}}`,
	`{"TASK":"sentiment","Input":{"Text":"case-insensitive keys"}}`,
	`{"task":"sentiment","task":"ner","input":{"text":"duplicate key"}}`,
}

// FuzzSubmitRequest fuzzes the body, the wait parameter and the
// Idempotency-Key of POST /v1/jobs.
func FuzzSubmitRequest(f *testing.F) {
	for i, s := range submitSeeds {
		f.Add([]byte(s), []string{"", "1ms", "5", "-1s", "NaN", "1e300"}[i%6], []string{"", "k1", strings.Repeat("k", 300)}[i%3])
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte, wait, idemKey string) {
		req := httptest.NewRequest("POST", "/v1/jobs?wait="+url.QueryEscape(wait), bytes.NewReader(body))
		if idemKey != "" && !strings.ContainsAny(idemKey, "\r\n\x00") {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		w := a.serve(t, req)
		if w.Code/100 == 2 {
			var rec job.Record
			if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || rec.ID == "" || w.Header().Get("Location") != "/v1/jobs/"+rec.ID {
				t.Fatalf("accepted without a job: %d %s", w.Code, w.Body)
			}
		}
	})
}

// FuzzInferRequest fuzzes the task in the path and the body of POST
// /v1/infer/{task}.
func FuzzInferRequest(f *testing.F) {
	for i, s := range []string{`{"text":"Profits fell."}`, `{"text":"x","options":{"top_k":1}}`, `{"text":""}`,
		`{"text":"x","task":"ner"}`, `{"text":["x"]}`, "{\"text\":\"\xc3\"}", `{}`, `{"text":"x"}{}`} {
		f.Add([]string{"sentiment", "ner", "nope", "..", "a%2Fb"}[i%5], []byte(s), "Prefer: wait=0")
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, task string, body []byte, prefer string) {
		req := httptest.NewRequest("POST", "/v1/infer/x?wait=1ms", bytes.NewReader(body))
		req.URL.Path = "/v1/infer/" + task
		req.URL.RawPath = ""
		if !strings.ContainsAny(prefer, "\r\n\x00") {
			req.Header.Set("Prefer", prefer)
		}
		w := a.serve(t, req)
		if w.Code/100 == 2 {
			t.Fatalf("no worker runs, yet infer answered %d: %s", w.Code, w.Body)
		}
	})
}

// FuzzCreateBackfillRequest fuzzes the body of POST /v1/backfills.
func FuzzCreateBackfillRequest(f *testing.F) {
	for _, s := range []string{`{"task":"ner","name":"reuters-1987"}`, `{"task":"sentiment","options":{"top_k":3}}`,
		`{"task":"nope"}`, `{"task":"ner","name":7}`, `{"task":"ner","unknown":true}`, `{"task":"ner","name":"` + strings.Repeat("n", 300) + `"}`,
		`{"task":"ner","options":{"aggregation":"max"}}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := a.serve(t, httptest.NewRequest("POST", "/v1/backfills", bytes.NewReader(body)))
		if w.Code/100 == 2 && w.Code != http.StatusCreated {
			t.Fatalf("status %d", w.Code)
		}
	})
}

// FuzzJobID fuzzes the job id of GET and DELETE /v1/jobs/{id}: an unknown
// id is a 404, never an error or another tenant's job.
func FuzzJobID(f *testing.F) {
	for _, s := range []string{"abc", "", "..", "*", "{other}:x", "ji:job:{fuzz}:x", strings.Repeat("z", 5000), "\x00"} {
		f.Add(s)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, id string) {
		for _, method := range []string{"GET", "DELETE"} {
			req := httptest.NewRequest(method, "/v1/jobs/x", nil)
			req.URL.Path = "/v1/jobs/" + id
			req.URL.RawPath = ""
			w := a.serve(t, req)
			if w.Code != http.StatusNotFound && w.Code/100 != 3 {
				t.Fatalf("%s /v1/jobs/%q: %d %s", method, id, w.Code, w.Body)
			}
		}
	})
}
