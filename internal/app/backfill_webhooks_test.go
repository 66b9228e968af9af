package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// registerReceiver registers path of the receiver as acme's endpoint and
// hands the receiver its secret; it returns the endpoint's URL.
func (s *stack) registerReceiver(t *testing.T, rcv, path string, cfg map[string]any) string {
	t.Helper()
	r := s.do("POST", "/v1/webhooks", s.issue(t, "acme", auth.ScopeWebhooksAdmin), map[string]any{"url": rcv + path})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	c := map[string]any{"path": path, "secret": r.json(t)["secret"]}
	for k, v := range cfg {
		c[k] = v
	}
	configureReceiver(t, rcv, c)
	return rcv + path
}

// awaitEvents waits until the receiver has taken in n events at path and
// WEBHOOKS holds nothing more for anyone: every event queued was
// delivered, so no further one can arrive.
func (s *stack) awaitEvents(t *testing.T, rcv, path string, n int) receivedEvents {
	t.Helper()
	js, err := jetstream.New(s.nats.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st := receiverState(t, rcv, path)
		info, err := js.Stream(context.Background(), job.StreamWebhooks)
		if err != nil {
			t.Fatal(err)
		}
		si, err := info.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Events) >= n && si.State.Msgs == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver saw %+v, WEBHOOKS holds %d; want %d events", st, si.State.Msgs, n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// countResults counts the export's lines after cursor, without following.
func (s *stack) countResults(t *testing.T, id, token string, after uint64) int {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/backfills/%s/results?after=%d&follow=false", s.url, id, after), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		n++
	}
	return n
}

