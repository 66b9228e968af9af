package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// webhookReceiver runs reference/webhook_receiver.mjs, which verifies each
// delivery with the standardwebhooks npm library and de-duplicates by
// webhook-id.
func webhookReceiver(t *testing.T) string {
	t.Helper()
	ref := filepath.Join(testenv.RepoRoot(), "reference")
	cmd := exec.Command("node", filepath.Join(ref, "webhook_receiver.mjs"))
	cmd.Dir = ref
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("receiver did not start (run `make deps` for reference/node_modules): %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("receiver said %q", line)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func configureReceiver(t *testing.T, base string, cfg map[string]any) {
	t.Helper()
	body, _ := json.Marshal(cfg)
	resp, err := http.Post(base+"/_config", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

type receivedEvents struct {
	Attempts, Invalid, Duplicates int
	Events                        []struct {
		ID   string         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
}

func receiverState(t *testing.T, base, path string) receivedEvents {
	t.Helper()
	resp, err := http.Get(base + "/_state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all map[string]receivedEvents
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	return all[path]
}

// A job with a callback_url, through the real ingest and worker: its final
// state reaches the registered endpoint, signed so that the
// standardwebhooks library verifies it, through a receiver outage.
func TestJobWebhook(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true })
	s.startWorker()
	rcv := webhookReceiver(t)
	admin := s.issue(t, "acme", auth.ScopeWebhooksAdmin)
	url := rcv + "/jetinfer"

	r := s.do("POST", "/v1/webhooks", admin, map[string]any{"url": url, "description": "results"})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	ep := r.json(t)
	secret, _ := ep["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("registered endpoint %s", r.body)
	}
	// The receiver is failing when the job finishes, and recovers.
	configureReceiver(t, rcv, map[string]any{"path": "/jetinfer", "secret": secret, "fail_first": 2})

	// Only registered URLs are accepted, and only with the scope.
	if r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment", "input": map[string]any{"text": "x y"},
		"callback_url": rcv + "/elsewhere"}); r.status != http.StatusUnprocessableEntity || errorOf(t, r)["code"] != "unknown_webhook" {
		t.Fatalf("unregistered callback_url: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/webhooks", s.token, nil); r.status != http.StatusForbidden {
		t.Fatalf("listing without webhooks:admin: %d", r.status)
	}
	// Another tenant cannot name acme's endpoint.
	globex := s.issue(t, "globex", auth.ScopeJobsWrite)
	if r := s.do("POST", "/v1/jobs", globex, map[string]any{"task": "sentiment", "input": map[string]any{"text": "x y"},
		"callback_url": url}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("another tenant's callback_url: %d %s", r.status, r.body)
	}

	r = s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
		"input": map[string]any{"text": "Shares surged after record profits."}, "callback_url": url})
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	final, _ := s.poll(id)

	deadline := time.Now().Add(15 * time.Second)
	var st receivedEvents
	for {
		st = receiverState(t, rcv, "/jetinfer")
		if st.Attempts >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not delivered: receiver saw %+v", st)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if st.Invalid != 0 || len(st.Events) != 1 || st.Duplicates != 2 {
		t.Fatalf("receiver saw %+v; want one verified event, its two retries dropped as duplicates", st)
	}
	ev := st.Events[0]
	if ev.Type != "job.succeeded" || ev.Data["id"] != id || ev.Data["status"] != "succeeded" ||
		topLabel(t, ev.Data["result"]) != topLabel(t, final["result"]) {
		t.Fatalf("event %+v; job %v", ev, final)
	}
	if want := "msg_" + id + "_succeeded"; ev.ID != want {
		t.Fatalf("webhook-id %s, want %s", ev.ID, want)
	}
}

