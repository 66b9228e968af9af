package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// newClient wraps nc in a queue client and returns it with a context that
// ends with the test or after d.
func newClient(t *testing.T, nc *nats.Conn, d time.Duration) (*queue.Client, context.Context) {
	t.Helper()
	q, err := queue.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return q, ctx
}

// moverEnv starts NATS with jetinfer's streams and Redis with a result
// store, and returns a context that ends with the test (at most 30s).
func moverEnv(t *testing.T) (*nats.Conn, *queue.Client, *store.Store, context.Context) {
	t.Helper()
	nc := testenv.StartNATS(t).Connect(t)
	q, ctx := newClient(t, nc, 30*time.Second)
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	return nc, q, store.New(testenv.StartRedis(t).Client(t), time.Hour), ctx
}

// TestMoverDeadLettersExhaustedJobs drives a job through MaxDeliver failed
// deliveries on a real server and checks that the mover, fed by the
// captured MAX_DELIVERIES advisory, moves it: record dead with reason and
// attempts, one DLQ copy, the dead record on the reply subject, the original
// gone from JOBS; then that a replay puts it back under a fresh message id.
func TestMoverDeadLettersExhaustedJobs(t *testing.T) {
	nc, q, st, ctx := moverEnv(t)

	replies := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe("chaos.reply.*", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	j := &job.Job{ID: "job1", Tenant: "acme", Task: "sentiment", Lane: job.LaneInteractive,
		Input: job.Input{Text: "hello"}, Created: time.Now().UTC()}
	if _, err := st.Create(ctx, j, "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Publish(ctx, j, "chaos.reply.job1", nil); err != nil {
		t.Fatal(err)
	}
	cfg := queue.ConsumerConfig{AckWait: time.Second, MaxDeliver: 2, MaxAckPending: 16}
	p, err := q.Pull(ctx, job.LaneInteractive, "sentiment", cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for i := 1; i <= 2; i++ {
		m, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Attempt != i {
			t.Fatalf("delivery %d has attempt %d", i, m.Attempt)
		}
		if err := m.NakWithDelay(time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}

	// The server notices the exhausted job when it would deliver it again,
	// that is while someone pulls, as a worker always does.
	pulling := make(chan struct{})
	go func() {
		defer close(pulling)
		for {
			m, err := p.Next()
			if err != nil {
				return
			}
			t.Errorf("job delivered %d times with MaxDeliver 2", m.Attempt)
		}
	}()
	mctx, stopMover := context.WithCancel(ctx)
	moverDone := make(chan error, 1)
	go func() { moverDone <- q.RunMover(mctx, st, queue.MoverConfig{}, nil) }()
	defer func() {
		stopMover()
		if err := <-moverDone; err != nil {
			t.Errorf("mover: %v", err)
		}
	}()

	var rec job.Record
	select {
	case m := <-replies:
		if err := json.Unmarshal(m.Data, &rec); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no dead record on the reply subject")
	}
	p.Stop()
	<-pulling
	if rec.ID != "job1" || rec.Status != job.StatusDead || rec.Error == nil || rec.Error.Code != job.CodeMaxDeliver || rec.Attempts != 2 {
		t.Fatalf("reply record %+v (error %+v)", rec, rec.Error)
	}
	got, err := st.Get(ctx, "acme", "job1")
	if err != nil || got.Status != job.StatusDead || got.Attempts != 2 {
		t.Fatalf("stored record %+v, %v", got, err)
	}
	js := q.JetStream()
	// The advisory is acknowledged after the original is deleted.
	for streamMsgs(t, js, queue.StreamAdvisories) != 0 || streamMsgs(t, js, job.StreamJobs) != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("JOBS %d, ADVISORIES %d messages left", streamMsgs(t, js, job.StreamJobs), streamMsgs(t, js, queue.StreamAdvisories))
		case <-time.After(20 * time.Millisecond):
		}
	}
	page, err := q.ListDead(ctx, "acme", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].JobID != "job1" || page.Entries[0].Attempts != 2 ||
		page.Entries[0].Code != job.CodeMaxDeliver || page.Entries[0].Task != "sentiment" {
		t.Fatalf("dead letters %+v", page)
	}
	if other, err := q.ListDead(ctx, "globex", 0, 10); err != nil || len(other.Entries) != 0 {
		t.Fatalf("another tenant sees %+v, %v", other, err)
	}
	if _, err := q.FindDead(ctx, "globex", "job1"); !errors.Is(err, queue.ErrDeadNotFound) {
		t.Fatalf("another tenant finds acme's dead letter: %v", err)
	}

	// Replay: the record is queued again and the job is back in JOBS under a
	// fresh message id (its own id is still inside the dedupe window).
	e, err := q.FindDead(ctx, "acme", "job1")
	if err != nil {
		t.Fatal(err)
	}
	dj, err := q.DeadJob(ctx, e)
	if err != nil || dj.ID != "job1" || dj.Input.Text != "hello" {
		t.Fatalf("dead job %+v, %v", dj, err)
	}
	if prev, ok, err := st.Requeue(ctx, dj); err != nil || !ok || prev != job.StatusDead {
		t.Fatalf("requeue: %s %v %v", prev, ok, err)
	}
	if _, ok, _ := st.Requeue(ctx, dj); ok {
		t.Fatal("a second requeue of a queued job succeeded")
	}
	if err := q.Replay(ctx, e, dj); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js, job.StreamJobs); n != 1 {
		t.Fatalf("JOBS holds %d messages after the replay", n)
	}
	if n := streamMsgs(t, js, job.StreamDLQ); n != 0 {
		t.Fatalf("DLQ holds %d messages after the replay", n)
	}
	got, _ = st.Get(ctx, "acme", "job1")
	if got.Status != job.StatusQueued || got.Attempts != 0 || got.Error != nil {
		t.Fatalf("record after replay %+v", got)
	}
}

