package chaos_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// twin starts a second ingest instance on c's servers, with its own
// address, log and reply inboxes, sharing c's clients and tokens: a fleet
// behind a load balancer.
func (c *cluster) twin(name string) *cluster {
	c.t.Helper()
	b := &cluster{t: c.t, nats: c.nats, redis: c.redis, sentinel: c.sentinel, redisURL: c.redisURL,
		nc: c.nc, rdb: c.rdb, st: c.st, secret: c.secret, token: c.token, replies: c.replies,
		logDir: c.logDir, ingestLog: name + ".log", replicas: c.replicas}
	b.startIngest()
	return b
}

// fault is one thing a fleet scenario breaks, and how long it took to
// inject and recover from.
type fault struct {
	name string
	do   func()
	at   time.Time
	took time.Duration
}

// TestChaosFleet runs the whole fleet at once: two ingest instances, two
// worker processes, a 3-node NATS cluster with R3 streams and Redis under
// Sentinel. Under steady load on both instances (synchronous calls, async
// jobs, a backfill uploaded through both) it breaks one of each in turn:
// an ingest instance stopped and started again on its address, a worker
// SIGKILLed (its supervisor restarts it), the JOBS stream leader SIGKILLed,
// the Redis master SIGKILLed. Every accepted job ends in exactly one final
// state, every backfill document has one result line, and synchronous
// calls are answered through the inbox of the instance they were sent to,
// or get 503 with Retry-After, or find their instance down.
func TestChaosFleet(t *testing.T) {
	ns := testenv.StartNATSCluster(t)
	// The data nodes fsync their append-only file on every write, as the
	// promises require (docs/durability.md).
	rs := testenv.StartRedisSentinel(t, "--appendfsync", "always")
	a := newSystem(t, &cluster{t: t, nats: ns, sentinel: rs, redisURL: rs.URL(), replicas: testenv.ClusterSize})
	b := a.twin("ingest-b")
	ingests := []*cluster{a, b}
	ws := a.startWorkers(2, sentinelWorker(t))

	n := scale(200, 2000)
	loads := []*load{a.send("fleet-a", n, 40*time.Millisecond, sentimentDoc), b.send("fleet-b", n, 40*time.Millisecond, sentimentDoc)}
	probes := []*syncProbe{a.probeSync(1), b.probeSync(1)}
	bf := startFleetBackfill(ingests, scale(240, 2400), 20, time.Duration(scale(1000, 500))*time.Millisecond)

	var downFor time.Duration
	faults := []*fault{
		{name: "ingest-a stopped", do: func() {
			probes[0].down.Store(true)
			start := time.Now()
			if err := a.stopIngest(); err != nil {
				t.Errorf("stop ingest-a: %v", err)
			}
			a.startIngest()
			downFor = time.Since(start)
			probes[0].down.Store(false)
		}},
		{name: "worker SIGKILLed", do: func() {
			ws[0].signal(syscall.SIGKILL)
			select {
			case <-ws[0].exited:
			case <-time.After(30 * time.Second):
				t.Fatal("killed worker did not exit")
			}
			ws[0].awaitReady()
		}},
		{name: "JOBS leader SIGKILLed", do: func() {
			at := time.Now()
			i := killLeader(a, ns)
			// Both instances answer again before the node returns: the
			// window is the election's, not the restart's.
			for _, p := range probes {
				p.awaitOKAfter(at, 2*time.Minute)
			}
			ns.Start(i)
		}},
		{name: "Redis master SIGKILLed", do: func() { a.failover() }},
	}
	for k, f := range faults {
		for _, l := range loads {
			l.awaitAccepted((k + 1) * n / (len(faults) + 1))
		}
		f.at = time.Now()
		f.do()
		f.took = time.Since(f.at)
	}
	end := time.Now()

	var outs []outcome
	for _, l := range loads {
		outs = append(outs, l.verify(3*time.Minute))
	}
	var stats []syncStats
	for _, p := range probes {
		stats = append(stats, p.stop())
	}
	bfLine := bf.finish(a)
	a.awaitDrained(time.Minute)

	inboxes := checkInboxes(t, a.replies, probes)
	var unavail answers
	var kills []time.Time
	for _, l := range loads {
		unavail = append(unavail, l.unavail...)
	}
	for _, p := range probes {
		unavail = append(unavail, p.unavail...)
	}
	unavail = append(unavail, bf.unavail...)
	sort.Slice(unavail, func(i, j int) bool { return unavail[i].Before(unavail[j]) })
	var desc []string
	for k, f := range faults {
		to := end
		if k+1 < len(faults) {
			to = faults[k+1].at
		}
		desc = append(desc, fmt.Sprintf("%s (recovered in %s; sync answers paused at most %s on a, %s on b)", f.name,
			f.took.Round(time.Millisecond), okGap(probes[0].ok, f.at, to).Round(time.Millisecond), okGap(probes[1].ok, f.at, to).Round(time.Millisecond)))
		kills = append(kills, f.at)
	}
	for i, o := range outs {
		o.report(t, "fleet-"+string(rune('a'+i)), stats[i].String())
		stats[i].check(t)
		if o.accepted != n {
			t.Errorf("fleet-%c: %d of %d documents accepted", 'a'+i, o.accepted, n)
		}
	}
	reportLine(t, fmt.Sprintf("CHAOS %-16s faults in turn: %s; ingest-a down %s; 503s per fault: %s; %s; %s",
		"fleet", strings.Join(desc, ", "), downFor.Round(time.Millisecond), unavail.after(kills), inboxes, bfLine))
}

