package chaos_test

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// news are headlines whose sentiment the AFINN model gets right.
var news = []struct{ text, label string }{
	{"Shares surged after the company reported record profit and strong growth.", "positive"},
	{"The bank collapsed amid fraud charges and heavy losses.", "negative"},
	{"Profits jumped and the board approved a generous dividend increase.", "positive"},
	{"The airline warned of bankruptcy after losses widened and lawsuits mounted.", "negative"},
}

// sentimentDoc is document i of a plain stream: a headline made unique by
// its number, so no two jobs share a text.
func sentimentDoc(i int) doc {
	n := news[i%len(news)]
	return doc{task: "sentiment", text: fmt.Sprintf("%s Story %d.", n.text, i), label: n.label}
}

// sentimentWorker is a worker spec for the cheap real model with an AckWait
// short enough that a killed worker's jobs come back within the test.
func sentimentWorker(t *testing.T) workerSpec {
	return workerSpec{models: []string{testenv.ModelDir(t, "sentiment")}, ackWait: 2 * time.Second,
		maxDeliver: 5, batchSize: 16, shutdown: 10 * time.Second}
}

// TestChaosKillWorker SIGKILLs worker processes while jobs stream in. The
// jobs a killed worker held unacknowledged come back after AckWait to the
// other worker or to its restarted self; none is lost, none ends twice.
func TestChaosKillWorker(t *testing.T) {
	c := newCluster(t)
	ws := c.startWorkers(2, sentimentWorker(t))
	n := scale(300, 3000)
	l := c.send("kill", n, 4*time.Millisecond, sentimentDoc)
	kills := scale(2, 8)
	for k := range kills {
		l.awaitAccepted((k + 1) * n / (kills + 1))
		w := ws[k%len(ws)]
		w.awaitReady()
		w.signal(syscall.SIGKILL)
		if got := <-w.exited; !strings.Contains(got, "killed") {
			t.Fatalf("worker %d exited with %q, want killed", w.slot, got)
		}
	}
	o := l.verify(2 * time.Minute)
	c.awaitDrained(30 * time.Second)
	o.report(t, "kill-worker", fmt.Sprintf("%d SIGKILLs", kills))
	if o.accepted != n {
		t.Errorf("%d of %d documents accepted", o.accepted, n)
	}
}

// TestChaosTermWorker SIGTERMs workers mid-stream: each stops fetching,
// finishes the batch it holds, delivers, acks and exits 0, so no job it held
// has to wait for AckWait and be run again.
func TestChaosTermWorker(t *testing.T) {
	c := newCluster(t)
	spec := sentimentWorker(t)
	spec.ackWait = 30 * time.Second // a job left unacknowledged would miss the deadline below
	ws := c.startWorkers(2, spec)
	n := scale(300, 2000)
	l := c.send("term", n, 4*time.Millisecond, sentimentDoc)
	terms := scale(2, 6)
	for k := range terms {
		l.awaitAccepted((k + 1) * n / (terms + 1))
		w := ws[k%len(ws)]
		w.awaitReady()
		start := time.Now()
		w.signal(syscall.SIGTERM)
		got := <-w.exited
		if got != "exit 0" && got != "exit status 0" {
			t.Fatalf("worker %d exited with %q after SIGTERM, want a clean exit", w.slot, got)
		}
		if d := time.Since(start); d > spec.shutdown {
			t.Errorf("worker %d took %s to drain", w.slot, d)
		}
	}
	o := l.verify(20 * time.Second)
	c.awaitDrained(10 * time.Second)
	o.report(t, "term-worker", fmt.Sprintf("%d SIGTERMs", terms))
	// A job a worker received twice is answered twice: the second delivery
	// finds it final and sends the stored record again. A job left
	// unacknowledged by a drained worker would also wait out AckWait,
	// past verify's deadline. The delivery count alone proves neither: a
	// message JetStream sends to a pull request whose subscriber has just
	// drained is offered again at once with the count raised, though no
	// worker ever saw it.
	if o.dupReplies != 0 {
		t.Errorf("%d jobs reached a worker more than once (%d extra replies): a drained worker left work unacknowledged", o.dupReplyJob, o.dupReplies)
	}
}

