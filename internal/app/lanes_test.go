package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

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