// okGap is the longest time within [from, to) between two answered calls
// in ok: how long callers went unanswered after a fault, before the next.
// A pause that spans two faults counts in each for its part.
func okGap(ok []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(ok); i++ {
		a, b := ok[i-1], ok[i]
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		gap = max(gap, b.Sub(a))
	}
	return gap
}

// checkInboxes checks that each probe's answered calls got their replies on
// inboxes of the probe's own instance: no inbox serves two instances, and
// no job's replies went to two inboxes. It describes what it saw.
func checkInboxes(t *testing.T, r *replyCounter, probes []*syncProbe) string {
	t.Helper()
	owner := map[string]int{}
	var desc []string
	for k, p := range probes {
		mine, missing := map[string]bool{}, 0
		for _, id := range p.ids {
			ibs := r.inboxes(id)
			if len(ibs) == 0 {
				// Core NATS may drop the test's own copy across a killed
				// node; the caller had its answer.
				missing++
			}
			for _, ib := range ibs {
				if o, ok := owner[ib]; ok && o != k {
					t.Errorf("sync job %s sent to instance %d answered on inbox %s of instance %d", id, k, ib, o)
				}
				if ib != ibs[0] {
					t.Errorf("sync job %s answered on two inboxes: %v", id, ibs)
				}
				owner[ib] = k
				mine[ib] = true
			}
		}
		desc = append(desc, fmt.Sprintf("instance %c: %d sync answers on %d inboxes of its own (%d replies not seen by the test)",
			'a'+k, len(p.ids), len(mine), missing))
	}
	return strings.Join(desc, ", ")
}

// fleetBackfill uploads a backfill's documents in chunks, in turn through
// each ingest instance, retrying a chunk that meets an outage.
type fleetBackfill struct {
	id      string
	n       int
	done    chan struct{}
	mu      sync.Mutex
	unavail answers
	resent  int
	err     error
}

