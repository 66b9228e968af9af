package queue_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestResultsFullRefusesThenPurges fills a small RESULTS stream and checks
// that it refuses new results (ErrFull, naming the refused deliveries)
// instead of dropping the oldest, that a reader resumes after a sequence,
// and that purging what was read frees the space for the refused results.
func TestResultsFullRefusesThenPurges(t *testing.T) {
	q, ctx := newClient(t, testenv.StartNATS(t).Connect(t), 30*time.Second)
	topo := queue.DefaultTopology()
	topo.ResultsMaxBytes = 16 << 10
	if err := q.EnsureStreams(ctx, topo); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("r", 900)
	delivery := func(bf string, i int) queue.Delivery {
		return queue.Delivery{Subject: job.ResultsSubject(bf), MsgID: fmt.Sprintf("%s-%d", bf, i),
			Data: []byte(fmt.Sprintf(`{"doc_id":"%s-%d","pad":%q}`, bf, i, payload))}
	}
	// Fill the stream with bf1's results, one batch at a time, until it
	// refuses some.
	var stored int
	var refused []queue.Delivery
	for i := 0; refused == nil && i < 100; i += 4 {
		ds := []queue.Delivery{delivery("bf1", i), delivery("bf1", i+1), delivery("bf1", i+2), delivery("bf1", i+3)}
		err := q.PublishResults(ctx, ds)
		var de *queue.DeliverError
		switch {
		case err == nil:
			stored += len(ds)
		case errors.As(err, &de) && errors.Is(err, queue.ErrFull):
			stored += len(ds) - len(de.Failed)
			for _, k := range de.Failed {
				refused = append(refused, ds[k])
			}
		default:
			t.Fatalf("deliver: %v", err)
		}
	}
	if refused == nil {
		t.Fatal("a 16 KiB RESULTS took 100 results of 900 bytes")
	}
	// Nothing was dropped to make room: the first result is still there.
	rr, err := q.ReadResults(ctx, "bf1", 0)
	if err != nil {
		t.Fatal(err)
	}
	data, first, pending, err := rr.Next(ctx, 5*time.Second)
	if err != nil || !strings.Contains(string(data), `"bf1-0"`) || first != 1 || int(pending) != stored-1 {
		t.Fatalf("first result %.40s seq %d pending %d (stored %d): %v", data, first, pending, stored, err)
	}
	_, second, _, err := rr.Next(ctx, 5*time.Second)
	rr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// A reader that starts after the first result begins with the second.
	rr, err = q.ReadResults(ctx, "bf1", first)
	if err != nil {
		t.Fatal(err)
	}
	if _, seq, _, err := rr.Next(ctx, 5*time.Second); err != nil || seq != second {
		t.Fatalf("reading after %d gave seq %d: %v", first, seq, err)
	}
	rr.Stop()
	// Purging through the second result frees room for the refused ones,
	// leaves the rest, and touches no other backfill.
	if err := q.PublishResults(ctx, []queue.Delivery{delivery("bf2", 0)}); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("another backfill's result into a full stream: %v", err)
	}
	if err := q.PurgeResults(ctx, "bf1", second); err != nil {
		t.Fatal(err)
	}
	if err := q.PublishResults(ctx, refused[:1]); err != nil {
		t.Fatalf("after the purge: %v", err)
	}
	rr, err = q.ReadResults(ctx, "bf1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Stop()
	if _, seq, pending, err := rr.Next(ctx, 5*time.Second); err != nil || seq != second+1 || int(pending) != stored-2 {
		t.Fatalf("after the purge the first result is seq %d with %d pending, want %d and %d: %v", seq, pending, second+1, stored-2, err)
	}
}
