package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// These tests run the worker's loop against a real result store (Redis)
// and a queue faked at the worker's own Queue interface, so that each
// scheduling and settling rule can be driven and observed exactly. The
// queue's JetStream side is covered by internal/queue and internal/app.

const task = "fake"

// settlement is how the worker settled one message.
type settlement struct {
	id     string
	kind   string // ack, nak, term
	delay  time.Duration
	reason string
}

// fakeQueue is a worker.Queue over channels: one per lane, shared by every
// puller of that lane, so that a puller that stops leaves what it did not
// hand out to the next one, as a durable consumer does.
type fakeQueue struct {
	lanes   map[job.Lane]chan *worker.Msg
	settled chan settlement
	nexts   chan job.Lane // a puller waits in Next

	mu      sync.Mutex
	pullers map[job.Lane][]*fakePuller
	replies []job.Delivery
	results []job.Delivery
	dead    map[string]string // job id → code
	// refuse is how many PublishResults calls RESULTS refuses as full.
	refuse int
}

func newFakeQueue() *fakeQueue {
	q := &fakeQueue{lanes: map[job.Lane]chan *worker.Msg{}, settled: make(chan settlement, 1024),
		nexts: make(chan job.Lane, 1024), pullers: map[job.Lane][]*fakePuller{}, dead: map[string]string{}}
	for _, l := range job.Lanes {
		q.lanes[l] = make(chan *worker.Msg, 1024)
	}
	return q
}

func (q *fakeQueue) Pull(_ context.Context, l job.Lane, tk string, _ int) (worker.Puller, error) {
	if tk != task {
		return nil, fmt.Errorf("unknown task %s", tk)
	}
	p := &fakePuller{q: q, lane: l, stop: make(chan struct{})}
	q.mu.Lock()
	q.pullers[l] = append(q.pullers[l], p)
	q.mu.Unlock()
	return p, nil
}

func (q *fakeQueue) Reply(_ context.Context, ds []job.Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.replies = append(q.replies, ds...)
	return nil
}

func (q *fakeQueue) PublishResults(_ context.Context, ds []job.Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.refuse > 0 {
		q.refuse--
		de := &job.DeliverError{Err: job.ErrFull}
		for i := range ds {
			de.Failed = append(de.Failed, i)
		}
		return de
	}
	q.results = append(q.results, ds...)
	return nil
}

func (q *fakeQueue) DeadLetter(_ context.Context, m *worker.Msg, code, reason string) error {
	q.mu.Lock()
	q.dead[m.Job.ID] = code
	q.mu.Unlock()
	return m.Term(code + ": " + reason)
}

// push queues j on its lane as delivery attempt.
func (q *fakeQueue) push(j *job.Job, reply string, attempt int) {
	data, _ := json.Marshal(j)
	q.lanes[j.Lane] <- &worker.Msg{Job: *j, Reply: reply, Attempt: attempt, Enqueued: time.Now(),
		Subject: job.Subject(j.Lane, j.Task), Data: data, Settler: &fakeSettler{q: q, id: j.ID}}
}

type fakePuller struct {
	q       *fakeQueue
	lane    job.Lane
	stop    chan struct{}
	once    sync.Once
	drained bool
	// src, when set, is a tenant's channel (fairQueue); nil pulls the
	// lane's, and counts the lane's Next calls.
	src     chan *worker.Msg
	onDrain func()
}

func (p *fakePuller) Next() (*worker.Msg, error) {
	src := p.src
	if src == nil {
		p.q.nexts <- p.lane
		src = p.q.lanes[p.lane]
	}
	// A stopped puller takes nothing more, as a drained consumer pulls
	// nothing more from the server: select alone would pick at random
	// between the stop and a message queued meanwhile for the next puller.
	select {
	case <-p.stop:
		return nil, job.ErrStopped
	default:
	}
	select {
	case m := <-src:
		return m, nil
	case <-p.stop:
		return nil, job.ErrStopped
	}
}

func (p *fakePuller) Stop() { p.once.Do(func() { close(p.stop) }) }

func (p *fakePuller) Drain() {
	p.q.mu.Lock()
	p.drained = true
	p.q.mu.Unlock()
	p.Stop()
	if p.onDrain != nil {
		p.onDrain()
	}
}

type fakeSettler struct {
	q  *fakeQueue
	id string
}

func (s *fakeSettler) Ack() error { s.q.settled <- settlement{id: s.id, kind: "ack"}; return nil }
func (s *fakeSettler) NakWithDelay(d time.Duration) error {
	s.q.settled <- settlement{id: s.id, kind: "nak", delay: d}
	return nil
}
func (s *fakeSettler) Term(reason string) error {
	s.q.settled <- settlement{id: s.id, kind: "term", reason: reason}
	return nil
}
func (s *fakeSettler) InProgress() error { return nil }

