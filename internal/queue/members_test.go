package queue_test

import (
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestMembershipRegistry runs the registry on a real nats-server: a view
// sees a heartbeat and a leave, and a second view's Refresh reads the
// bucket directly; an entry left without heartbeats expires by its own
// TTL while its neighbour, with a longer one, stays.
func TestMembershipRegistry(t *testing.T) {
	q, ctx := newClient(t, testenv.StartNATS(t).Connect(t), 30*time.Second)
	reg, err := q.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ms []job.Member) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			out[m.ID] = true
		}
		return out
	}
	// await waits for the view to hold exactly want.
	await := func(want ...string) {
		t.Helper()
		for {
			changed := view.Changed()
			got := ids(view.Members())
			match := len(got) == len(want)
			for _, id := range want {
				match = match && got[id]
			}
			if match {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				t.Fatalf("view holds %v, want %v", got, want)
			}
		}
	}
	member := func(id string, ttl time.Duration) job.Member {
		now := time.Now().UTC()
		return job.Member{ID: queue.MemberKey(id), Host: "h", Device: "cpu", Started: now, LastSeen: now, TTLMs: ttl.Milliseconds(),
			Tasks: []job.MemberTask{{Task: "sentiment", Version: "1", InFlight: 3}}}
	}
	short, long := member("host.a:1", time.Second), member("host-b", time.Minute)
	if short.ID != "host-a-1" {
		t.Fatalf("MemberKey made %q", short.ID)
	}
	start := time.Now()
	for _, m := range []job.Member{short, long} {
		if err := reg.Beat(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	await(short.ID, long.ID)
	if got := view.Members()[1]; got.Tasks[0].InFlight != 3 || got.Host != "h" {
		t.Fatalf("entry read back as %+v", got)
	}
	if seen := view.LastSeen("sentiment"); seen.IsZero() {
		t.Fatal("no last-seen time for the task")
	}

	// A view that read the bucket directly holds what the watch holds.
	other, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(other.Members()); !got[short.ID] || !got[long.ID] {
		t.Fatalf("refreshed view holds %v", got)
	}

	// The short entry expires by its TTL, untouched by anyone.
	await(long.ID)
	if took := time.Since(start); took < time.Second {
		t.Fatalf("an entry with a 1s TTL expired after %s", took)
	}
	// Leaving removes an entry at once, and a refresh does not bring it
	// back.
	if err := reg.Leave(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	await()
	if err := view.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := view.Members(); len(got) != 0 {
		t.Fatalf("after a refresh the view holds %v", got)
	}
}
