package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// newR3 starts a real 3-node NATS cluster (testenv.Cluster: the
// nats/cluster configurations as processes), and the system on it with R3
// streams and two workers.
func newR3(t *testing.T) (*cluster, *testenv.Cluster) {
	t.Helper()
	ns := testenv.StartNATSCluster(t)
	c := newClusterR(t, ns, testenv.ClusterSize)
	c.startWorkers(2, sentimentWorker(t))
	return c, ns
}

// killLeader SIGKILLs the node leading JOBS and returns its index.
func killLeader(c *cluster, ns *testenv.Cluster) int {
	i := ns.Leader(c.t, c.nc, job.StreamJobs)
	ns.Kill(i)
	return i
}

// TestChaosClusterKillLeaderSync SIGKILLs the JOBS stream's leader while
// synchronous calls (POST /v1/infer) and fire-and-forget jobs stream in,
// then starts the node again. Every synchronous call is answered, or gets
// 503 with Retry-After while JetStream elects a new leader; every accepted
// job finishes once. The line reports how long synchronous calls went
// unanswered around each kill.
func TestChaosClusterKillLeaderSync(t *testing.T) {
	c, ns := newR3(t)
	n := scale(300, 2000)
	l := c.send("r3-leader-sync", n, 10*time.Millisecond, sentimentDoc)
	probe := c.probeSync(2)
	kills := scale(1, 3)
	var desc []string
	for k := range kills {
		l.awaitAccepted((k + 1) * n / (kills + 1))
		at := time.Now()
		i := killLeader(c, ns)
		// Wait for a synchronous answer after the kill, so the window is
		// measured before the node returns.
		probe.awaitOKAfter(at, 2*time.Minute)
		ns.Start(i)
		desc = append(desc, fmt.Sprintf("killed leader %s", ns.Nodes[i].Name))
	}
	l.wait()
	st := probe.stop()
	o := l.verify(3 * time.Minute)
	c.awaitDrained(time.Minute)
	o.report(t, "r3-leader-sync", strings.Join(desc, ", ")+"; "+st.String())
	st.check(t)
}

// TestChaosClusterKillLeaderBackfill SIGKILLs the JOBS stream's leader while
// a backfill's documents are uploaded and run. An upload that meets the
// election is answered 503 and sent again (documents already taken count
// as duplicates); the backfill completes with exactly one result per
// document.
func TestChaosClusterKillLeaderBackfill(t *testing.T) {
	c, ns := newR3(t)
	n := scale(1000, 10000)
	const chunk = 100
	status, m, err := c.post("/v1/backfills", c.token, "", []byte(`{"task":"sentiment"}`))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create backfill: %d %v %v", status, m, err)
	}
	id, _ := m["id"].(string)
	uploaded := make(chan int, n/chunk)
	retried := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for from := 0; from < n; from += chunk {
			body := docsChunk(from, min(from+chunk, n))
			_, resent, err := uploadChunk(c, id, body)
			retried += resent
			if err != nil {
				t.Errorf("documents from %d: %v", from, err)
				return
			}
			uploaded <- from + chunk
		}
	}()
	kills := scale(1, 3)
	var desc []string
	for k := range kills {
		want := (k + 1) * n / (kills + 1)
		for got := 0; got < want; {
			select {
			case got = <-uploaded:
			case <-done:
				got = n
			}
		}
		i := killLeader(c, ns)
		desc = append(desc, fmt.Sprintf("killed leader %s", ns.Nodes[i].Name))
		// Let the election happen under the upload, then bring the node
		// back before the next kill so that a quorum stays possible.
		time.Sleep(2 * time.Second)
		ns.Start(i)
	}
	<-done
	if t.Failed() {
		return
	}
	if status, m, err := c.post("/v1/backfills/"+id+"/seal", c.token, "", nil); err != nil || status != http.StatusOK {
		t.Fatalf("seal: %d %v %v", status, m, err)
	}
	p := c.awaitBackfill(id, 3*time.Minute)
	count, _ := c.exportCounts(id)
	lost, twice := 0, 0
	for i := range n {
		switch count["doc-"+strconv.Itoa(i)] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	line := fmt.Sprintf("CHAOS %-16s backfill of %d documents: %v succeeded, %d results exported, %d lost, %d exported twice; %d uploads answered 503 and sent again; %s",
		"r3-leader-bf", n, p["succeeded"], len(count), lost, twice, retried, strings.Join(desc, ", "))
	reportLine(t, line)
	if lost != 0 || twice != 0 || len(count) != n {
		t.Errorf("export: %d lost, %d twice, %d lines for %d documents", lost, twice, len(count), n)
	}
}

// TestChaosClusterRollingRestart restarts the three nodes one by one
// (SIGTERM, start, wait until healthy: caught up), as an upgrade does,
// while jobs stream in; nothing accepted is lost.
func TestChaosClusterRollingRestart(t *testing.T) {
	c, ns := newR3(t)
	n := scale(400, 3000)
	l := c.send("r3-rolling", n, 8*time.Millisecond, sentimentDoc)
	rounds := scale(1, 2)
	var slowest time.Duration
	for r := range rounds {
		for i := range ns.Nodes {
			l.awaitAccepted((r*len(ns.Nodes) + i + 1) * n / (rounds*len(ns.Nodes) + 1))
			start := time.Now()
			ns.Stop(i)
			ns.Start(i)
			slowest = max(slowest, time.Since(start))
		}
	}
	o := l.verify(3 * time.Minute)
	c.awaitDrained(time.Minute)
	o.report(t, "r3-rolling", fmt.Sprintf("%d rounds of 3 node restarts, the slowest back and caught up in %s",
		rounds, slowest.Round(time.Millisecond)))
}

