package batch_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/batch"
)

// pickRun feeds f the same waiting tenants n times and returns the tenants
// picked, in order.
func pickRun(f *batch.Fair, waiting []batch.Waiting, n int) []string {
	out := make([]string, 0, n)
	for range n {
		i := f.Pick(waiting)
		if i < 0 {
			out = append(out, "-")
			continue
		}
		out = append(out, waiting[i].Tenant)
	}
	return out
}

func TestFairOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		quantum int
		waiting []batch.Waiting
		n       int
		want    string // the tenants picked, in order
	}{
		{"nobody waits", 4, nil, 2, "--"},
		{"a lone tenant gets the whole lane", 4, []batch.Waiting{{Tenant: "a", Cost: 3}}, 5, "aaaaa"},
		{"equal tenants take turns of a quantum each", 4,
			[]batch.Waiting{{Tenant: "a", Cost: 2}, {Tenant: "b", Cost: 2}}, 8, "aabbaabb"},
		{"the order of waiting does not decide the turns", 4,
			[]batch.Waiting{{Tenant: "b", Cost: 2}, {Tenant: "a", Cost: 2}}, 4, "bbaa"},
		{"weight 2 gets two quanta a turn", 2,
			[]batch.Waiting{{Tenant: "a", Cost: 1, Weight: 2}, {Tenant: "b", Cost: 1}}, 9, "aaaabbaaa"},
		{"cost, not documents: a's documents cost twice b's", 4,
			[]batch.Waiting{{Tenant: "a", Cost: 4}, {Tenant: "b", Cost: 2}}, 6, "abbabb"},
		{"a document dearer than a quantum waits for credit, not forever", 1,
			[]batch.Waiting{{Tenant: "a", Cost: 3}, {Tenant: "b", Cost: 1}}, 7, "bbabbba"},
		{"zero weight and cost count as one", 1,
			[]batch.Waiting{{Tenant: "a"}, {Tenant: "b"}}, 4, "abab"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &batch.Fair{Quantum: c.quantum}
			if got := strings.Join(pickRun(f, c.waiting, c.n), ""); got != c.want {
				t.Errorf("picked %s, want %s", got, c.want)
			}
		})
	}
}

// TestFairRoundChanges drives one Fair through tenants joining and leaving
// the round.
func TestFairRoundChanges(t *testing.T) {
	t.Parallel()
	a := batch.Waiting{Tenant: "a", Cost: 1}
	b := batch.Waiting{Tenant: "b", Cost: 1}
	c := batch.Waiting{Tenant: "c", Cost: 1}
	steps := []fairStep{
		// a alone: a lone tenant is served back to back.
		{[]batch.Waiting{a}, 3, "aaa"},
		// b joins at the end of the round: a finishes its turn (it had one
		// credit of two left), then b's turn comes.
		{[]batch.Waiting{b, a}, 5, "abbaa"},
		// a leaves while its turn runs: the turn passes to b.
		{[]batch.Waiting{b}, 1, "b"},
		// a comes back after b, with no credit kept: b's turn first.
		{[]batch.Waiting{a, b}, 4, "baab"},
		// c joins at the end (the round is b, a, c); b leaves in the middle
		// of its turn: the turn passes to a, then c.
		{[]batch.Waiting{a, b, c}, 1, "b"},
		{[]batch.Waiting{a, c}, 4, "aacc"},
		// everyone leaves: the round is empty; a newcomer starts it.
		{nil, 1, "-"},
		{[]batch.Waiting{c, b}, 4, "ccbb"},
	}
	f := &batch.Fair{Quantum: 2}
	run(t, f, steps)
	if f.Tenants() != 2 {
		t.Errorf("%d tenants in the round, want 2", f.Tenants())
	}
}

