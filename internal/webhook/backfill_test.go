package webhook_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

// A backfill's completion queued twice (two publishers that both believe
// they decided it) reaches the receiver once, verified, with its id
// derived from the backfill, its counts and the export cursor of the
// results stored so far; the events are counted by type.
func TestBackfillEventQueuedOnce(t *testing.T) {
	f := setup(t, webhook.RetryPolicy{Base: 100 * time.Millisecond, Max: 300 * time.Millisecond, MaxAge: 3 * time.Second})
	ep := f.endpoint(t, f.rcv, "/bf", map[string]any{})
	ctx := context.Background()
	// Three results stored in RESULTS, as workers store them first.
	var ds []job.Delivery
	for _, d := range []string{"a", "b", "c"} {
		ds = append(ds, job.Delivery{Subject: job.ResultsSubject("bf_1"), MsgID: "bf_1:" + d, Data: []byte(`{}`)})
	}
	if err := f.q.PublishResults(ctx, ds); err != nil {
		t.Fatal(err)
	}
	last, err := f.q.LastResultSeq(ctx, "bf_1")
	if err != nil || last == 0 {
		t.Fatalf("last result seq %d %v", last, err)
	}
	ev := store.BackfillEvent{Kind: "completed", Tenant: tenant, Backfill: "bf_1", Webhook: ep.ID, Task: "sentiment",
		State: "completed", Submitted: 3, Succeeded: 2, Dead: 1, Reused: 1, At: time.Now()}
	for range 2 {
		if err := f.pub.PublishBackfill(ctx, []store.BackfillEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "delivered", func() bool { return f.attempts(t, ep.ID, "delivered") >= 1 })
	st := f.rcv.state("/bf")
	if st.Invalid != 0 || st.Duplicates != 0 || len(st.Events) != 1 {
		t.Fatalf("receiver saw %+v; want one verified event", st)
	}
	var data webhook.BackfillData
	if err := json.Unmarshal(st.Events[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if got := st.Events[0]; got.ID != "msg_bf_1_completed" || got.Type != webhook.TypeBackfillCompleted ||
		data.ID != "bf_1" || data.State != "completed" || data.Counts.Done != 3 || data.Counts.Reused != 1 ||
		data.Results.Cursor != last || data.Results.URL != "/v1/backfills/bf_1/results" {
		t.Fatalf("event %+v: %+v", got, data)
	}
	n := f.counted(t, "jetinfer.webhook.backfill_events", attribute.String("tenant", tenant),
		attribute.String("type", webhook.TypeBackfillCompleted))
	if n != 2 {
		t.Fatalf("backfill_events counted %d, want 2 (both queue calls)", n)
	}
}