// fakeModel runs documents whose text decides what happens: "poison" fails
// any call it is in, "flaky" fails alone with a transient error, "later"
// asks to be retried after 7s, "toolong" cannot be prepared. A gate, when
// set, holds each call until the test lets it go: a send on it lets one
// call through, release all of them.
type fakeModel struct {
	gate    chan struct{}
	opened  sync.Once
	started chan []string // each call's texts, as it starts

	mu    sync.Mutex
	calls [][]string
}

type prep struct{ text string }

func (p prep) Rows() int   { return 1 }
func (p prep) Tokens() int { return 2 + len(strings.Fields(p.text)) }

func (m *fakeModel) Task() string { return task }

func (m *fakeModel) Prepare(in job.Input, _ job.Options) (worker.Prepared, error) {
	text := in.Text
	if text == "toolong" {
		return nil, job.Permanent(job.CodeInputTooLong, errors.New("input too long"))
	}
	return prep{text}, nil
}

func (m *fakeModel) Run(_ context.Context, in []worker.Prepared) ([]worker.Output, worker.RunStats, error) {
	texts := make([]string, len(in))
	for i, p := range in {
		texts[i] = p.(prep).text
	}
	m.mu.Lock()
	m.calls = append(m.calls, texts)
	m.mu.Unlock()
	if m.started != nil {
		m.started <- texts
	}
	if m.gate != nil {
		<-m.gate
	}
	if slices.Contains(texts, "poison") {
		return nil, worker.RunStats{}, errors.New("kernel failed")
	}
	outs := make([]worker.Output, len(in))
	for i, t := range texts {
		switch t {
		case "flaky":
			outs[i].Err = errors.New("transient")
		case "later":
			outs[i].Err = job.RetryAfter(7*time.Second, errors.New("busy"))
		default:
			outs[i].Result = json.RawMessage(`{"label":"ok"}`)
		}
	}
	return outs, worker.RunStats{Rows: len(in), PaddedTokens: 4 * len(in)}, nil
}

// release lets every call through from now on.
func (m *fakeModel) release() {
	if m.gate != nil {
		m.opened.Do(func() { close(m.gate) })
	}
}

func (m *fakeModel) callsSoFar() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

type testBundle struct {
	ctx   context.Context
	w     *worker.Worker
	q     *fakeQueue
	st    *store.Store
	model *fakeModel
	// stop asks the worker for a soft stop; done reports Run's result.
	stop func()
	done chan error
	// nexts counts each lane's Next calls seen so far (waitNexts).
	nexts map[job.Lane]int
}

// setup starts a worker over a fake queue, a real store and a fake model,
// configured by cfg (and gated when gated is true).
func setup(t *testing.T, cfg worker.Config, gated bool) *testBundle {
	t.Helper()
	q := newFakeQueue()
	return start(t, cfg, gated, q, q)
}

// start starts a worker over wq, a queue built on q, as setup does.
func start(t *testing.T, cfg worker.Config, gated bool, q *fakeQueue, wq worker.Queue) *testBundle {
	t.Helper()
	return startOn(t, cfg, gated, q, wq, testenv.StartRedis(t).Client(t))
}