// finishedOn sums jetinfer_worker_jobs_finished_total on the worker's
// metrics at addr.
func finishedOn(t *testing.T, addr string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n float64
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		l := sc.Text()
		if strings.HasPrefix(l, "jetinfer_worker_jobs_finished_total{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return int64(n)
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

// A backfill that names an endpoint, processed by two workers while the
// receiver is down: once it recovers, it has a progress event at each
// multiple of progress_every and one backfill.completed, each verified by
// the standardwebhooks library, none twice, the completion with the final
// counts and the progress events with counts at their multiple and an
// export cursor.
func TestBackfillWebhooks(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true })
	addrs := make(chan string, 2)
	for range 2 {
		s.startWorkerTuned(func(c *config.Worker) {
			c.BatchSize = 8
			c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true
			c.Webhooks.RetryBase, c.Webhooks.RetryMax = 100*time.Millisecond, 300*time.Millisecond
			c.HTTPAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
			addrs <- c.HTTPAddr
		})
	}
	rcv := webhookReceiver(t)
	url := s.registerReceiver(t, rcv, "/bf", map[string]any{"fail_status": 503})
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)

	for _, bad := range []map[string]any{
		{"task": "sentiment", "callback_url": rcv + "/elsewhere"},
		{"task": "sentiment", "callback_url": url, "progress_every": 5},
		{"task": "sentiment", "progress_every": 100},
	} {
		if r := s.do("POST", "/v1/backfills", tok, bad); r.status/100 != 4 || errorOf(t, r)["field"] == nil {
			t.Fatalf("create %v: %d %s", bad, r.status, r.body)
		}
	}
	r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment", "name": "hooks",
		"callback_url": url, "progress_every": 100})
	if r.status != http.StatusCreated || r.json(t)["progress_every"] != 100.0 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	const docs = 250
	if a := s.sendDocs(id, tok, "application/x-ndjson", archive(0, docs, docs)); a.Accepted != docs {
		t.Fatalf("documents %+v", a)
	}
	if r := s.post("/v1/backfills/"+id+"/seal", tok, "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("seal: %d %s", r.status, r.body)
	}
	s.awaitBackfill(id, tok, func(p progress) bool { return p.State == "completed" })
	// The receiver refuses while the backfill runs, then recovers.
	deadline := time.Now().Add(30 * time.Second)
	for receiverState(t, rcv, "/bf").Attempts < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no delivery attempt reached the failing receiver")
		}
		time.Sleep(25 * time.Millisecond)
	}
	configureReceiver(t, rcv, map[string]any{"path": "/bf"})
	// Both workers ran documents of it: the completion was decided among
	// racing workers.
	for range 2 {
		addr := <-addrs
		if n := finishedOn(t, addr); n == 0 || n == docs {
			t.Fatalf("worker %s finished %d of the %d documents; want a share", addr, n, docs)
		}
	}

	st := s.awaitEvents(t, rcv, "/bf", 3)
	if st.Invalid != 0 || st.Duplicates != 0 || len(st.Events) != 3 {
		t.Fatalf("receiver saw %+v; want 3 verified events, none twice", st)
	}
	byID := map[string]map[string]any{}
	for _, ev := range st.Events {
		byID[ev.ID] = ev.Data
		if ev.Data["id"] != id || ev.Data["task"] != "sentiment" || ev.Data["name"] != "hooks" {
			t.Fatalf("event %+v", ev)
		}
	}
	done := byID["msg_"+id+"_completed"]
	if done == nil {
		t.Fatalf("no backfill.completed in %+v", st)
	}
	counts, _ := done["counts"].(map[string]any)
	if done["state"] != "completed" || num(counts["done"]) != docs || num(counts["succeeded"]) != docs ||
		num(counts["submitted"]) != docs {
		t.Fatalf("completion %v", done)
	}
	for _, at := range []int64{100, 200} {
		p := byID[fmt.Sprint("msg_", id, "_progress_", at)]
		if p == nil {
			t.Fatalf("no progress event at %d in %+v", at, st)
		}
		counts, _ := p["counts"].(map[string]any)
		results, _ := p["results"].(map[string]any)
		if got := num(counts["succeeded"]) + num(counts["failed"]) + num(counts["dead"]); got != at {
			t.Fatalf("progress event at %d counts %d results: %v", at, got, p)
		}
		// Every result counted by then is stored at or before the cursor.
		cursor := uint64(num(results["cursor"]))
		if left := s.countResults(t, id, tok, cursor); cursor == 0 || left > docs-int(at) {
			t.Fatalf("progress at %d: cursor %d leaves %d results after it", at, cursor, left)
		}
	}
}

// A backfill that a seal completes at once (nothing pending) or a cancel
// ends reports backfill.completed from that transition, once however often
// the client repeats it, with the state that ended it.
func TestBackfillWebhookOnSealAndCancel(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(func(c *config.Ingest) { c.Webhooks.AllowPrivate, c.Webhooks.AllowHTTP = true, true })
	s.startWorker()
	rcv := webhookReceiver(t)
	url := s.registerReceiver(t, rcv, "/end", nil)
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	ids := map[string]string{}
	for _, how := range []string{"POST /seal", "DELETE "} {
		r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment", "callback_url": url})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		id := r.json(t)["id"].(string)
		ids[id] = map[string]string{"POST /seal": "completed", "DELETE ": "canceled"}[how]
		method, path, _ := strings.Cut(how, " ")
		for range 2 {
			if r := s.do(method, "/v1/backfills/"+id+path, tok, nil); r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", how, r.status, r.body)
			}
		}
	}
	st := s.awaitEvents(t, rcv, "/end", 2)
	if st.Invalid != 0 || st.Duplicates != 0 || len(st.Events) != 2 {
		t.Fatalf("receiver saw %+v; want one event per backfill", st)
	}
	for _, ev := range st.Events {
		id, _ := ev.Data["id"].(string)
		if ev.Type != "backfill.completed" || ev.ID != "msg_"+id+"_completed" || ev.Data["state"] != ids[id] {
			t.Fatalf("event %+v; want backfill.completed, state %q", ev, ids[id])
		}
	}
}
