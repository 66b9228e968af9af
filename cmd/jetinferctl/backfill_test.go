package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

const testSecret = "0123456789abcdef0123456789abcdef-ctl-secret"

func defaultsOf[T interface{ RegisterFlags(*flag.FlagSet) }](cfg T) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(nil)
}

// startStack runs ingest and a sentiment worker on real NATS and Redis and
// returns ingest's URL and a backfills:write token.
func startStack(t *testing.T) (string, string) {
	t.Helper()
	n, r := testenv.StartNATS(t), testenv.StartRedis(t)
	secret := filepath.Join(t.TempDir(), "dev.secret")
	if err := os.WriteFile(secret, []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ing config.Ingest
	defaultsOf(&ing)
	ing.NATS.URL, ing.Redis.URL, ing.Addr, ing.Auth.HS256SecretFile = n.URL(), r.URL(), "127.0.0.1:0", secret
	ing.Tenants = false
	var wk config.Worker
	defaultsOf(&wk)
	wk.NATS.URL, wk.Redis.URL, wk.HTTPAddr = n.URL(), r.URL(), "127.0.0.1:0"
	wk.ORTLib, wk.Models, wk.IntraOpThreads = testenv.ORTLib(t), testenv.ModelDir(t, "sentiment"), 1
	quiet := slog.New(slog.DiscardHandler)
	addr := make(chan string, 1)
	done := make(chan error, 2)
	go func() {
		done <- app.RunIngest(ctx, ing, quiet, app.Hooks{Listening: func(a string) { addr <- a }})
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		t.Fatalf("ingest: %v", err)
	}
	ready := make(chan struct{})
	go func() { done <- app.RunWorker(ctx, wk, quiet, app.Hooks{Ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not start")
	}
	t.Cleanup(func() {
		cancel()
		for range 2 {
			<-done
		}
	})
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeBackfillsWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return url, tok
}

// TestBackfillRunResumes interrupts a run after the server has documents
// the run's state file does not know about, and checks that the resumed run
// sends only what lies after its last confirmed line, that the server's
// duplicates absorb the overlap, and that the results file holds one line
// per document.
func TestBackfillRunResumes(t *testing.T) {
	url, tok := startStack(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "archive.ndjson")
	var b bytes.Buffer
	const n = 1200
	for i := range n {
		fmt.Fprintf(&b, `{"id":"doc-%d","text":"Company %d shares rose after strong earnings."}`+"\n", i, i%40)
		if i == 100 {
			b.WriteString("{broken\n")
		}
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := &apiClient{url: url, token: tok}
	api.hc = &http.Client{}
	// An interrupted run: the server has the first 900 documents, the state
	// file was last saved after line 600.
	var created struct {
		ID string `json:"id"`
	}
	if err := api.do(ctx, "POST", "/v1/backfills", "application/json", strings.NewReader(`{"task":"sentiment"}`), &created); err != nil {
		t.Fatal(err)
	}
	first := bytes.SplitAfterN(b.Bytes(), []byte("\n"), 902)
	if err := api.do(ctx, "POST", "/v1/backfills/"+created.ID+"/documents", "application/x-ndjson",
		bytes.NewReader(bytes.Join(first[:901], nil)), nil); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "archive.ndjson.backfill.json")
	st := &runState{URL: url, Task: "sentiment", In: in, Backfill: created.ID, DoneLine: 600}
	if err := st.save(state); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	err := run(ctx, []string{"backfill", "run", "--url", url, "--token", tok, "--task", "sentiment", "--in", in,
		"--chunk", "250", "--poll", "100ms"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	log := errOut.String()
	if !strings.Contains(log, "resuming backfill "+created.ID+" after line 600") {
		t.Fatalf("no resume in:\n%s", log)
	}
	// Line 102 is broken, so line L > 102 holds doc-(L-2): lines 601..1201
	// hold docs 599..1199, and the server had 599..899 of them.
	if !strings.Contains(log, "sent 601, duplicates 301, rejected 0") {
		t.Fatalf("resumed run sent the wrong documents:\n%s", log)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d submitted, %d succeeded", n, n)) {
		t.Fatalf("summary: %s", out.String())
	}
	f, err := os.Open(in + ".results.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct{ ID, Status string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Status != "succeeded" || seen[l.ID] {
			t.Fatalf("result line %s (err %v, seen %v)", sc.Bytes(), err, seen[l.ID])
		}
		seen[l.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d results, want %d", len(seen), n)
	}
	// Running again finds the backfill sealed and only exports.
	out.Reset()
	errOut.Reset()
	if err := run(ctx, []string{"backfill", "run", "--url", url, "--token", tok, "--task", "sentiment", "--in", in}, &out, &errOut); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(errOut.String(), "sent 0, duplicates 0") {
		t.Fatalf("second run sent documents:\n%s", errOut.String())
	}
}
