package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

func init() {
	// NDJSON bodies are documented as arrays whose items are the lines.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson",
		func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			var lines []any
			sc := bufio.NewScanner(r)
			sc.Buffer(nil, 4<<20)
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue
				}
				var v any
				if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
					return nil, fmt.Errorf("line %d: %w", len(lines)+1, err)
				}
				lines = append(lines, v)
			}
			return lines, sc.Err()
		})
}

// contract checks exchanges with a running ingest against the OpenAPI
// document: every response (status, headers, body) and every request
// meant to be valid must conform, and it records which operations and
// statuses were exercised.
type contract struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string][]int // "METHOD /path" → statuses
}

func newContract(t *testing.T, baseURL string) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(ingest.OpenAPI)
	if err != nil {
		t.Fatalf("load OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("document is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("OpenAPI document is invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: baseURL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, doc: doc, router: router, seen: map[string][]int{}}
}

// exchange is one request to make.
type exchange struct {
	method, path, token string
	body                any // string, []byte or a value to marshal
	header              map[string]string
	// invalid marks a request built to break the contract (unknown field,
	// over-long text...): only its response is checked.
	invalid bool
}

// do sends x to the stack and validates it; it returns the response.
func (c *contract) do(s *stack, x exchange) response {
	c.t.Helper()
	var data []byte
	switch b := x.body.(type) {
	case nil:
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		data, _ = json.Marshal(b)
	}
	newReq := func() *http.Request {
		req, err := http.NewRequest(x.method, s.url+x.path, bytes.NewReader(data))
		if err != nil {
			c.t.Fatal(err)
		}
		if x.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if x.token != "" {
			req.Header.Set("Authorization", "Bearer "+x.token)
		}
		for k, v := range x.header {
			req.Header.Set(k, v)
		}
		return req
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		c.t.Fatalf("%s %s: %v", x.method, x.path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: body}

	req := newReq()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: not in the OpenAPI document: %v", x.method, x.path, err)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if !x.invalid {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			c.t.Errorf("%s %s: request does not match the document: %v", x.method, x.path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("%s %s → %d: response does not match the document: %v\nbody: %.600s", x.method, x.path, r.status, err, body)
	}
	c.mu.Lock()
	key := route.Method + " " + route.Path
	if !slices.Contains(c.seen[key], r.status) {
		c.seen[key] = append(c.seen[key], r.status)
	}
	c.mu.Unlock()
	return r
}

// expect is do that also checks the status.
func (c *contract) expect(s *stack, status int, x exchange) response {
	c.t.Helper()
	r := c.do(s, x)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", x.method, x.path, r.status, status, r.body)
	}
	return r
}

// covered fails unless every operation of the document was exercised with
// a success status and with an error status.
func (c *contract) covered() {
	c.t.Helper()
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			key := method + " " + path
			sts := c.seen[key]
			ok := slices.ContainsFunc(sts, func(s int) bool { return s < 300 })
			if !ok {
				c.t.Errorf("%s: no successful exchange checked (statuses seen %v)", key, sts)
			}
			if strings.HasPrefix(path, "/v1/") && !slices.ContainsFunc(sts, func(s int) bool { return s >= 400 }) {
				c.t.Errorf("%s: no error exchange checked (statuses seen %v)", key, sts)
			}
		}
	}
}