// TestMoverIsIdempotent hands the mover the same advisory twice, as after a
// mover that died before acknowledging it: one dead letter, one dead state.
func TestMoverIsIdempotent(t *testing.T) {
	_, q, st, ctx := moverEnv(t)
	j := &job.Job{ID: "job2", Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk, Input: job.Input{Text: "x"}, Created: time.Now()}
	if _, err := q.Publish(ctx, j, "", nil); err != nil {
		t.Fatal(err)
	}
	adv, _ := json.Marshal(map[string]any{"type": "io.nats.jetstream.advisory.v1.max_deliver",
		"stream": job.StreamJobs, "consumer": "jobs-bulk-sentiment", "stream_seq": 1, "deliveries": 5})
	js := q.JetStream()
	for range 2 {
		// Published twice without a message id: the stream keeps both.
		if _, err := js.Publish(ctx, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.jobs-bulk-sentiment", adv); err != nil {
			t.Fatal(err)
		}
	}
	mctx, stopMover := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.RunMover(mctx, st, queue.MoverConfig{}, nil) }()
	for streamMsgs(t, js, queue.StreamAdvisories) != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("advisories not handled")
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopMover()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js, job.StreamDLQ); n != 1 {
		t.Fatalf("DLQ holds %d copies", n)
	}
	if n := streamMsgs(t, js, job.StreamJobs); n != 0 {
		t.Fatalf("JOBS holds %d", n)
	}
	rec, err := st.Get(ctx, "acme", "job2")
	if err != nil || rec.Status != job.StatusDead || rec.Attempts != 5 {
		t.Fatalf("record %+v, %v", rec, err)
	}
}

// TestMoverBackfillDocument moves a backfill document, which has no job
// record: its dead outcome goes to its RESULTS subject, and the mover does
// not wait for a record that will never exist.
func TestMoverBackfillDocument(t *testing.T) {
	_, q, st, ctx := moverEnv(t)
	j := &job.Job{ID: "doc-9", Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk, Backfill: "bf1", DocID: "doc-9",
		Meta: json.RawMessage(`{"source":"archive"}`), Input: job.Input{Text: "x"}, Created: time.Now()}
	if _, err := q.Publish(ctx, j, job.ResultsSubject("bf1"), nil); err != nil {
		t.Fatal(err)
	}
	adv, _ := json.Marshal(map[string]any{"stream": job.StreamJobs, "stream_seq": 1, "deliveries": 5})
	js := q.JetStream()
	if _, err := js.Publish(ctx, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.jobs-bulk-sentiment", adv); err != nil {
		t.Fatal(err)
	}
	mctx, stopMover := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.RunMover(mctx, st, queue.MoverConfig{}, nil) }()
	for streamMsgs(t, js, queue.StreamAdvisories) != 0 || streamMsgs(t, js, job.StreamJobs) != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the backfill document was not moved")
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopMover()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err := js.Stream(ctx, job.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	m, err := res.GetLastMsgForSubject(ctx, job.ResultsSubject("bf1"))
	if err != nil {
		t.Fatalf("no result for the dead document: %v", err)
	}
	var rec job.Record
	if err := json.Unmarshal(m.Data, &rec); err != nil || rec.Status != job.StatusDead || rec.DocID != "doc-9" || rec.Error.Code != job.CodeMaxDeliver {
		t.Fatalf("result %s: %v", m.Data, err)
	}
	// The result line is exported like any other: with the document's meta.
	if string(rec.Meta) != `{"source":"archive"}` {
		t.Fatalf("dead document's result lost its meta: %s", m.Data)
	}
	if _, err := st.Get(ctx, "acme", "doc-9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the mover wrote a job record for a backfill document: %v", err)
	}
	if n := streamMsgs(t, js, job.StreamDLQ); n != 1 {
		t.Fatalf("DLQ holds %d", n)
	}
}
