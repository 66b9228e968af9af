package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// publicRoutes are the only routes served without a token.
var publicRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /openapi.json": true, "GET /ui/": true, "GET /ui": true}

// TestEveryRouteIsGated takes the route list from the server's own table
// and sends every authenticated route a request without a token, with a
// revoked token, with a disabled tenant's token and with a token whose
// tasks claim excludes the task the route touches. A route added without
// admission, without a task declaration, or whose task is not enforced,
// fails here.
func TestEveryRouteIsGated(t *testing.T) {
	s := newStack(t)
	q := s.announce("sentiment", "ner", "rerank", "embed")
	s.createTenant(tenant.Tenant{ID: "initech", Enabled: false})
	s.startIngest()

	all := s.issueTasks(t, "acme", nil, auth.Scopes...)
	nerOnly := s.issueTasks(t, "acme", []string{"ner"}, auth.Scopes...)
	disabled := s.issueTasks(t, "initech", nil, auth.Scopes...)
	revoked, rc := s.issueClaims(t, "acme", nil, auth.Scopes...)
	if err := tenant.NewStore(s.redis.Client(t)).Revoke(context.Background(), rc.ID, rc.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}

	// acme's sentiment job, backfill and dead letter.
	submit := map[string]any{"task": "sentiment", "input": map[string]any{"text": "Shares rose."}}
	r := s.do("POST", "/v1/jobs", all, submit)
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	jobID := r.json(t)["id"].(string)
	r = s.do("POST", "/v1/jobs", all, submit)
	deadID := r.json(t)["id"].(string)
	r = s.do("POST", "/v1/backfills", all, map[string]any{"task": "sentiment"})
	if r.status != http.StatusCreated {
		t.Fatalf("create backfill: %d %s", r.status, r.body)
	}
	backfillID := r.json(t)["id"].(string)
	s.deadLetter(t, q, "sentiment", deadID, 2)

	// Bodies of the routes whose body names the task (or, for documents,
	// carries what the route takes).
	bodies := map[string]any{
		"POST /v1/jobs":                     submit,
		"POST /v1/jobs/batch":               map[string]any{"jobs": []any{submit}},
		"POST /v1/infer/{task}":             map[string]any{"text": "Shares rose."},
		"POST /v1/backfills":                map[string]any{"task": "sentiment"},
		"POST /v1/backfills/{id}/documents": `{"id":"d1","text":"Shares rose."}`,
		"POST /v1/webhooks":                 map[string]any{"url": "https://hooks.example.com/jetinfer"},
		"POST /v1/webhooks/{id}/rotate":     map[string]any{},
		"POST /v1/rerank":                   map[string]any{"model": "rerank", "query": "oil", "documents": []string{"Shares rose."}},
		"POST /v2/rerank":                   map[string]any{"model": "rerank", "query": "oil", "documents": []string{"Shares rose."}},
		"POST /v1/tokenize/{task}":          map[string]any{"text": "Shares rose."},
		"POST /openai/v1/embeddings":        map[string]any{"model": "embed", "input": "Shares rose."},
		"POST /openai/v1/files":             `{"custom_id":"c1","method":"POST","url":"/v1/embeddings","body":{"model":"embed","input":"Shares rose."}}`,
		"POST /openai/v1/batches":           map[string]any{"input_file_id": "file-" + backfillID, "endpoint": "/v1/embeddings", "completion_window": "24h"},
	}
	// OpenAI's ids of acme's backfill, by the route that takes them.
	batchIDs := map[string]string{
		"GET /openai/v1/files/{id}/content":   "file-" + backfillID + "-output",
		"GET /openai/v1/batches/{id}":         "batch_" + backfillID,
		"POST /openai/v1/batches/{id}/cancel": "batch_" + backfillID,
		"POST /openai/v1/batches":             "",
	}
	routes := ingest.New(ingest.Config{}, ingest.Deps{}).Routes()
	if len(routes) < 10 {
		t.Fatalf("the route table lists %d routes", len(routes))
	}
	for _, rt := range routes {
		t.Run(rt.Pattern, func(t *testing.T) {
			method, path, ok := strings.Cut(rt.Pattern, " ")
			if !ok {
				t.Fatalf("pattern %q names no method", rt.Pattern)
			}
			if rt.Admit == ingest.AdmitPublic {
				if !publicRoutes[rt.Pattern] || strings.HasPrefix(path, "/v1/") {
					t.Fatalf("%s is served without a token", rt.Pattern)
				}
				return
			}
			if rt.Admit != ingest.AdmitFirst && rt.Admit != ingest.AdmitAfterDecode {
				t.Fatalf("%s declares admission %v", rt.Pattern, rt.Admit)
			}
			switch rt.Task {
			case ingest.TaskJob:
				path = strings.Replace(path, "{id}", jobID, 1)
			case ingest.TaskBackfill:
				path = strings.Replace(path, "{id}", backfillID, 1)
			case ingest.TaskDeadLetter:
				path = strings.Replace(path, "{id}", deadID, 1)
			case ingest.TaskPath:
				path = strings.Replace(path, "{task}", "sentiment", 1)
			case ingest.TaskModel:
				path = strings.Replace(path, "{id}", "sentiment", 1)
			case ingest.TaskBatch:
				id, ok := batchIDs[rt.Pattern]
				if !ok {
					t.Fatalf("%s: add the OpenAI id it takes to this test", rt.Pattern)
				}
				path = strings.Replace(path, "{id}", id, 1)
			case ingest.TaskNone:
				// A tenant's object of no task (a webhook endpoint): the
				// gate refuses before anything is looked up.
				path = strings.Replace(path, "{id}", "ep_unknown", 1)
			case ingest.TaskBody, ingest.TaskListed:
			default:
				t.Fatalf("%s declares task source %v", rt.Pattern, rt.Task)
			}
			if strings.Contains(path, "{") {
				t.Fatalf("%s: path parameter of %s not named by its task source %v", rt.Pattern, path, rt.Task)
			}
			if method == "DELETE" && strings.HasSuffix(path, "/results") {
				path += "?through=1"
			}
			body, hasBody := bodies[rt.Pattern]
			if method == "POST" && !hasBody && rt.Task != ingest.TaskDeadLetter && rt.Task != ingest.TaskBackfill && rt.Task != ingest.TaskBatch {
				t.Fatalf("%s takes a body: add one to this test", rt.Pattern)
			}
			send := func(token string) response {
				if rt.Pattern == "POST /openai/v1/files" {
					return s.uploadBatchFile(t, token, "batch", body.(string))
				}
				return s.do(method, path, token, body)
			}
			expect := func(name, token string, status int, code string) {
				t.Helper()
				r := send(token)
				if r.status != status || errorOf(t, r)["code"] != code {
					t.Fatalf("%s: %d %s, want %d %s", name, r.status, r.body, status, code)
				}
			}
			expect("no token", "", 401, "unauthorized")
			expect("revoked token", revoked, 401, "token_revoked")
			expect("disabled tenant", disabled, 403, "tenant_disabled")
			switch rt.Task {
			case ingest.TaskNone:
			case ingest.TaskListed:
				r := s.do(method, path, nerOnly, nil)
				if r.status != http.StatusOK || strings.Contains(string(r.body), "sentiment") {
					t.Fatalf("a ner-only token listing: %d %s", r.status, r.body)
				}
			case ingest.TaskModel:
				// A model the token cannot use does not exist for it.
				expect("token without the task", nerOnly, 404, "model_not_found")
			default:
				expect("token without the task", nerOnly, 403, "task_not_allowed")
			}
		})
	}
	// acme's objects are untouched by the refused requests.
	if r := s.do("GET", "/v1/jobs/"+jobID, all, nil); r.status != 200 || r.json(t)["status"] != "queued" {
		t.Fatalf("acme's job after the refusals: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/backfills/"+backfillID, all, nil); r.status != 200 || r.json(t)["state"] != "open" || r.json(t)["submitted"] != float64(0) {
		t.Fatalf("acme's backfill after the refusals: %d %s", r.status, r.body)
	}
}

// issueClaims issues an HS256 development token limited to tasks.
func (s *stack) issueClaims(t *testing.T, tenantID string, tasks []string, scopes ...string) (string, *auth.Claims) {
	t.Helper()
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := signer.IssueFor(auth.TokenRequest{Tenant: tenantID, Scopes: scopes, Tasks: tasks, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}