// TestOpenAPIContract drives every route of the real ingest, successes and
// errors, and validates each request and response against /openapi.json.
func TestOpenAPIContract(t *testing.T) {
	s := newStack(t)
	s.announce("ner") // served by no worker: its jobs stay queued
	s.createTenant(tenant.Tenant{ID: "tiny", Enabled: true, DailyQuota: 1})
	s.startIngestWith(func(c *config.Ingest) {
		c.MaxTextBytes = 2048
		c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true
	})
	s.startWorkerModels("sentiment", crossEncoderDir)
	c := newContract(t, s.url)

	all := s.issue(t, "acme", auth.Scopes...)
	readOnly := s.issue(t, "acme", auth.ScopeJobsRead)
	tiny := s.issue(t, "tiny", auth.Scopes...)
	text := map[string]any{"text": "Shares surged after record profits."}
	submit := map[string]any{"task": "sentiment", "input": text}

	// Served document: the embedded bytes, as JSON.
	r := c.expect(s, 200, exchange{method: "GET", path: "/openapi.json"})
	if !bytes.Equal(r.body, ingest.OpenAPI) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json serves something else (%s)", r.header.Get("Content-Type"))
	}
	c.expect(s, 200, exchange{method: "GET", path: "/healthz"})
	c.expect(s, 200, exchange{method: "GET", path: "/readyz"})

	// Jobs.
	r = c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: all, body: submit})
	id := r.json(t)["id"].(string)
	r = c.expect(s, 200, exchange{method: "POST", path: "/v1/jobs?wait=20s", token: all,
		body: map[string]any{"task": "sentiment", "input": text, "lane": "bulk", "options": map[string]any{"top_k": 2}}})
	if labels := r.json(t)["result"].(map[string]any)["labels"].([]any); len(labels) != 2 {
		t.Fatalf("top_k 2 gave %d labels", len(labels))
	}
	c.expect(s, 200, exchange{method: "POST", path: "/v1/jobs", token: all, body: submit, header: map[string]string{"Prefer": "wait=20"}})
	c.expect(s, 200, exchange{method: "POST", path: "/v1/infer/sentiment", token: all, body: text})
	final, _ := s.poll(id)
	if final["status"] != "succeeded" {
		t.Fatalf("job %s: %v", id, final)
	}
	c.expect(s, 200, exchange{method: "GET", path: "/v1/jobs/" + id, token: all})
	c.expect(s, 409, exchange{method: "DELETE", path: "/v1/jobs/" + id, token: all})
	r = c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: all, body: map[string]any{"task": "ner", "input": text}})
	queuedID := r.json(t)["id"].(string)
	c.expect(s, 200, exchange{method: "DELETE", path: "/v1/jobs/" + queuedID, token: all})
	c.expect(s, 404, exchange{method: "GET", path: "/v1/jobs/nope", token: all})
	c.expect(s, 404, exchange{method: "DELETE", path: "/v1/jobs/nope", token: all})
	c.expect(s, 401, exchange{method: "GET", path: "/v1/jobs/" + id})
	c.expect(s, 403, exchange{method: "DELETE", path: "/v1/jobs/" + id, token: readOnly})
	c.expect(s, 504, exchange{method: "POST", path: "/v1/infer/ner?wait=50ms", token: all, body: text})

	// Pairs: rerank (Cohere and Jina shapes), a rerank job, tokenize.
	c.expect(s, 200, exchange{method: "POST", path: "/v1/rerank", token: all, body: map[string]any{"model": crossEncoderTask,
		"query": "oil", "documents": []any{"Oil rose.", map[string]any{"text": "Stocks fell."}}, "top_n": 1, "return_documents": true}})
	c.expect(s, 400, exchange{method: "POST", path: "/v1/rerank", token: all, body: map[string]any{"model": crossEncoderTask, "query": "oil", "documents": []string{}}, invalid: true})
	c.expect(s, 200, exchange{method: "POST", path: "/v2/rerank", token: all, body: map[string]any{"model": crossEncoderTask, "query": "oil", "documents": []string{"Oil rose.", "Stocks fell."}, "top_n": 2}})
	c.expect(s, 400, exchange{method: "POST", path: "/v2/rerank", token: all, body: map[string]any{"model": "nope", "query": "oil", "documents": []string{"x"}}})
	c.expect(s, 403, exchange{method: "POST", path: "/v1/rerank", token: readOnly, body: map[string]any{"model": crossEncoderTask, "query": "oil", "documents": []string{"x"}}})
	c.expect(s, 200, exchange{method: "POST", path: "/v1/jobs?wait=20s", token: all, body: map[string]any{"task": crossEncoderTask,
		"input": map[string]any{"text": "oil", "documents": []string{"Oil rose.", "Stocks fell."}}, "options": map[string]any{"top_n": 1}}})
	c.expect(s, 200, exchange{method: "POST", path: "/v1/infer/" + crossEncoderTask, token: all, body: map[string]any{"text": "oil", "text_pair": "Oil rose."}})
	c.expect(s, 200, exchange{method: "POST", path: "/v1/tokenize/sentiment", token: all, body: map[string]any{"text": "Oil rose.", "texts": []string{"Stocks fell."}, "return_tokens": true}})
	c.expect(s, 400, exchange{method: "POST", path: "/v1/tokenize/sentiment", token: all, body: map[string]any{}})

	// Idempotency: same key and body → the same job; another body → 409.
	key := map[string]string{"Idempotency-Key": "order-17"}
	r1 := c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: all, body: submit, header: key})
	r2 := c.do(s, exchange{method: "POST", path: "/v1/jobs", token: all, body: submit, header: key})
	if r2.status/100 != 2 || r1.json(t)["id"] != r2.json(t)["id"] {
		t.Fatalf("same key, same body: %d %s, then %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	r = c.expect(s, 409, exchange{method: "POST", path: "/v1/jobs", token: all, header: key,
		body: map[string]any{"task": "sentiment", "input": map[string]any{"text": "Another text."}}})
	if errorOf(t, r)["code"] != "idempotency_conflict" {
		t.Fatalf("%s", r.body)
	}
	c.expect(s, 409, exchange{method: "POST", path: "/v1/infer/sentiment", token: all, header: key,
		body: map[string]any{"text": "Yet another text."}})

	// Batches: every job queued and run; a retry with the same key names
	// the same jobs; the key with another body is a conflict; an invalid
	// job refuses the whole batch, naming it; the quota counts every job.
	batch := map[string]any{"jobs": []any{submit, map[string]any{"task": "sentiment", "input": map[string]any{"text": "Losses widened."}, "lane": "bulk"}, submit}}
	bkey := map[string]string{"Idempotency-Key": "batch-3"}
	r = c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs/batch", token: all, body: batch, header: bkey})
	var br ingest.BatchResponse
	if err := json.Unmarshal(r.body, &br); err != nil || br.Accepted != 3 || br.Failed != 0 || len(br.Jobs) != 3 {
		t.Fatalf("batch: %v %s", err, r.body)
	}
	r = c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs/batch", token: all, body: batch, header: bkey})
	var again ingest.BatchResponse
	if err := json.Unmarshal(r.body, &again); err != nil || again.Accepted != 3 {
		t.Fatalf("batch retry: %v %s", err, r.body)
	}
	for i, it := range br.Jobs {
		if it.Job == nil || again.Jobs[i].Job == nil || it.Job.ID != again.Jobs[i].Job.ID {
			t.Fatalf("batch retry named other jobs: %s", r.body)
		}
		if final, _ := s.poll(it.Job.ID); final["status"] != "succeeded" {
			t.Fatalf("batch job %d: %v", i, final)
		}
	}
	if br.Jobs[0].Job.ID == br.Jobs[2].Job.ID || br.Jobs[1].Job.Lane != job.LaneBulk {
		t.Fatalf("batch jobs: %s", r.body)
	}
	r = c.expect(s, 409, exchange{method: "POST", path: "/v1/jobs/batch", token: all, header: bkey,
		body: map[string]any{"jobs": []any{map[string]any{"task": "sentiment", "input": map[string]any{"text": "Something else."}}}}})
	if errorOf(t, r)["code"] != "idempotency_conflict" {
		t.Fatalf("%s", r.body)
	}
	for body, field := range map[string]string{
		`{"jobs":[{"task":"sentiment","input":{"text":"ok"}},{"task":"sentiment","input":{"text":""}}]}`: "jobs[1].input.text",
		`{"jobs":[]}`: "jobs",
		`{"jobs":[{"task":"sentiment","input":{"text":"ok"}}],"wait":1}`: "wait",
	} {
		if got := errorOf(t, c.expect(s, 400, exchange{method: "POST", path: "/v1/jobs/batch", token: all, body: body, invalid: true}))["field"]; got != field {
			t.Errorf("batch %s: field %v, want %s", body, got, field)
		}
	}
	c.expect(s, 400, exchange{method: "POST", path: "/v1/jobs/batch?wait=1s", token: all, body: batch, invalid: true})
	c.expect(s, 429, exchange{method: "POST", path: "/v1/jobs/batch", token: tiny, body: batch})
	c.expect(s, 403, exchange{method: "POST", path: "/v1/jobs/batch", token: readOnly, body: batch})

	// Strict input, each error naming the field.
	bad := []struct {
		path   string
		body   any
		status int
		field  string
	}{
		{"/v1/jobs", `{"task":"sentiment","input":{"text":"x"},"priority":1}`, 400, "priority"},
		{"/v1/jobs", `{"task":"sentiment","input":{"text":7}}`, 400, "input.text"},
		{"/v1/jobs", `{"task":"sentiment","input":{"text":""}}`, 400, "input.text"},
		{"/v1/jobs", "{\"task\":\"sentiment\",\"input\":{\"text\":\"bad \xff byte\"}}", 400, "input.text"},
		{"/v1/jobs", `{"task":"summarize","input":{"text":"x"}}`, 400, "task"},
		{"/v1/jobs", `{"task":"sentiment","input":{"text":"x"},"lane":"fast"}`, 400, "lane"},
		{"/v1/jobs", `{"task":"sentiment","input":{"text":"x"},"options":{"top_k":-1}}`, 400, "options.top_k"},
		{"/v1/jobs", `{"task":"sentiment","input":{"text":"x"}} {}`, 400, "body"},
		{"/v1/jobs", `{"task":`, 400, "body"},
		{"/v1/jobs", map[string]any{"task": "sentiment", "input": map[string]any{"text": strings.Repeat("a", 3000)}}, 413, "input.text"},
		{"/v1/jobs", map[string]any{"task": "sentiment", "input": map[string]any{"text": strings.Repeat("a", 2<<20)}}, 413, "body"},
		{"/v1/infer/sentiment", `{"text":"x","task":"sentiment"}`, 400, "task"},
		{"/v1/infer/sentiment", `{"text":"   "}`, 400, "text"},
		{"/v1/infer/nope", `{"text":"x"}`, 400, "task"},
		{"/v1/infer/sentiment", map[string]any{"text": strings.Repeat("é", 2000)}, 413, "text"},
	}
	for _, b := range bad {
		r := c.expect(s, b.status, exchange{method: "POST", path: b.path, token: all, body: b.body, invalid: true})
		if e := errorOf(t, r); e["field"] != b.field {
			t.Errorf("%s %.60v: field %v, want %q (%s)", b.path, b.body, e["field"], b.field, r.body)
		}
	}
	r = c.expect(s, 400, exchange{method: "POST", path: "/v1/jobs", token: all, invalid: true,
		body: map[string]any{"task": "nope", "input": text}})
	if tasks, _ := errorOf(t, r)["tasks"].([]any); !slices.Contains(tasks, any("sentiment")) {
		t.Fatalf("unknown task does not list the tasks: %s", r.body)
	}
	// options.truncate cuts over-long text on a character boundary instead.
	long := strings.Repeat("Profits soared. ", 100) + "é" + strings.Repeat("x", 1000)
	r = c.expect(s, 200, exchange{method: "POST", path: "/v1/infer/sentiment", token: all,
		body: map[string]any{"text": long, "options": map[string]any{"truncate": true}}})
	if r.json(t)["status"] != "succeeded" {
		t.Fatalf("truncated job: %s", r.body)
	}
	c.expect(s, 403, exchange{method: "POST", path: "/v1/jobs", token: readOnly, body: submit})
	c.expect(s, 401, exchange{method: "POST", path: "/v1/infer/sentiment", token: "x.y.z", body: text})
	c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: tiny, body: submit})
	c.expect(s, 429, exchange{method: "POST", path: "/v1/jobs", token: tiny, body: submit})
	c.expect(s, 429, exchange{method: "POST", path: "/v1/infer/sentiment", token: tiny, body: text})

	c.expect(s, 200, exchange{method: "GET", path: "/v1/models", token: readOnly})
	c.expect(s, 401, exchange{method: "GET", path: "/v1/models"})

	// Backfills.
	r = c.expect(s, 201, exchange{method: "POST", path: "/v1/backfills", token: all,
		body: map[string]any{"task": "sentiment", "name": "reuters-1987"}})
	bf := r.json(t)["id"].(string)
	c.expect(s, 400, exchange{method: "POST", path: "/v1/backfills", token: all, invalid: true, body: map[string]any{"task": "nope"}})
	c.expect(s, 403, exchange{method: "POST", path: "/v1/backfills", token: readOnly, body: map[string]any{"task": "sentiment"}})
	ndjson := map[string]string{"Content-Type": "application/x-ndjson"}
	docs := `{"id":"d1","text":"Profits rose."}` + "\n" + `{"id":"d2","text":""}` + "\n" + `{"id":"d3","text":"Losses widened."}` + "\n"
	r = c.expect(s, 200, exchange{method: "POST", path: "/v1/backfills/" + bf + "/documents", token: all, body: docs, header: ndjson, invalid: true})
	if m := r.json(t); m["accepted"] != 2.0 || m["rejected_total"] != 1.0 {
		t.Fatalf("documents: %s", r.body)
	}
	r = c.expect(s, 200, exchange{method: "POST", path: "/v1/backfills/" + bf + "/documents", token: all, header: ndjson,
		body: `{"id":"d3","text":"Losses widened."}` + "\n" + `{"id":"d4","text":"Sales were flat.","meta":{"src":"rcv1"}}` + "\n"})
	if m := r.json(t); m["accepted"] != 1.0 || m["duplicates"] != 1.0 {
		t.Fatalf("documents again: %s", r.body)
	}
	c.expect(s, 404, exchange{method: "POST", path: "/v1/backfills/nope/documents", token: all, body: docs, header: ndjson, invalid: true})
	c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills/" + bf, token: all})
	c.expect(s, 404, exchange{method: "GET", path: "/v1/backfills/nope", token: all})
	c.expect(s, 200, exchange{method: "POST", path: "/v1/backfills/" + bf + "/seal", token: all})
	c.expect(s, 409, exchange{method: "POST", path: "/v1/backfills/" + bf + "/documents", token: all, body: docs, header: ndjson, invalid: true})
	c.expect(s, 404, exchange{method: "POST", path: "/v1/backfills/nope/seal", token: all})
	c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills/" + bf + "/results?follow=false", token: all})
	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills/" + bf + "/results?follow=false&after=0&limit=1", token: all})
	if lines := bytes.Count(r.body, []byte("\n")); lines != 1 || r.trailer.Get(ingest.ResultsSeqTrailer) == "" {
		t.Fatalf("a one-result step gave %d lines and trailer %v", lines, r.trailer)
	}
	c.expect(s, 400, exchange{method: "GET", path: "/v1/backfills/" + bf + "/results?after=-1", token: all, invalid: true})
	c.expect(s, 400, exchange{method: "GET", path: "/v1/backfills/" + bf + "/results?limit=0", token: all, invalid: true})
	c.expect(s, 404, exchange{method: "GET", path: "/v1/backfills/nope/results", token: all})
	c.expect(s, 200, exchange{method: "DELETE", path: "/v1/backfills/" + bf + "/results?through=" + r.trailer.Get(ingest.ResultsSeqTrailer), token: all})
	c.expect(s, 400, exchange{method: "DELETE", path: "/v1/backfills/" + bf + "/results", token: all, invalid: true})
	c.expect(s, 404, exchange{method: "DELETE", path: "/v1/backfills/nope/results?through=1", token: all})
	r = c.expect(s, 201, exchange{method: "POST", path: "/v1/backfills", token: all, body: map[string]any{"task": "ner"}})
	c.expect(s, 200, exchange{method: "DELETE", path: "/v1/backfills/" + r.json(t)["id"].(string), token: all})
	c.expect(s, 404, exchange{method: "DELETE", path: "/v1/backfills/nope", token: all})

	// Dead letters.
	c.expect(s, 200, exchange{method: "GET", path: "/v1/dlq", token: all})
	c.expect(s, 400, exchange{method: "GET", path: "/v1/dlq?limit=0", token: all, invalid: true})
	c.expect(s, 400, exchange{method: "GET", path: "/v1/dlq?limit=501", token: all, invalid: true})
	c.expect(s, 400, exchange{method: "GET", path: "/v1/dlq?after=page-2", token: all, invalid: true})
	c.expect(s, 404, exchange{method: "POST", path: "/v1/dlq/nope/replay", token: all})
	c.expect(s, 403, exchange{method: "POST", path: "/v1/dlq/nope/replay", token: readOnly})
	replayDeadLetter(t, s, c, all)
	webhookRoutes(t, s, c, all, readOnly)

	consoleRoutes(t, s, c, all, readOnly, tiny)
	backfillWebhookRoutes(t, s, c, all)

	c.covered()
}

// replayDeadLetter makes a job die (its input is refused by the model) and
// replays it through the API.
func replayDeadLetter(t *testing.T, s *stack, c *contract, token string) {
	t.Helper()
	r := c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: token,
		body: map[string]any{"task": "sentiment", "input": map[string]any{"text": strings.Repeat("up ", 600)},
			"options": map[string]any{"long_input": "error"}}})
	id := r.json(t)["id"].(string)
	final, _ := s.poll(id)
	if final["status"] != "dead" {
		t.Logf("an over-long input ended %v, not dead; the replay route is not exercised with success", final["status"])
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := c.expect(s, 200, exchange{method: "GET", path: "/v1/dlq", token: token})
		if strings.Contains(string(r.body), id) {
			c.expect(s, 202, exchange{method: "POST", path: "/v1/dlq/" + id + "/replay", token: token})
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("dead job %s never listed in /v1/dlq", id)
}
