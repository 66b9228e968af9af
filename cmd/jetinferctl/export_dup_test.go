package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestExportStepWithDuplicate puts a document's second result in RESULTS
// (as a redelivery after the message-id window does) right behind its
// first, so that the first export step reads both and the server sends one
// line: fewer lines than the step although the step stopped at its limit.
// The export (stepped, as --purge makes it) must go on to the other documents rather than take the short
// step as caught up with a completed backfill.
func TestExportStepWithDuplicate(t *testing.T) {
	s := startStackWith(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := &apiClient{url: s.url, token: s.token, hc: &http.Client{}}
	id := newBackfill(t, api)
	send := func(from, to int) {
		t.Helper()
		var b bytes.Buffer
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, `{"id":"doc-%d","text":"Company %d shares rose after strong earnings."}`+"\n", i, i)
		}
		if err := api.do(ctx, "POST", "/v1/backfills/"+id+"/documents", "application/x-ndjson", &b, nil); err != nil {
			t.Fatal(err)
		}
	}
	send(0, 1)
	for {
		p, err := api.progress(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Succeeded == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("doc-0 never finished: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nc, err := nats.Connect(s.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dup, _ := json.Marshal(job.Record{ID: id + ":doc-0", Task: "sentiment", Status: job.StatusSucceeded,
		Result: json.RawMessage(`{"labels":[]}`), Backfill: id, DocID: "doc-0", Created: time.Now()})
	if _, err := js.Publish(ctx, job.ResultsSubject(id), dup); err != nil {
		t.Fatal(err)
	}
	const n = 5
	send(1, n)
	if err := api.do(ctx, "POST", "/v1/backfills/"+id+"/seal", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := api.progress(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == "completed" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("backfill never completed: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := filepath.Join(t.TempDir(), "results.ndjson")
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"backfill", "results", "--url", s.url, "--token", s.token, "--id", id, "--out", out,
		"--purge", "--export-step", "2", "--poll", "50ms"}, &stdout, &stderr); err != nil {
		t.Fatalf("results: %v\n%s", err, stderr.String())
	}
	checkResults(t, out, n, nil)
}
