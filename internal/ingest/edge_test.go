package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// edgeServer is an ingest on real NATS and Redis behind an HTTP server
// with the given read and write timeouts (zero: none), and a token with
// every scope for tenant acme.
func edgeServer(t *testing.T, readTimeout, writeTimeout time.Duration) (url, tok string) {
	t.Helper()
	ctx := context.Background()
	nc := testenv.StartNATS(t).Connect(t)
	q, err := queue.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.StartRedis(t).Client(t)
	st := store.New(rdb, time.Hour)
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: "jetinfer", Audience: "jetinfer", DevHS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	bs := backfill.NewStore(rdb)
	srv := httptest.NewUnstartedServer(ingest.New(ingest.Config{ReadTimeout: readTimeout, WriteTimeout: writeTimeout}, ingest.Deps{
		Records: st, Catalog: catalog{}, Verifier: v, Ready: q.Ready, DLQ: q, DeadRecords: st,
		Backfills: ingest.BackfillDeps{Store: bs, Publisher: q, Results: q},
	}).Handler())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = readTimeout, writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err = signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: auth.Scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, tok
}

func call(t *testing.T, method, url, tok, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func createBackfill(t *testing.T, url, tok string) string {
	t.Helper()
	resp, body := call(t, "POST", url+"/v1/backfills", tok, `{"task":"sentiment"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal([]byte(body), &created)
	return created.ID
}

// TestCursorNearSequenceEnd: ?after= is a stream sequence the read starts
// past; 2^64-1 would wrap the start to 0 and replay the stream from its
// beginning, so it is refused naming the field, and the value below it is
// still a cursor.
func TestCursorNearSequenceEnd(t *testing.T) {
	url, tok := edgeServer(t, 0, 0)
	id := createBackfill(t, url, tok)
	top := strconv.FormatUint(math.MaxUint64, 10)
	for _, path := range []string{"/v1/backfills/" + id + "/results?follow=false&after=" + top, "/v1/dlq?after=" + top} {
		resp, body := call(t, "GET", url+path, tok, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "after") {
			t.Fatalf("GET %s: %d %s, want 400 naming after", path, resp.StatusCode, body)
		}
	}
	below := strconv.FormatUint(math.MaxUint64-1, 10)
	for _, path := range []string{"/v1/backfills/" + id + "/results?follow=false&after=" + below, "/v1/dlq?after=" + below} {
		resp, body := call(t, "GET", url+path, tok, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s, want 200", path, resp.StatusCode, body)
		}
	}
}

// TestExportOutlivesServerTimeouts: a following export runs longer than
// the server's read and write timeouts; it must end as it should (with
// its trailer) when the backfill is canceled, not be cut by a deadline
// set when its request arrived. The export's status arrives before the
// timeouts pass, on a connection of its own, so that a cut stream shows
// as an error rather than as the client's silent retry of the request.
func TestExportOutlivesServerTimeouts(t *testing.T) {
	const rt, wt = time.Second, 2 * time.Second
	url, tok := edgeServer(t, rt, wt)
	id := createBackfill(t, url, tok)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", url+"/v1/backfills/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", resp.StatusCode)
	}
	type result struct {
		trailer string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		done <- result{trailer: resp.Trailer.Get(ingest.ResultsSeqTrailer), err: err}
	}()
	// Time itself is what this test needs to pass: both timeouts, twice.
	time.Sleep(2*wt + rt/2)
	if resp, body := call(t, "DELETE", url+"/v1/backfills/"+id, tok, ""); resp.StatusCode >= 300 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	select {
	case r := <-done:
		if r.err != nil || r.trailer == "" {
			t.Fatalf("export: trailer %q, error %v; want its trailer", r.trailer, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("export did not end after the backfill was canceled")
	}
}