// startFleetBackfill creates a backfill and uploads n documents in chunks
// of chunk, one chunk every pace, spread over ingests.
func startFleetBackfill(ingests []*cluster, n, chunk int, pace time.Duration) *fleetBackfill {
	c := ingests[0]
	c.t.Helper()
	status, m, err := c.post("/v1/backfills", c.token, "", []byte(`{"task":"sentiment","name":"fleet"}`))
	if err != nil || status != http.StatusCreated {
		c.t.Fatalf("create backfill: %d %v %v", status, m, err)
	}
	bf := &fleetBackfill{n: n, done: make(chan struct{})}
	bf.id, _ = m["id"].(string)
	go func() {
		defer close(bf.done)
		for from, k := 0, 0; from < n; from, k = from+chunk, k+1 {
			in := ingests[k%len(ingests)]
			body := docsChunk(from, min(from+chunk, n))
			if bf.err = bf.upload(in, body); bf.err != nil {
				return
			}
			time.Sleep(pace)
		}
	}()
	return bf
}

// upload sends one chunk through in, keeping what it met.
func (bf *fleetBackfill) upload(in *cluster, body []byte) error {
	unavail, resent, err := uploadChunk(in, bf.id, body)
	bf.mu.Lock()
	bf.unavail = append(bf.unavail, unavail...)
	bf.resent += resent
	bf.mu.Unlock()
	return err
}

// uploadChunk sends one chunk of backfill id's documents through in until
// it is taken: a 503 or a failed connection is an outage to wait out,
// anything else a failure. It returns when the 503s came and how often the
// chunk was sent again.
func uploadChunk(in *cluster, id string, body []byte) (unavail answers, resent int, err error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		status, m, err := in.postAs("/v1/backfills/"+id+"/documents", in.token, "", "application/x-ndjson", body)
		if err == nil && status == http.StatusOK {
			return unavail, resent, nil
		}
		if err == nil && status != http.StatusServiceUnavailable {
			return unavail, resent, fmt.Errorf("documents: %d %v", status, m)
		}
		if time.Now().After(deadline) {
			return unavail, resent, fmt.Errorf("documents never taken: %d %v %v", status, m, err)
		}
		if err == nil {
			unavail = append(unavail, time.Now())
		}
		resent++
		time.Sleep(200 * time.Millisecond)
	}
}

// finish waits for the uploads, seals the backfill, waits for it to
// complete and checks its export: one result line per document.
func (bf *fleetBackfill) finish(c *cluster) string {
	t := c.t
	t.Helper()
	select {
	case <-bf.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("backfill uploads did not finish")
	}
	if bf.err != nil {
		t.Fatalf("backfill: %v", bf.err)
	}
	if status, m, err := c.post("/v1/backfills/"+bf.id+"/seal", c.token, "", nil); err != nil || status != http.StatusOK {
		t.Fatalf("seal: %d %v %v", status, m, err)
	}
	p := c.awaitBackfill(bf.id, 3*time.Minute)
	lines, dups := c.exportCounts(bf.id)
	missing := 0
	for i := range bf.n {
		if lines[fmt.Sprint("doc-", i)] == 0 {
			missing++
		}
	}
	if missing > 0 || dups > 0 || len(lines) != bf.n {
		t.Errorf("backfill: %d documents exported, %d missing, %d extra lines, progress %v; want each of %d once", len(lines), missing, dups, p, bf.n)
	}
	// The counters are written with WAIT by ingest (marks) and workers
	// (final states) alike: a failover keeps them, and a backfill that
	// counts short would have said completed early (227 of 240 once, when
	// ingest's marks did not wait).
	if p["submitted"] != float64(bf.n) || p["succeeded"] != float64(bf.n) {
		t.Errorf("backfill: progress counters say %v submitted, %v succeeded; want %d each", p["submitted"], p["succeeded"], bf.n)
	}
	return fmt.Sprintf("backfill of %d documents through both instances: %d result lines, missing %d, extra %d, %d chunks sent again; progress counters say %v submitted, %v succeeded",
		bf.n, len(lines)+dups, missing, dups, bf.resent, p["submitted"], p["succeeded"])
}
