package chaos_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sentinelWorker is sentimentWorker with final states confirmed by the
// replica (--redis-wait-replicas 1): without it a failover may promote a
// replica that lacks a final state whose job was acknowledged.
func sentinelWorker(t *testing.T) workerSpec {
	s := sentimentWorker(t)
	s.waitReplicas = 1
	return s
}

// failover SIGKILLs the Redis master, waits for the sentinels to promote
// the replica, and brings the old master back as the new replica. It
// returns when the kill happened and how long the promotion took.
func (c *cluster) failover() (killed time.Time, took time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	m, err := c.sentinel.Master(ctx)
	cancel()
	if err != nil {
		c.t.Fatal(err)
	}
	killed = time.Now()
	m.Stop() // SIGKILL
	c.sentinel.AwaitFailover(m, 30*time.Second)
	took = time.Since(killed)
	c.sentinel.Rejoin(m, 60*time.Second)
	return killed, took
}

// TestChaosSentinelFailover SIGKILLs the Redis master under Sentinel while
// jobs stream in. Ingest and workers follow the sentinels to the promoted
// replica; submissions answer 503 for the seconds of the failover and are
// retried; every accepted job ends in exactly one final state.
func TestChaosSentinelFailover(t *testing.T) {
	c := newSentinelCluster(t)
	c.startWorkers(2, sentinelWorker(t))
	n := scale(300, 3000)
	l := c.send("sentinel", n, 10*time.Millisecond, sentimentDoc)
	rounds := scale(1, 3)
	var kills []time.Time
	var tooks []string
	for k := range rounds {
		l.awaitAccepted((k + 1) * n / (rounds + 1))
		killed, took := c.failover()
		kills = append(kills, killed)
		tooks = append(tooks, took.Round(time.Millisecond).String())
	}
	o := l.verify(3 * time.Minute)
	c.awaitDrained(30 * time.Second)
	l.mu.Lock()
	unavail := l.unavail
	l.mu.Unlock()
	o.report(t, "sentinel-sync", fmt.Sprintf("%d master SIGKILLs, promoted in %s; %s", rounds, strings.Join(tooks, ", "), unavail.after(kills)))
	if o.accepted != n {
		t.Errorf("%d of %d documents accepted", o.accepted, n)
	}
}

// TestChaosSentinelBackfill SIGKILLs the Redis master under Sentinel while
// a backfill's documents are being sent and run. Chunks answered 503 are
// sent again (ingest skips the documents it has); the backfill completes
// with every document counted once and exactly one result line each.
func TestChaosSentinelBackfill(t *testing.T) {
	c := newSentinelCluster(t)
	c.startWorkers(2, sentinelWorker(t))
	n, chunk := scale(600, 6000), 50
	var unavail answers
	retry := func(what string, f func() (int, map[string]any, error)) map[string]any {
		deadline := time.Now().Add(90 * time.Second)
		for {
			code, m, err := f()
			if err == nil && code < 300 {
				return m
			}
			if err == nil && code == http.StatusServiceUnavailable {
				unavail = append(unavail, time.Now())
			} else if err == nil {
				t.Fatalf("%s: %d %v", what, code, m)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d %v %v", what, code, m, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	body, _ := json.Marshal(map[string]any{"task": "sentiment", "name": "failover"})
	id, _ := retry("create", func() (int, map[string]any, error) { return c.post("/v1/backfills", c.token, "", body) })["id"].(string)
	var killed time.Time
	var took time.Duration
	fault := make(chan struct{})
	accepted := 0
	for from := 0; from < n; from += chunk {
		if from == n/3 {
			go func() { defer close(fault); killed, took = c.failover() }()
		}
		b := docsChunk(from, from+chunk)
		m := retry("documents", func() (int, map[string]any, error) {
			return c.postAs("/v1/backfills/"+id+"/documents", c.token, "", "application/x-ndjson", b)
		})
		a, _ := m["accepted"].(float64)
		accepted += int(a)
	}
	<-fault
	retry("seal", func() (int, map[string]any, error) { return c.post("/v1/backfills/"+id+"/seal", c.token, "", nil) })
	deadline := time.Now().Add(3 * time.Minute)
	var p map[string]any
	for {
		code, m, err := c.get("/v1/backfills/"+id, c.token)
		if err == nil && code == http.StatusOK && m["state"] == "completed" {
			p = m
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backfill not completed: %d %v %v", code, m, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p["submitted"] != float64(n) || p["succeeded"] != float64(n) || p["pending"] != float64(0) {
		t.Errorf("completed with %v, want %d submitted and succeeded", p, n)
	}
	lines, dups := c.exportCounts(id)
	missing := 0
	for i := range n {
		if lines[fmt.Sprint("doc-", i)] == 0 {
			missing++
		}
	}
	if missing > 0 || dups > 0 || len(lines) != n {
		t.Errorf("export: %d documents, %d missing, %d extra lines; want each of %d once", len(lines), missing, dups, n)
	}
	line := fmt.Sprintf("CHAOS %-16s %d documents sent (%d accepted, re-sent chunks skipped as duplicates), %d result lines for %d documents, missing %d, extra %d; 1 master SIGKILL, promoted in %s; %s",
		"sentinel-backfill", n, accepted, len(lines)+dups, len(lines), missing, dups, took.Round(time.Millisecond), unavail.after([]time.Time{killed}))
	reportLine(t, line)
}

// exportCounts reads a backfill's results export: how many lines each
// document has, and how many lines were extra.
func (c *cluster) exportCounts(id string) (map[string]int, int) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+"/v1/backfills/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("results: %d", resp.StatusCode)
	}
	lines, dups := map[string]int{}, 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			c.t.Fatalf("result line %q: %v", sc.Bytes(), err)
		}
		if l.Status != "succeeded" {
			c.t.Errorf("result %s: %s", l.ID, sc.Bytes())
		}
		if lines[l.ID]++; lines[l.ID] > 1 {
			dups++
		}
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return lines, dups
}