// webhookRoutes drives the /v1/webhooks routes for the OpenAPI contract.
func webhookRoutes(t *testing.T, s *stack, c *contract, all, readOnly string) {
	t.Helper()
	url := "http://127.0.0.1:9/contract"
	r := c.expect(s, 201, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"url": url}})
	id := r.json(t)["id"].(string)
	c.expect(s, 409, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"url": url}})
	c.expect(s, 422, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"url": "ftp://example.com/x"}})
	c.expect(s, 422, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"url": "https://u:p@example.com/x"}})
	c.expect(s, 400, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"uri": url}, invalid: true})
	c.expect(s, 403, exchange{method: "POST", path: "/v1/webhooks", token: readOnly, body: map[string]any{"url": url}})
	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/webhooks", token: all})
	if strings.Contains(string(r.body), "whsec_") {
		t.Fatalf("listing shows secrets: %s", r.body)
	}
	c.expect(s, 403, exchange{method: "GET", path: "/v1/webhooks", token: readOnly})
	r = c.expect(s, 200, exchange{method: "POST", path: "/v1/webhooks/" + id + "/rotate", token: all})
	if m := r.json(t); m["prev_secret"] == nil || m["secret"] == m["prev_secret"] {
		t.Fatalf("rotation: %s", r.body)
	}
	c.expect(s, 404, exchange{method: "POST", path: "/v1/webhooks/ep_nope/rotate", token: all})
	c.expect(s, 422, exchange{method: "POST", path: "/v1/jobs", token: all,
		body: map[string]any{"task": "sentiment", "input": map[string]any{"text": "x"}, "callback_url": url + "/other"}})
	c.expect(s, 202, exchange{method: "POST", path: "/v1/jobs", token: all,
		body: map[string]any{"task": "ner", "input": map[string]any{"text": "x"}, "callback_url": url}})
	c.expect(s, 422, exchange{method: "POST", path: "/v1/jobs/batch", token: all,
		body: map[string]any{"jobs": []any{map[string]any{"task": "sentiment", "input": map[string]any{"text": "x"}, "callback_url": url + "/other"}}}})
	c.expect(s, 204, exchange{method: "DELETE", path: "/v1/webhooks/" + id, token: all})
	c.expect(s, 404, exchange{method: "DELETE", path: "/v1/webhooks/" + id, token: all})
}

// backfillWebhookRoutes creates backfills that name a webhook endpoint,
// for the OpenAPI contract. It runs last: the listing checks before it
// count the tenant's backfills.
func backfillWebhookRoutes(t *testing.T, s *stack, c *contract, all string) {
	t.Helper()
	url := "http://127.0.0.1:9/backfills"
	c.expect(s, 201, exchange{method: "POST", path: "/v1/webhooks", token: all, body: map[string]any{"url": url}})
	c.expect(s, 201, exchange{method: "POST", path: "/v1/backfills", token: all,
		body: map[string]any{"task": "ner", "callback_url": url, "progress_every": 100}})
	c.expect(s, 422, exchange{method: "POST", path: "/v1/backfills", token: all,
		body: map[string]any{"task": "ner", "callback_url": url + "/other"}})
	c.expect(s, 400, exchange{method: "POST", path: "/v1/backfills", token: all,
		body: map[string]any{"task": "ner", "callback_url": url, "progress_every": 99}, invalid: true})
}

// A job that finishes while its event cannot be queued (the WEBHOOKS
// stream is gone) is not acknowledged: its redelivery queues the event
// from the stored record once the stream is back, and the deliverers'
// consumer comes back with it.
func TestJobWebhookWaitsOutLostStream(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true })
	s.startWorker()
	rcv := webhookReceiver(t)
	s.registerReceiver(t, rcv, "/h", nil)

	nc := s.nats.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := js.DeleteStream(ctx, job.StreamWebhooks); err != nil {
		t.Fatal(err)
	}
	r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
		"input": map[string]any{"text": "Profits rose."}, "callback_url": rcv + "/h"})
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if final, _ := s.poll(id); final["status"] != "succeeded" {
		t.Fatalf("job %v", final)
	}
	// The job is not acknowledged: it comes back, still without a stream
	// for its event.
	cons, err := js.Consumer(ctx, job.StreamJobs, queue.ConsumerName(job.LaneInteractive, "sentiment"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumRedelivered > 0 {
			break
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 || time.Now().After(deadline) {
			t.Fatalf("the job was acknowledged without its webhook event: %+v", ci)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := queue.EnsureStreams(ctx, js, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for len(receiverState(t, rcv, "/h").Events) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event never delivered after the stream came back: %+v", receiverState(t, rcv, "/h"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev := receiverState(t, rcv, "/h").Events[0]; ev.Data["id"] != id || ev.Type != "job.succeeded" {
		t.Fatalf("event %+v", ev)
	}
}