// TestChaosIngestDrain stops ingest (as SIGTERM does) while jobs stream
// in and starts it again on the same port: requests in flight finish,
// requests that arrive while it drains answer 503 or find no listener, and
// every job it answered 202 for is in JOBS and finishes.
func TestChaosIngestDrain(t *testing.T) {
	c := newCluster(t)
	c.startWorkers(1, sentimentWorker(t))
	n := scale(300, 2000)
	l := c.send("drain", n, 4*time.Millisecond, sentimentDoc)
	rounds := scale(2, 6)
	var slowest time.Duration
	for k := range rounds {
		l.awaitAccepted((k + 1) * n / (rounds + 1))
		start := time.Now()
		if err := c.stopIngest(); err != nil {
			t.Fatalf("ingest did not drain cleanly: %v", err)
		}
		slowest = max(slowest, time.Since(start))
		c.startIngest()
	}
	o := l.verify(time.Minute)
	c.awaitDrained(30 * time.Second)
	o.report(t, "ingest-drain", fmt.Sprintf("%d stops and restarts, the slowest drain took %s", rounds, slowest.Round(time.Millisecond)))
}

// TestChaosRestartNATS stops nats-server mid-stream and starts it again on
// the same store. Readiness fails at once. A short outage is ridden out by
// ingest retrying the publish with the same message id; a longer one than
// that retry (queue.DefaultPublishRetry) answers 503, and the clients' own
// retries with the same Idempotency-Key finish the job. Workers reconnect.
func TestChaosRestartNATS(t *testing.T) {
	ns := testenv.StartNATS(t)
	outages := []time.Duration{time.Second, queue.DefaultPublishRetry + 1500*time.Millisecond}
	if full {
		outages = append(outages, time.Second, 3*time.Second, queue.DefaultPublishRetry+3*time.Second)
	}
	natsOutages(t, "restart-nats", ns, outages, ns.Shutdown, ns.Restart)
}

// TestChaosKillNATS is TestChaosRestartNATS with a crash: nats-server, a
// process of its own, is SIGKILLed mid-stream and started again on its
// store. Every job JetStream acknowledged (so ingest accepted) must come
// back with the store and finish; the rest are retried by the clients.
func TestChaosKillNATS(t *testing.T) {
	ns := startNATSProc(t)
	outages := []time.Duration{500 * time.Millisecond, queue.DefaultPublishRetry + 1500*time.Millisecond}
	if full {
		outages = append(outages, 0, 2*time.Second)
	}
	natsOutages(t, "kill-nats", ns, outages, ns.kill, func() { ns.start(t) })
}

// natsOutages sends a stream of sentiment jobs through a cluster on ns and
// takes nats-server away (down, then up again) once for each outage, spread
// over the stream; then every accepted job must finish.
func natsOutages(t *testing.T, name string, ns natsServer, outages []time.Duration, down, up func()) {
	c := newClusterOn(t, ns)
	c.startWorkers(2, sentimentWorker(t))
	n := scale(300, 3000)
	l := c.send(name, n, 4*time.Millisecond, sentimentDoc)
	var desc []string
	for k, d := range outages {
		l.awaitAccepted((k + 1) * n / (len(outages) + 1))
		before := l.retries("503")
		down()
		if code := c.readyz(); code != http.StatusServiceUnavailable {
			t.Errorf("readyz with NATS down: %d, want 503", code)
		}
		time.Sleep(d)
		up()
		got := l.retries("503") - before
		desc = append(desc, fmt.Sprintf("%s down: %d answers 503", d, got))
		if d > queue.DefaultPublishRetry+time.Second && got == 0 {
			t.Errorf("NATS down for %s, longer than the publish retry, and no submission answered 503", d)
		}
	}
	o := l.verify(2 * time.Minute)
	c.awaitDrained(30 * time.Second)
	o.report(t, name, strings.Join(desc, ", "))
}