// TestChaosClusterWipedNode SIGKILLs a node, deletes its JetStream store (a
// lost disk) and starts it again empty: it catches up from the other two.
// Then another node is SIGKILLed, so the streams must now stand on the
// wiped node's copy; nothing accepted is lost.
func TestChaosClusterWipedNode(t *testing.T) {
	c, ns := newR3(t)
	n := scale(400, 3000)
	l := c.send("r3-wiped", n, 8*time.Millisecond, sentimentDoc)
	l.awaitAccepted(n / 3)
	wiped := ns.Leader(t, c.nc, job.StreamJobs)
	ns.Kill(wiped)
	ns.Wipe(wiped)
	start := time.Now()
	ns.Start(wiped)
	caughtUp := time.Since(start)
	l.awaitAccepted(2 * n / 3)
	other := (wiped + 1) % len(ns.Nodes)
	ns.Kill(other)
	l.wait()
	o := l.verify(3 * time.Minute)
	// Stream info may meet the election the kill started: check that JOBS
	// drained once the node is back.
	ns.Start(other)
	c.awaitDrained(time.Minute)
	o.report(t, "r3-wiped-node", fmt.Sprintf("%s wiped and back, caught up in %s; then %s killed",
		ns.Nodes[wiped].Name, caughtUp.Round(time.Millisecond), ns.Nodes[other].Name))
}

// syncProbe sends synchronous calls back to back from a few clients and
// records every answer.
type syncProbe struct {
	c  *cluster
	mu sync.Mutex
	ok []time.Time // when each answered call was answered
	// ids are the jobs of the answered calls, from their Location.
	ids []string
	// unavail are the times of the 503 answers.
	unavail answers
	// down is set while the test has its ingest stopped: a call that
	// cannot connect then is expected, not a failure.
	down atomic.Bool
	st   syncStats
	quit chan struct{}
	wg   sync.WaitGroup
}

// syncStats counts the synchronous calls' answers.
type syncStats struct {
	calls, ok, unavailable int
	noRetryAfter           int            // 503s without Retry-After
	refused                int            // calls that found their ingest stopped
	other                  map[string]int // anything else, by status or error
	maxGap                 time.Duration  // the longest time without an answered call
}

func (s syncStats) String() string {
	return fmt.Sprintf("sync calls %d: %d answered, %d answered 503 with Retry-After, %d 503 without, %d refused while their ingest was down, other %v; unavailable for at most %s",
		s.calls, s.ok, s.unavailable-s.noRetryAfter, s.noRetryAfter, s.refused, s.other, s.maxGap.Round(time.Millisecond))
}

// check fails the test on a synchronous call that was neither answered nor
// told to retry.
func (s syncStats) check(t *testing.T) {
	t.Helper()
	if len(s.other) > 0 || s.noRetryAfter > 0 {
		t.Errorf("synchronous calls must be answered or get 503 with Retry-After: %s", s)
	}
	if s.ok == 0 {
		t.Error("no synchronous call was answered")
	}
}

// syncClient outwaits ingest's --infer-wait (30s by default), so that a
// slow synchronous call gets ingest's own answer rather than the client's
// timeout.
var syncClient = &http.Client{Timeout: 40 * time.Second}

func (c *cluster) probeSync(clients int) *syncProbe {
	p := &syncProbe{c: c, quit: make(chan struct{}), st: syncStats{other: map[string]int{}}}
	for k := range clients {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-p.quit:
					return
				default:
				}
				d := sentimentDoc(k*1_000_000 + i)
				body, _ := json.Marshal(map[string]any{"text": d.text})
				req, _ := http.NewRequest(http.MethodPost, c.url+"/v1/infer/sentiment", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+c.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := syncClient.Do(req)
				p.mu.Lock()
				p.st.calls++
				switch {
				case err != nil && p.down.Load():
					p.st.refused++
				case err != nil:
					p.st.other["error"]++
				case resp.StatusCode == http.StatusOK:
					p.st.ok++
					p.ok = append(p.ok, time.Now())
					p.ids = append(p.ids, strings.TrimPrefix(resp.Header.Get("Location"), "/v1/jobs/"))
				case resp.StatusCode == http.StatusServiceUnavailable:
					p.st.unavailable++
					p.unavail = append(p.unavail, time.Now())
					if resp.Header.Get("Retry-After") == "" {
						p.st.noRetryAfter++
					}
				default:
					p.st.other[strconv.Itoa(resp.StatusCode)]++
				}
				p.mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	return p
}

// awaitOKAfter waits for a call answered after at.
func (p *syncProbe) awaitOKAfter(at time.Time, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		ok := len(p.ok) > 0 && p.ok[len(p.ok)-1].After(at)
		p.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.c.t.Fatalf("no synchronous call answered within %s of the fault", timeout)
}

// stop ends the probe and returns its counts.
func (p *syncProbe) stop() syncStats {
	close(p.quit)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i < len(p.ok); i++ {
		p.st.maxGap = max(p.st.maxGap, p.ok[i].Sub(p.ok[i-1]))
	}
	return p.st
}

// awaitBackfill waits until backfill id is completed and returns its
// progress.
func (c *cluster) awaitBackfill(id string, timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, m, err := c.get("/v1/backfills/"+id, c.token)
		if err == nil && status == http.StatusOK && m["state"] == "completed" {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("backfill %s not completed after %s: %d %v %v", id, timeout, status, m, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// docsChunk is the NDJSON body of backfill documents doc-from to doc-(to-1),
// sentiment texts.
func docsChunk(from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		line, _ := json.Marshal(map[string]any{"id": "doc-" + strconv.Itoa(i), "text": sentimentDoc(i).text})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