// TestFairAfterACrowd drives one Fair from a crowd of tenants down to two
// and back: the round it keeps from pick to pick follows each time.
func TestFairAfterACrowd(t *testing.T) {
	t.Parallel()
	var crowd []batch.Waiting
	for i := range 200 {
		crowd = append(crowd, batch.Waiting{Tenant: fmt.Sprintf("t%03d", i), Cost: 1})
	}
	f := &batch.Fair{Quantum: 1}
	picked := pickRun(f, crowd, 400)
	for i, got := range picked {
		if want := crowd[i%200].Tenant; got != want {
			t.Fatalf("pick %d of the crowd: %s, want %s", i, got, want)
		}
	}
	a := batch.Waiting{Tenant: "a", Cost: 1}
	b := batch.Waiting{Tenant: "b", Cost: 1}
	run(t, f, []fairStep{{[]batch.Waiting{b, a}, 4, "baba"}})
	if f.Tenants() != 2 {
		t.Fatalf("%d tenants in the round after the crowd left, want 2", f.Tenants())
	}
	if got := strings.Join(pickRun(f, append([]batch.Waiting{a, b}, crowd[:3]...), 5), ","); got != "t000,t001,t002,b,a" {
		t.Fatalf("picked %s after part of the crowd came back, want t000,t001,t002,b,a (a had its turn)", got)
	}
}

// fairStep is one step of a run of Fair: n picks from the same waiting
// tenants, and the tenants they should pick.
type fairStep struct {
	waiting []batch.Waiting
	n       int
	want    string
}

func run(t *testing.T, f *batch.Fair, steps []fairStep) {
	t.Helper()
	for i, s := range steps {
		if got := strings.Join(pickRun(f, s.waiting, s.n), ""); got != s.want {
			t.Fatalf("step %d: picked %s, want %s", i, got, s.want)
		}
	}
}

// TestFairArriving checks that a tenant whose next document is on its way
// keeps its place and credit but lets its turn pass.
func TestFairArriving(t *testing.T) {
	t.Parallel()
	a := batch.Waiting{Tenant: "a", Cost: 1}
	b := batch.Waiting{Tenant: "b", Cost: 1}
	bLate := batch.Waiting{Tenant: "b", Cost: 1, Arriving: true}
	aLate := batch.Waiting{Tenant: "a", Cost: 1, Arriving: true}
	run(t, &batch.Fair{Quantum: 3}, []fairStep{
		// a, then b; a has spent one of its three credits.
		{[]batch.Waiting{a, b}, 1, "a"},
		// a's next document is on its way: b's turn, with fresh credit.
		{[]batch.Waiting{aLate, b}, 2, "bb"},
		// both arriving: nothing to pick, nothing changes.
		{[]batch.Waiting{aLate, bLate}, 1, "-"},
		// b finishes its turn; then a's turn, with fresh credit on top of
		// the two it kept (5), but only while b keeps up.
		{[]batch.Waiting{a, b}, 6, "baaaaa"},
		{[]batch.Waiting{a, b}, 3, "bbb"},
	})
}

// TestFairShares checks the long-run shares: with three tenants of weights
// 1, 2 and 3 and different document costs, each gets its weight's share of
// the cost served, within one quantum each.
func TestFairShares(t *testing.T) {
	t.Parallel()
	waiting := []batch.Waiting{
		{Tenant: "a", Weight: 1, Cost: 700},
		{Tenant: "b", Weight: 2, Cost: 1500},
		{Tenant: "c", Weight: 3, Cost: 300},
	}
	f := batch.NewFair()
	served := map[string]int{}
	total := 0
	for range 100_000 {
		w := waiting[f.Pick(waiting)]
		served[w.Tenant] += w.Cost
		total += w.Cost
	}
	for _, w := range waiting {
		want := total * w.Weight / 6
		if d := served[w.Tenant] - want; d > batch.DefaultQuantum*w.Weight || -d > batch.DefaultQuantum*w.Weight {
			t.Errorf("%s served %d of %d, want %d (weight %d of 6)", w.Tenant, served[w.Tenant], total, want, w.Weight)
		}
	}
}