// TestChaosRestartRedis SIGKILLs redis-server mid-stream and starts it
// again on its append-only file. While it is away polling answers 503
// quickly, readiness fails, submissions answer 503, and workers nak their
// batches with a delay; afterwards every job finishes.
func TestChaosRestartRedis(t *testing.T) {
	c := newCluster(t)
	c.startWorkers(2, sentimentWorker(t))
	n := scale(300, 3000)
	l := c.send("redis", n, 4*time.Millisecond, sentimentDoc)
	rounds := scale(1, 3)
	var slowest time.Duration
	for k := range rounds {
		l.awaitAccepted((k + 1) * n / (rounds + 1))
		l.mu.Lock()
		id := l.order[0]
		l.mu.Unlock()
		c.redis.kill()
		if code := c.readyz(); code != http.StatusServiceUnavailable {
			t.Errorf("readyz with Redis down: %d, want 503", code)
		}
		start := time.Now()
		code, body, err := c.get("/v1/jobs/"+id, c.token)
		d := time.Since(start)
		slowest = max(slowest, d)
		if err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("GET job with Redis down: %d %v %v, want 503", code, body, err)
		}
		if d > 3*time.Second {
			t.Errorf("GET job with Redis down took %s", d)
		}
		time.Sleep(time.Second)
		c.redis.start(t)
	}
	o := l.verify(2 * time.Minute)
	c.awaitDrained(30 * time.Second)
	o.report(t, "restart-redis", fmt.Sprintf("%d restarts; polling answered 503 within %s", rounds, slowest.Round(time.Millisecond)))
}

