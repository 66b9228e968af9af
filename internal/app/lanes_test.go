package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// An interactive job submitted behind a backlog of bulk jobs is served
// before almost all of them: the worker fills batches from the interactive
// lane first, and a bulk window waiting for the model makes way for it.
func TestInteractiveOvertakesBulkBacklog(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorker()() // announces the task, then stops: the backlog builds up
	const n = 1000
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment", "lane": "bulk",
					"input": map[string]any{"text": fmt.Sprintf("Archive story %d: shares rose after results.", i)}})
				if r.status != http.StatusAccepted {
					errs <- fmt.Sprintf("bulk %d: %d %s", i, r.status, r.body)
					continue
				}
				ids[i] = r.json(t)["id"].(string)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment",
		"input": map[string]any{"text": "Breaking: the central bank cut rates."}})
	if r.status != http.StatusAccepted {
		t.Fatalf("interactive: %d %s", r.status, r.body)
	}
	inter := r.json(t)["id"].(string)

	s.startWorker()
	st := store.New(s.redis.Client(t), time.Hour)
	finished := func(id string) time.Time {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			rec, err := st.Get(t.Context(), "acme", id)
			if err == nil && rec.Status.Final() {
				if rec.Status != job.StatusSucceeded {
					t.Fatalf("job %s: %s %+v", id, rec.Status, rec.Error)
				}
				return rec.Finished
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s not final: %+v %v", id, rec, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	interDone := finished(inter)
	before := 0
	for _, id := range ids {
		if finished(id).Before(interDone) {
			before++
		}
	}
	// The first batch may be a bulk window already formed when the
	// interactive job arrives; it must not wait for much more than that.
	if before > n/4 {
		t.Fatalf("%d of %d bulk jobs finished before the interactive job", before, n)
	}
	t.Logf("%d of %d bulk jobs finished before the interactive job", before, n)
}

// An interactive job submitted while the worker is busy with a bulk backlog
// waits behind the bulk work in hand, not behind the backlog.
func TestInteractiveDuringBulkRun(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	q := s.announce("sentiment")
	const n = 3000
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("bulk-%d", i)
		j := &job.Job{ID: ids[i], Tenant: "acme", Task: "sentiment", Lane: job.LaneBulk,
			Input: job.Input{Text: fmt.Sprintf("Archive story %d: shares rose after results.", i)}, Created: time.Now().UTC()}
		if _, err := q.Publish(t.Context(), j, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	s.startWorker()
	st := store.New(s.redis.Client(t), time.Hour)
	// Wait until the worker is well into the backlog.
	eventually(t, "bulk work under way", func() bool {
		rec, err := st.Get(t.Context(), "acme", ids[100])
		return err == nil && rec.Status.Final()
	})
	submitted := time.Now()
	r := s.do("POST", "/v1/jobs?wait=10s", s.token, map[string]any{"task": "sentiment",
		"input": map[string]any{"text": "Breaking: the central bank cut rates."}})
	if r.status != http.StatusOK {
		t.Fatalf("interactive: %d %s", r.status, r.body)
	}
	interDone := time.Now()
	behind, after := 0, 0
	for _, id := range ids {
		var rec *job.Record
		eventually(t, "bulk job "+id+" final", func() bool {
			var err error
			rec, err = st.Get(t.Context(), "acme", id)
			return err == nil && rec.Status.Final()
		})
		switch {
		case rec.Finished.After(interDone):
			after++
		case rec.Finished.After(submitted):
			behind++ // finished while the interactive job was in flight
		}
	}
	if after < n/3 {
		t.Fatalf("only %d of %d bulk jobs were left when the interactive job finished: the test proved nothing", after, n)
	}
	// It waits for the bulk work already in the worker's hands (a window
	// or two of four calls) and for what finishes while ingest handles it,
	// not for the backlog: served in arrival order, it would finish after
	// all of it.
	if behind*4 > after {
		t.Fatalf("%d bulk jobs finished while the interactive job was in flight", behind)
	}
	t.Logf("interactive job took %s; %d bulk jobs finished meanwhile, %d after", interDone.Sub(submitted), behind, after)
}

// Bulk jobs submitted behind a backfill's backlog do not wait for the whole
// backfill: backfill documents have a lane of their own, which a worker
// serves alike with the bulk lane.
func TestBulkJobsOvertakeBackfillBacklog(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorker()() // announces the task, then stops: the backlog builds up
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	r := s.do("POST", "/v1/backfills", tok, map[string]any{"task": "sentiment", "name": "archive"})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	const n = 3000
	if a := s.sendDocs(id, tok, "application/x-ndjson", archive(0, n, n)); a.Accepted != n {
		t.Fatalf("documents: %+v", a)
	}
	const bulk = 20
	ids := make([]string, bulk)
	for i := range ids {
		r := s.do("POST", "/v1/jobs", s.token, map[string]any{"task": "sentiment", "lane": "bulk",
			"input": map[string]any{"text": fmt.Sprintf("Story %d: the merger was called off.", i)}})
		if r.status != http.StatusAccepted {
			t.Fatalf("bulk %d: %d %s", i, r.status, r.body)
		}
		ids[i] = r.json(t)["id"].(string)
	}

	s.startWorker()
	st := store.New(s.redis.Client(t), time.Hour)
	for _, id := range ids {
		eventually(t, "bulk job "+id+" final", func() bool {
			rec, err := st.Get(t.Context(), "acme", id)
			return err == nil && rec.Status.Final()
		})
	}
	p := s.progress(id, tok)
	// In one FIFO lane the bulk jobs would wait for all n documents; served
	// alike, they wait for about a window of them.
	if done := p.Succeeded + p.Failed + p.Dead; done > n/2 {
		t.Fatalf("%d of %d backfill documents finished before the %d bulk jobs submitted after them", done, n, bulk)
	} else {
		t.Logf("%d of %d backfill documents finished before the %d bulk jobs submitted after them", done, n, bulk)
	}
	s.awaitBackfill(id, tok, func(p progress) bool { return p.Succeeded == n })
}
