package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestStreamsSetupAndStatus creates the streams with `streams setup`, queues
// jobs on two lanes, and checks that `streams status` reports the stream's
// contents against its limits and each consumer's backlog.
func TestStreamsSetupAndStatus(t *testing.T) {
	n := testenv.StartNATS(t)
	url := "--nats-url=" + n.URL()
	out, err := ctl(t, "streams", "setup", url)
	if err != nil || !strings.Contains(out, "stream JOBS ok (1 replicas)") || !strings.Contains(out, "stream RESULTS ok") {
		t.Fatalf("streams setup: %v\n%s", err, out)
	}
	q, err := queue.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The consumers exist once a worker pulls; this one takes one job of
	// the interactive lane and holds it unacknowledged.
	inter, err := q.Pull(ctx, job.LaneInteractive, "sentiment", queue.DefaultConsumerConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer inter.Stop()
	bulk, err := q.Pull(ctx, job.LaneBulk, "sentiment", queue.DefaultConsumerConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	bulk.Stop()
	// Bulk jobs wait on their tenant's subject and consumer.
	acme, err := q.PullTenant(ctx, job.LaneBulk, "sentiment", "acme", queue.DefaultConsumerConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	acme.Stop()
	for i, l := range []job.Lane{job.LaneInteractive, job.LaneInteractive, job.LaneBulk, job.LaneBulk, job.LaneBulk} {
		j := &job.Job{ID: "j" + string(rune('a'+i)), Tenant: "acme", Task: "sentiment", Lane: l,
			Input: job.Input{Text: "Shares rose."}, Created: time.Now().UTC()}
		if _, err := q.Publish(ctx, j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inter.Next(); err != nil {
		t.Fatal(err)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^JOBS\s+5\s+\d+(\.\d)? (B|KiB)\s+0\.0%\s+\d+s\s+-$`),
		regexp.MustCompile(`(?m)^RESULTS\s+0\s+0 B\s+0\.0%\s+-\s+7d$`),
		regexp.MustCompile(`(?m)^DLQ\s+0\s+0 B\s+-\s+-\s+30d$`),
		regexp.MustCompile(`(?m)^jobs-bulk-sentiment\s+0\s+0\s+0$`),
		regexp.MustCompile(`(?m)^jobs-bulk-sentiment@acme\s+3\s+0\s+0$`),
		regexp.MustCompile(`(?m)^jobs-interactive-sentiment\s+1\s+1\s+0$`),
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err = ctl(t, "streams", "status", url)
		missing := 0
		for _, re := range want {
			if !re.MatchString(out) {
				missing++
			}
		}
		if err == nil && missing == 0 {
			t.Logf("streams status:\n%s", out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams status (%v), %d lines not as expected:\n%s", err, missing, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
