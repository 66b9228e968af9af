package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

// TestPrintFleet prints a GET /v1/fleet answer: a task served by one
// worker, a task served by none, and the worker with its jobs in flight.
func TestPrintFleet(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	body := `{"tasks":[
	  {"name":"sentiment","version":"v1","workers":[{"id":"w1"}],"last_seen":"2026-01-01T11:59:58Z","breaker":"closed",
	   "lanes":{"interactive":{"pending":3,"in_flight":2,"redelivered":0},"bulk":{"pending":4,"in_flight":0,"redelivered":0}}},
	  {"name":"ner","version":"v2","workers":[],"last_seen":"2026-01-01T11:50:00Z","breaker":"open","lanes":{}}],
	 "workers":[{"id":"w1","host":"gpu-1","device":"cuda:0","tasks":[{"task":"sentiment","version":"v1","in_flight":2}],
	   "started_at":"2026-01-01T11:00:00Z","last_seen":"2026-01-01T11:59:58Z","ttl_ms":6000}]}`
	var f fleetStatus
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printFleet(&out, f, now)
	lines := strings.Split(out.String(), "\n")
	for _, want := range [][]string{
		{"sentiment", "v1", "1", "2s ago", "closed", "7", "2"},
		{"ner", "v2", "0 (no_workers)", "10m0s ago", "open", "0", "0"},
		{"w1", "gpu-1", "cuda:0", "sentiment@v1 (2)", "1h0m0s", "2s ago"},
	} {
		found := false
		for _, l := range lines {
			found = found || strings.Join(strings.Fields(l), " ") == strings.Join(want, " ")
		}
		if !found {
			t.Errorf("no line %q in\n%s", strings.Join(want, " "), out.String())
		}
	}

	f.Workers = nil
	out.Reset()
	printFleet(&out, f, now)
	if !strings.Contains(out.String(), "no live worker") {
		t.Errorf("a fleet without workers does not say so:\n%s", out.String())
	}
}

// TestProgressLineSaysStalled shows a stalled backfill's reason first on a
// terminal, and with its message in a log.
func TestProgressLineSaysStalled(t *testing.T) {
	p := backfill.Progress{State: backfill.StateSealed, Counters: backfill.Counters{Submitted: 10}, Pending: 10,
		Stalled: &backfill.Stall{Reason: backfill.StallNoWorkers, Message: "no live worker serves task sentiment"}}
	tty := newProgressBar(io.Discard, "yes", time.Second)
	tty.width = func() int { return 40 }
	if line := tty.line(p); !strings.HasPrefix(line, "STALLED (no_workers)") {
		t.Errorf("terminal line %q", line)
	}
	log := newProgressBar(io.Discard, "no", time.Second)
	if line := log.line(p); !strings.HasPrefix(line, "sealed STALLED (no_workers)") || !strings.HasSuffix(line, "; no live worker serves task sentiment") {
		t.Errorf("log line %q", line)
	}
	p.Stalled = nil
	if line := log.line(p); strings.Contains(line, "STALLED") {
		t.Errorf("a backfill that is not stalled: %q", line)
	}
}
