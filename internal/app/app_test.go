package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

const devSecret = "0123456789abcdef0123456789abcdef-test-secret"

// stack is a running ingest (and optionally worker) on real NATS and Redis.
type stack struct {
	t    *testing.T
	nats *testenv.NATS
	// natsURL is what ingest and workers are given: nats's URL, or every
	// node of a cluster.
	natsURL string
	redis   *testenv.Redis
	url     string
	opsURL  string // ingest's operations listener (metrics, detailed readiness)
	token   string
	secret  string
}

func defaults[T interface{ RegisterFlags(*flag.FlagSet) }](cfg T) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(nil)
}

func newStack(t *testing.T) *stack {
	t.Helper()
	n := testenv.StartNATS(t)
	s := newStackOn(t, n.URL())
	s.nats = n
	return s
}

// newStackOn is newStack on the NATS servers at natsURL.
func newStackOn(t *testing.T, natsURL string) *stack {
	t.Helper()
	s := &stack{t: t, natsURL: natsURL, redis: testenv.StartRedis(t)}
	s.secret = filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(s.secret, []byte(devSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ingest admits requests against their tenant in Redis.
	for _, id := range []string{"acme", "globex"} {
		if _, err := tenant.NewStore(s.redis.Client(t)).Create(context.Background(), tenant.Tenant{ID: id, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.token = s.issue(t, "acme", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	return s
}

func (s *stack) issue(t *testing.T, tenant string, scopes ...string) string {
	t.Helper()
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: tenant, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startIngest runs ingest until the test ends.
func (s *stack) startIngest() { s.startIngestWith(nil) }

// startWorker runs a worker serving the sentiment model and returns a
// function that stops it (softly) and waits for it to exit.
func (s *stack) startWorker() (stop func()) { return s.startWorkerTuned(nil) }

func (s *stack) run(name string, f func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				s.t.Errorf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			s.t.Errorf("%s did not stop", name)
		}
	}
	s.t.Cleanup(stop)
	return stop
}

type response struct {
	status          int
	header, trailer http.Header // the trailer once the body is read
	body            []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return m
}

func (s *stack) do(method, path, token string, body any) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: data}
}

// poll GETs a job until it is final.
func (s *stack) poll(id string) (map[string]any, []string) {
	s.t.Helper()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do("GET", "/v1/jobs/"+id, s.token, nil)
		if r.status != http.StatusOK {
			s.t.Fatalf("GET job: %d %s", r.status, r.body)
		}
		m := r.json(s.t)
		st := m["status"].(string)
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if job.Status(st).Final() {
			return m, seen
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.t.Fatalf("job %s not final; statuses seen %v", id, seen)
	return nil, nil
}

func topLabel(t *testing.T, result any) string {
	t.Helper()
	labels := result.(map[string]any)["labels"].([]any)
	return labels[0].(map[string]any)["label"].(string)
}

func TestAsyncSyncAndTimeoutPaths(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	stopWorker := s.startWorker()

	t.Run("fire and forget, then poll", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
			"input": map[string]any{"text": "Shares surged after the company reported record profit and strong growth."}})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		id := m["id"].(string)
		if m["status"] != "queued" || r.header.Get("Location") != "/v1/jobs/"+id {
			t.Fatalf("want queued with Location, got %v %q", m, r.header.Get("Location"))
		}
		final, seen := s.poll(id)
		if final["status"] != "succeeded" {
			t.Fatalf("final %v", final)
		}
		if seen[len(seen)-1] != "succeeded" || (seen[0] != "queued" && seen[0] != "running" && seen[0] != "succeeded") {
			t.Fatalf("statuses %v", seen)
		}
		if got := topLabel(t, final["result"]); got != "positive" {
			t.Fatalf("top label %q for a glowing headline; result %v", got, final["result"])
		}
		if final["finished_at"] == nil || final["created_at"] == nil {
			t.Fatalf("missing times: %v", final)
		}
	})

	t.Run("wait on POST /v1/jobs", func(t *testing.T) {
		r := s.do("POST", "/v1/jobs?wait=10s", s.token, map[string]any{"task": "sentiment",
			"input": map[string]any{"text": "The bank collapsed amid fraud charges and heavy losses."}})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		if m["status"] != "succeeded" || topLabel(t, m["result"]) != "negative" {
			t.Fatalf("got %v", m)
		}
	})

	t.Run("POST /v1/infer", func(t *testing.T) {
		r := s.do("POST", "/v1/infer/sentiment", s.token, map[string]any{"text": "Quarterly results were in line with estimates."})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if m := r.json(t); m["status"] != "succeeded" || m["result"] == nil {
			t.Fatalf("got %v", m)
		}
	})

	t.Run("auth", func(t *testing.T) {
		for name, tok := range map[string]string{"missing": "", "garbage": "not-a-jwt", "other key": forged(t)} {
			r := s.do("POST", "/v1/jobs", tok, map[string]any{"task": "sentiment", "input": map[string]any{"text": "x"}})
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s token: status %d, want 401", name, r.status)
			}
		}
		// Another tenant cannot see acme's job.
		r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment", "input": map[string]any{"text": "hello"}})
		id := r.json(t)["id"].(string)
		other := s.issue(t, "globex", auth.ScopeJobsRead)
		if r := s.do("GET", "/v1/jobs/"+id, other, nil); r.status != http.StatusNotFound {
			t.Errorf("other tenant GET: %d, want 404", r.status)
		}
	})

	t.Run("wait runs out, job still completes", func(t *testing.T) {
		stopWorker()
		// A worker that has joined the fleet but takes no job yet: calls
		// wait for it, and time out.
		s.announce("sentiment")
		r := s.do("POST", "/v1/jobs?wait=200ms", s.token, map[string]any{"task": "sentiment",
			"input": map[string]any{"text": "Profits rose."}})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		id1 := r.json(t)["id"].(string)
		r = s.do("POST", "/v1/infer/sentiment?wait=200ms", s.token, map[string]any{"text": "Losses widened."})
		if r.status != http.StatusGatewayTimeout {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		id2 := r.json(t)["error"].(map[string]any)["job_id"].(string)
		s.startWorker()
		for _, id := range []string{id1, id2} {
			if final, _ := s.poll(id); final["status"] != "succeeded" {
				t.Fatalf("job %s: %v", id, final)
			}
		}
	})
}

func forged(t *testing.T) string {
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte("another-secret-another-secret-another"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeJobsWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