func (c *cluster) readyz() int {
	resp, err := httpClient.Get(c.url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestChaosDuplicates sends every job twice at once with the same
// Idempotency-Key (ingest and JetStream make them one job), and publishes a
// late copy of some jobs straight to JOBS under another message id, as a
// publisher past the dedupe window would: the copy runs, but the job's final
// state stays the one it had.
func TestChaosDuplicates(t *testing.T) {
	c := newCluster(t)
	c.startWorkers(2, sentimentWorker(t))
	n := scale(200, 2000)
	l := &load{c: c, name: "dup", accepted: map[string]doc{}, errs: map[string]int{}, done: make(chan struct{})}
	js, err := jetstreamOf(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	lateCopies := 0
	sem := make(chan struct{}, 8)
	results := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			d := sentimentDoc(i)
			key := fmt.Sprintf("dup-%d", i)
			body, _ := json.Marshal(map[string]any{"task": d.task, "input": map[string]any{"text": d.text}})
			ids := make(chan string, 2)
			for range 2 {
				go func() {
					code, m, err := c.post("/v1/jobs?wait=1ms", c.token, key, body)
					if err != nil || (code != http.StatusAccepted && code != http.StatusOK) {
						ids <- fmt.Sprintf("error %d %v %v", code, m, err)
						return
					}
					ids <- m["id"].(string)
				}()
			}
			a, b := <-ids, <-ids
			if a != b || strings.HasPrefix(a, "error") {
				results <- fmt.Errorf("job %s: the two submissions answered %q and %q", key, a, b)
				return
			}
			l.mu.Lock()
			l.sent += 2
			l.dupIDs++
			l.accepted[a] = d
			l.order = append(l.order, a)
			l.mu.Unlock()
			results <- nil
		}()
	}
	for range n {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	close(l.done)
	// Late copies of every tenth job, once it is final or while it runs.
	for i, id := range l.order {
		if i%10 != 0 {
			continue
		}
		d := l.accepted[id]
		j := job.Job{ID: id, Tenant: "acme", Task: d.task, Lane: job.LaneInteractive, Input: job.Input{Text: d.text}, Created: time.Now().UTC()}
		data, _ := json.Marshal(j)
		msg := &nats.Msg{Subject: job.Subject(j.Lane, j.Task), Data: data, Header: nats.Header{}}
		msg.Header.Set(job.HeaderTenant, "acme")
		msg.Header.Set(job.HeaderReply, "_INBOX.chaos.late."+id)
		msg.Header.Set(job.HeaderMsgID, "late:"+id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		cancel()
		lateCopies++
	}
	o := l.verify(time.Minute)
	c.awaitDrained(30 * time.Second)
	o.report(t, "duplicates", fmt.Sprintf("%d submissions for %d jobs (each sent twice), %d late copies published to JOBS", o.sent, n, lateCopies))
	if o.dupReplyJob < lateCopies {
		t.Errorf("%d jobs got more than one reply, want at least the %d with late copies (each copy re-sends the stored record)", o.dupReplyJob, lateCopies)
	}
}

// poisonWord is the word that makes the poison model fail.
const poisonWord = testenv.PoisonWord

// poisonModel is testenv.PoisonModel, task "poison".
func poisonModel(t *testing.T) string { return testenv.PoisonModel(t) }

// TestChaosPoison mixes poison documents into a stream: documents that make
// the model fail (isolated by splitting their batch, then dead-lettered
// while their neighbours succeed), documents over the model's length with
// truncation off (dead at once), and payloads that are not jobs at all. Then
// it works the DLQ through the API and jetinferctl: list, tenant isolation,
// scope, replay.
func TestChaosPoison(t *testing.T) {
	c := newCluster(t)
	spec := sentimentWorker(t)
	spec.models = append(spec.models, poisonModel(t))
	spec.maxDeliver, spec.batchSize = 2, 8
	spec.batchWait = 20 * time.Millisecond // poison must share batches with good jobs
	ws := c.startWorkers(2, spec)
	long := strings.Repeat("Shares fell as the merger collapsed. ", 90) // about 630 tokens
	n := scale(120, 600)
	l := c.send("poison", n, 3*time.Millisecond, func(i int) doc {
		switch {
		case i%10 == 3:
			return doc{task: "poison", text: fmt.Sprintf("Story %d: the %s report hit shares.", i, poisonWord), dead: true,
				codes: []string{job.CodeModelError, job.CodeMaxDeliver}}
		case i%20 == 7:
			// The poison model refuses long texts (long_input error);
			// sentiment would window them.
			return doc{task: "poison", text: fmt.Sprintf("%d %s", i, long), dead: true,
				codes: []string{job.CodeInputTooLong}}
		case i%2 == 0:
			n := news[i%len(news)]
			return doc{task: "poison", text: fmt.Sprintf("Story %d: %s", i, n.text), label: n.label}
		default:
			return sentimentDoc(i)
		}
	})
	// Payloads no worker can decode, straight onto the subjects.
	garbage := scale(3, 10)
	for i := range garbage {
		if err := c.nc.Publish(job.Subject(job.LaneInteractive, "poison"), []byte(fmt.Sprintf("not a job %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	o := l.verify(2 * time.Minute)
	c.awaitDrained(60 * time.Second)
	splits := sumMetric(ws, "jetinfer_worker_splits")
	o.report(t, "poison", fmt.Sprintf("%d undecodable payloads; %.0f failed model calls split", garbage, splits))
	if splits == 0 {
		t.Error("no failed model call was split: the poison documents never shared a batch, the scenario proved nothing about isolation")
	}

	var wantDead []string
	for _, id := range l.order {
		if l.accepted[id].dead {
			wantDead = append(wantDead, id)
		}
	}
	// Every dead job has one dead letter, and the undecodable payloads too.
	if got, want := c.streamMsgs(job.StreamDLQ), uint64(len(wantDead)+garbage); got != want {
		t.Errorf("DLQ holds %d dead letters, want %d", got, want)
	}
	// GET /v1/dlq lists the tenant's dead jobs, page by page.
	listed := map[string]map[string]any{}
	after := ""
	for {
		code, m, err := c.get("/v1/dlq?limit=7"+after, c.token)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /v1/dlq: %d %v %v", code, m, err)
		}
		for _, e := range m["dead_letters"].([]any) {
			e := e.(map[string]any)
			listed[e["job_id"].(string)] = e
		}
		next, ok := m["next"].(float64)
		if !ok {
			break
		}
		after = fmt.Sprintf("&after=%d", int64(next))
	}
	for _, id := range wantDead {
		e, ok := listed[id]
		if !ok {
			t.Errorf("dead job %s not listed", id)
			continue
		}
		if e["reason"] == "" || e["attempts"].(float64) < 1 || e["task"] == "" {
			t.Errorf("dead letter %v lacks reason, attempts or task", e)
		}
	}
	if len(listed) != len(wantDead) {
		t.Errorf("listed %d dead letters, want %d", len(listed), len(wantDead))
	}
	other := c.issue("globex", auth.Scopes...)
	if code, m, _ := c.get("/v1/dlq", other); code != http.StatusOK || len(m["dead_letters"].([]any)) != 0 {
		t.Errorf("another tenant's GET /v1/dlq: %d %v", code, m)
	}
	noScope := c.issue("acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	if code, _, _ := c.get("/v1/dlq", noScope); code != http.StatusForbidden {
		t.Errorf("GET /v1/dlq without dlq:admin: %d, want 403", code)
	}
	victim := wantDead[0]
	if code, _, _ := c.post("/v1/dlq/"+victim+"/replay", other, "", nil); code != http.StatusNotFound {
		t.Errorf("another tenant's replay: %d, want 404", code)
	}
	if code, _, _ := c.post("/v1/dlq/no-such-job/replay", c.token, "", nil); code != http.StatusNotFound {
		t.Errorf("replay of an unknown job: %d, want 404", code)
	}

	// jetinferctl dlq list sees them too, through the API.
	out, err := runCtl(c, "dlq", "list", "--all")
	if err != nil {
		t.Fatalf("jetinferctl dlq list: %v\n%s", err, out)
	}
	for _, id := range wantDead {
		if !strings.Contains(out, id) {
			t.Errorf("jetinferctl dlq list does not show %s:\n%s", id, out)
		}
	}

	// Replay: the record says queued again, the job runs again (and, being
	// poison, dies again with a fresh dead letter and one attempt). The
	// workers are stopped first, so that the replayed job is still queued
	// when the second replay asks: a poison job dies again within
	// milliseconds, after which a second replay is rightly accepted.
	for _, w := range ws {
		w.stop()
	}
	before, _ := c.st.Get(context.Background(), "acme", victim)
	out, err = runCtl(c, "dlq", "replay", victim)
	if err != nil || !strings.Contains(out, victim+" queued") {
		t.Fatalf("jetinferctl dlq replay: %v\n%s", err, out)
	}
	if r, err := c.st.Get(context.Background(), "acme", victim); err != nil || r.Status != job.StatusQueued {
		t.Errorf("record after the replay: %+v %v, want queued", r, err)
	}
	if code, m, _ := c.post("/v1/dlq/"+victim+"/replay", c.token, "", nil); code != http.StatusNotFound && code != http.StatusConflict {
		t.Errorf("second replay while the first is queued: %d %v, want 404 or 409", code, m)
	}
	c.startWorker(spec).awaitReady()
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := c.st.Get(context.Background(), "acme", victim)
		if err == nil && r.Status == job.StatusDead && r.Finished.After(before.Finished) {
			if r.Attempts > spec.maxDeliver {
				t.Errorf("replayed job has %d attempts: its count was not reset", r.Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replayed job %s did not die again: %+v %v", victim, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, want := c.streamMsgs(job.StreamDLQ), uint64(len(wantDead)+garbage); got != want {
		t.Errorf("after the replay the DLQ holds %d dead letters, want %d (old one removed, new one added)", got, want)
	}
}

func runCtl(c *cluster, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args[:2:2], append([]string{"--url", c.url, "--token", c.token}, args[2:]...)...)
	out, err := execOutput(ctx, bins.ctl, args...)
	return out, err
}

// TestChaosSlowInference runs BERT-base NER batches that take longer than
// AckWait. The worker's InProgress heartbeats keep JetStream from handing
// the jobs to another worker while they run, so each runs once.
func TestChaosSlowInference(t *testing.T) {
	c := newCluster(t)
	spec := workerSpec{models: []string{testenv.ModelDir(t, "bert-base-cased-random-ner")}, ackWait: 400 * time.Millisecond,
		maxDeliver: 5, batchSize: 8, threads: 1, shutdown: 10 * time.Second}
	ws := c.startWorkers(2, spec)
	sentence := "Diamond Shamrock Corp said its chairman met bankers in New York and London on Tuesday to discuss the merger with Texaco Inc and Pennzoil Co."
	n := scale(32, 128)
	start := time.Now()
	l := c.send("slow", n, 5*time.Millisecond, func(i int) doc {
		return doc{task: "bench-ner", text: fmt.Sprintf("%s Report %d.", strings.Repeat(sentence+" ", 1+i%3), i)}
	})
	o := l.verify(3 * time.Minute)
	c.awaitDrained(30 * time.Second)
	elapsed := time.Since(start)
	batches, beats := sumMetric(ws, "jetinfer_worker_batches"), sumMetric(ws, "jetinfer_worker_heartbeats")
	o.report(t, "slow-inference", fmt.Sprintf("AckWait %s; longest model call %s; %d jobs in %s, %.0f model calls, %.0f InProgress rounds",
		spec.ackWait, o.maxInfer.Round(time.Millisecond), n, elapsed.Round(100*time.Millisecond), batches, beats))
	if o.redelivered != 0 || o.dupReplies != 0 {
		t.Errorf("%d jobs were delivered again while their batch ran (%d extra replies)", o.redelivered, o.dupReplies)
	}
	// At least one model call outlived AckWait, or the scenario proved
	// nothing.
	if o.maxInfer <= spec.ackWait || beats < 3 {
		t.Errorf("the longest model call took %s (%.0f heartbeat rounds): none ran longer than AckWait %s", o.maxInfer, beats, spec.ackWait)
	}
}

// TestChaosLostCreateAnswer recreates what a Redis crash can leave behind:
// an attempt's queued record was written, but the attempt failed before it
// published (its answer from Redis was lost, or Redis was gone when it tried
// to forget the record). The client's retry with the same Idempotency-Key
// must enqueue the job, not answer 202 for a job in no queue. The full
// Redis-restart scenario found this: 2 of 3,000 jobs stayed queued.
func TestChaosLostCreateAnswer(t *testing.T) {
	c := newCluster(t)
	c.startWorkers(1, sentimentWorker(t))
	d := sentimentDoc(7)
	key := "lost-create-answer"
	// What ingest derives from the request: the job id from the tenant and
	// the Idempotency-Key, the request digest from task, lane, text and
	// options (internal/ingest newJobID and requestHash).
	enc := base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
	sum := sha256.Sum256([]byte("idem\x00acme\x00" + key))
	id := enc.EncodeToString(sum[:16])
	h := sha256.New()
	for _, s := range []string{d.task, string(job.LaneInteractive), d.text, "{}"} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	j := &job.Job{ID: id, Tenant: "acme", Task: d.task, Lane: job.LaneInteractive, Input: job.Input{Text: d.text}, Created: time.Now().UTC()}
	if cr, err := c.st.Create(context.Background(), j, enc.EncodeToString(h.Sum(nil))); err != nil || !cr.New {
		t.Fatalf("create: %+v %v", cr, err)
	}
	body, _ := json.Marshal(map[string]any{"task": d.task, "input": map[string]any{"text": d.text}})
	code, m, err := c.post("/v1/jobs", c.token, key, body)
	if err != nil || code != http.StatusAccepted || m["id"] != id {
		t.Fatalf("retry: %d %v %v (want 202 for job %s)", code, m, err, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.st.Get(context.Background(), "acme", id)
		if err == nil && r.Status == job.StatusSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s answered 202 but never ran: %+v %v", id, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