// startOn is start with the store on rdb.
func startOn(t *testing.T, cfg worker.Config, gated bool, q *fakeQueue, wq worker.Queue, rdb redis.UniversalClient) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	b := &testBundle{ctx: ctx, q: q, st: store.New(rdb, time.Hour),
		model: &fakeModel{started: make(chan []string, 256)}, done: make(chan error, 1), nexts: map[job.Lane]int{}}
	if gated {
		b.model.gate = make(chan struct{})
	}
	soft, stop := context.WithCancel(ctx)
	b.stop = stop
	w := worker.New(cfg, wq, b.st, []worker.Model{b.model}, nil, nil)
	b.w = w
	go func() { b.done <- w.Run(soft, ctx) }()
	t.Cleanup(func() {
		stop()
		b.model.release()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return b
}

// job makes a job in the store and queues it.
func (b *testBundle) job(t *testing.T, id, text string, lane job.Lane, attempt int) *job.Job {
	t.Helper()
	j := &job.Job{ID: id, Tenant: "acme", Task: task, Lane: lane, Input: job.Input{Text: text}, Created: time.Now()}
	if _, err := b.st.Create(b.ctx, j, "h"); err != nil {
		t.Fatal(err)
	}
	b.q.push(j, "", attempt)
	return j
}

// settled waits for n settlements and returns them by job id.
func (b *testBundle) settled(t *testing.T, n int) map[string]settlement {
	t.Helper()
	got := map[string]settlement{}
	for len(got) < n {
		select {
		case s := <-b.q.settled:
			got[s.id] = s
		case <-b.ctx.Done():
			t.Fatalf("%d of %d messages settled: %v", len(got), n, got)
		}
	}
	return got
}

// waitNexts waits until lane's pullers have entered Next n times in all
// since the worker started.
func (b *testBundle) waitNexts(t *testing.T, lane job.Lane, n int) {
	t.Helper()
	for b.nexts[lane] < n {
		select {
		case l := <-b.q.nexts:
			b.nexts[l]++
		case <-b.ctx.Done():
			t.Fatalf("%s pullers entered Next %d times, want %d", lane, b.nexts[lane], n)
		}
	}
}

func (b *testBundle) status(t *testing.T, id string) job.Status {
	t.Helper()
	rec, err := b.st.Get(b.ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Status
}

func TestWorker(t *testing.T) {
	t.Parallel()

	t.Run("LanesInteractiveOvertakesBulkBacklog", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{BatchSize: 8}, true)
		b.job(t, "b0", "bulk zero", job.LaneBulk, 1)
		<-b.model.started // the model is busy with b0
		for i := 1; i <= 40; i++ {
			b.job(t, fmt.Sprintf("b%d", i), "bulk", job.LaneBulk, 1)
		}
		// While the model is busy a bulk batch grows to a window of four
		// calls (32) and waits: b0, b1…b32, and b33 handed to the pump.
		b.waitNexts(t, job.LaneBulk, 34)
		b.job(t, "i0", "interactive", job.LaneInteractive, 1)
		// The interactive puller is back in Next once the collector took i0.
		b.waitNexts(t, job.LaneInteractive, 2)
		b.model.gate <- struct{}{} // b0 done
		second := <-b.model.started
		if !slices.Equal(second, []string{"interactive"}) {
			t.Fatalf("the call after the busy one ran %v; want the interactive job alone, before the waiting bulk batch", second)
		}
		b.model.gate <- struct{}{}
		// The deferred batch runs next, cut to a quarter call while
		// interactive traffic is about.
		if third := <-b.model.started; len(third) != 2 || third[0] != "bulk" {
			t.Fatalf("the deferred bulk batch ran %v; want a quarter call (2)", third)
		}
		b.model.release()
		got := b.settled(t, 42)
		for id, s := range got {
			if s.kind != "ack" {
				t.Errorf("%s settled %+v", id, s)
			}
		}
		if st := b.status(t, "b40"); st != job.StatusSucceeded {
			t.Errorf("the bulk backlog's last job is %s: starved", st)
		}
	})

	t.Run("LatencyBudgetCapsBulkWhileInteractiveRecent", func(t *testing.T) {
		t.Parallel()
		// A budget far below one row's learnt cost caps bulk batches at one
		// document while interactive traffic is recent.
		b := setup(t, worker.Config{BatchSize: 64, LatencyBudget: time.Nanosecond}, true)
		b.job(t, "i0", "interactive", job.LaneInteractive, 1)
		<-b.model.started
		b.model.gate <- struct{}{}
		b.settled(t, 1)
		// Past the one second in which interactive traffic is "about" (and
		// bulk batches are quarter size anyway), within the minutes in
		// which it is recent: the rule is about time, so the test waits.
		time.Sleep(1100 * time.Millisecond)
		b.job(t, "b0", "bulk zero", job.LaneBulk, 1)
		<-b.model.started
		for i := 1; i <= 20; i++ {
			b.job(t, fmt.Sprintf("b%d", i), "bulk", job.LaneBulk, 1)
		}
		b.waitNexts(t, job.LaneBulk, 3) // b0 ran, b1 batched, b2 handed out
		b.model.release()
		b.settled(t, 21)
		for _, c := range b.model.callsSoFar()[2:] {
			if len(c) != 1 {
				t.Fatalf("a bulk call ran %d documents within a budget of one", len(c))
			}
		}
	})

	t.Run("RetriesTransientFailureWithBackoff", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{RetryBase: time.Second}, false)
		b.job(t, "f1", "flaky", job.LaneBulk, 1)
		b.job(t, "f3", "flaky", job.LaneBulk, 3)
		b.job(t, "l1", "later", job.LaneBulk, 1)
		got := b.settled(t, 3)
		for id, want := range map[string]time.Duration{"f1": time.Second, "f3": 4 * time.Second, "l1": 7 * time.Second} {
			if s := got[id]; s.kind != "nak" || s.delay != want {
				t.Errorf("%s settled %+v, want a nak after %s", id, s, want)
			}
			if st := b.status(t, id); st.Final() {
				t.Errorf("%s is %s after a transient failure", id, st)
			}
		}
	})

	t.Run("SplitsPoisonBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{BatchWait: 200 * time.Millisecond}, false)
		for _, id := range []string{"a", "b", "poison", "c"} {
			text := "fine text"
			if id == "poison" {
				text = "poison"
			}
			b.job(t, id, text, job.LaneBulk, 1)
		}
		got := b.settled(t, 4)
		if s := got["poison"]; s.kind != "term" || !strings.Contains(s.reason, "alone") {
			t.Errorf("poison settled %+v, want dead-lettered as failing alone", s)
		}
		if code := b.q.dead["poison"]; code != job.CodeModelError {
			t.Errorf("poison dead letter code %q", code)
		}
		for _, id := range []string{"a", "b", "c"} {
			if got[id].kind != "ack" || b.status(t, id) != job.StatusSucceeded {
				t.Errorf("neighbour %s settled %+v, status %s", id, got[id], b.status(t, id))
			}
		}
		if b.status(t, "poison") != job.StatusDead {
			t.Errorf("poison is %s", b.status(t, "poison"))
		}
		if calls := b.model.callsSoFar(); len(calls[0]) != 4 {
			t.Errorf("the first call ran %v, want the four together", calls[0])
		}
	})

	t.Run("PermanentErrorDeadLettersAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{}, false)
		b.job(t, "x", "toolong", job.LaneInteractive, 1)
		got := b.settled(t, 1)
		if got["x"].kind != "term" || b.q.dead["x"] != job.CodeInputTooLong {
			t.Errorf("settled %+v, dead letter %q", got["x"], b.q.dead["x"])
		}
		if calls := b.model.callsSoFar(); len(calls) != 0 {
			t.Errorf("the model ran %v", calls)
		}
	})

	t.Run("ParksBackfillWhileResultsFull", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{}, false)
		b.q.mu.Lock()
		b.q.refuse = 2
		b.q.mu.Unlock()
		j := &job.Job{ID: "bf1:d1", Tenant: "acme", Task: task, Lane: job.LaneBackfill, Backfill: "bf1", DocID: "d1",
			Meta: json.RawMessage(`{"n":1}`), Input: job.Input{Text: "doc"}, Created: time.Now()}
		b.q.push(j, job.ResultsSubject("bf1"), 1)
		got := b.settled(t, 1)
		if got["bf1:d1"].kind != "ack" {
			t.Fatalf("settled %+v", got["bf1:d1"])
		}
		// The first puller's two Next calls, then the fresh puller's.
		b.waitNexts(t, job.LaneBackfill, 3)
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		ps := b.q.pullers[job.LaneBackfill]
		if len(ps) != 2 || !ps[0].drained {
			t.Errorf("backfill lane: %d pullers, first drained %v; want it paused and pulled again", len(ps), len(ps) > 0 && ps[0].drained)
		}
		if len(b.q.results) != 1 || b.q.results[0].Subject != job.ResultsSubject("bf1") {
			t.Fatalf("results %+v", b.q.results)
		}
		var rec job.Record
		if err := json.Unmarshal(b.q.results[0].Data, &rec); err != nil || rec.Status != job.StatusSucceeded || string(rec.Meta) != `{"n":1}` {
			t.Errorf("result line %s: %v", b.q.results[0].Data, err)
		}
		if len(b.q.replies) != 0 {
			t.Errorf("a backfill document was replied to: %+v", b.q.replies)
		}
	})

	t.Run("SoftStopDrainsWhatIsInHand", func(t *testing.T) {
		t.Parallel()
		b := setup(t, worker.Config{BatchSize: 2}, true)
		b.job(t, "d0", "first", job.LaneBulk, 1)
		<-b.model.started
		b.job(t, "d1", "second", job.LaneBulk, 1)
		b.job(t, "d2", "third", job.LaneBulk, 1)
		b.waitNexts(t, job.LaneBulk, 3) // the bulk puller handed out both and waits again
		b.stop()
		b.model.release()
		select {
		case err := <-b.done:
			if err != nil {
				t.Fatalf("Run after a soft stop: %v", err)
			}
			b.done <- nil // for the cleanup
		case <-b.ctx.Done():
			t.Fatal("Run did not return after a soft stop")
		}
		got := b.settled(t, 3)
		for _, id := range []string{"d0", "d1", "d2"} {
			if got[id].kind != "ack" || b.status(t, id) != job.StatusSucceeded {
				t.Errorf("%s settled %+v, status %s", id, got[id], b.status(t, id))
			}
		}
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		for l, ps := range b.q.pullers {
			for _, p := range ps {
				if !p.drained {
					t.Errorf("a %s puller was not drained", l)
				}
			}
		}
	})
}
