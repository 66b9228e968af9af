package batch

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

const (
	I = Interactive
	B = Bulk
)

func TestPlan(t *testing.T) {
	// greedy: as few batches as the limits allow, so tests see the limits.
	greedy := Policy{BatchOverhead: -1}
	with := func(f func(*Policy)) Policy { p := greedy; f(&p); return p }
	for _, tc := range []struct {
		name    string
		p       Policy
		lengths []int
		classes []Class
		want    [][]int
	}{
		{"empty", greedy, nil, nil, [][]int{}},
		{"one item", greedy, []int{7}, nil, [][]int{{0}}},
		{"size cap", with(func(p *Policy) { p.MaxSize, p.KeepOrder = 2, true }),
			[]int{3, 3, 3, 3, 3}, nil, [][]int{{0, 1}, {2, 3}, {4}}},
		{"token cap counts rows × longest", with(func(p *Policy) { p.MaxTokens, p.KeepOrder = 10, true }),
			[]int{1, 1, 6, 4}, nil, [][]int{{0, 1}, {2}, {3}}},
		{"token cap fills to the budget", with(func(p *Policy) { p.MaxTokens, p.KeepOrder = 10, true }),
			[]int{4, 4, 4, 4, 4}, nil, [][]int{{0, 1}, {2, 3}, {4}}},
		{"fewest batches, then least padding", with(func(p *Policy) { p.MaxTokens, p.KeepOrder = 10, true }),
			[]int{4, 4, 4, 1, 1}, nil, [][]int{{0, 1}, {2}, {3, 4}}},
		{"oversize item alone", with(func(p *Policy) { p.MaxTokens, p.KeepOrder = 10, true }),
			[]int{3, 20, 3}, nil, [][]int{{0}, {1}, {2}}},
		{"oversize item alone, sorted", with(func(p *Policy) { p.MaxTokens = 10 }),
			[]int{20, 3, 3}, []Class{B, B, B}, [][]int{{1, 2}, {0}}},
		{"no token budget", with(func(p *Policy) { p.MaxTokens, p.MaxSize = -1, 2 }),
			[]int{100000, 100000, 1}, nil, [][]int{{0, 1}, {2}}},
		{"bulk sorted shortest first", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{5, 1, 5, 1}, []Class{B, B, B, B}, [][]int{{1, 3}, {0, 2}}},
		{"interactive sorted longest first", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{1, 5, 3}, nil, [][]int{{1, 2}, {0}}},
		{"ties keep arrival order", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{4, 4, 4, 4}, []Class{B, B, B, B}, [][]int{{0, 1}, {2, 3}}},
		{"keep order", with(func(p *Policy) { p.MaxSize, p.KeepOrder = 2, true }),
			[]int{5, 1, 5, 1}, []Class{B, B, B, B}, [][]int{{0, 1}, {2, 3}}},
		{"short bulk never jumps ahead of interactive", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{1, 1, 9, 9}, []Class{B, B, I, I}, [][]int{{2, 3}, {0, 1}}},
		{"classes ordered even with keep order", with(func(p *Policy) { p.MaxSize, p.KeepOrder = 2, true }),
			[]int{1, 1, 9}, []Class{B, B, I}, [][]int{{2}, {0, 1}}},
		{"boundary batch tops up with the shortest bulk", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{8, 2, 9, 1}, []Class{B, I, B, I}, [][]int{{1, 3}, {0, 2}}},
		{"boundary batch meets similar lengths", with(func(p *Policy) { p.MaxSize = 3 }),
			[]int{30, 10, 11, 40, 50, 12}, []Class{I, I, B, B, B, B}, [][]int{{0, 1, 2}, {5, 3, 4}}},
		{"three classes", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{1, 2, 3}, []Class{2, 1, 0}, [][]int{{2, 1}, {0}}},
		{"overhead buys a split", Policy{MaxSize: 4, BatchOverhead: 10},
			// one batch: 4×100 = 400 + 10; two: 2×1 + 2×100 + 20 = 222.
			[]int{100, 1, 100, 1}, []Class{B, B, B, B}, [][]int{{1, 3}, {0, 2}}},
		{"overhead too dear to split", Policy{MaxSize: 4, BatchOverhead: 300},
			[]int{100, 1, 100, 1}, []Class{B, B, B, B}, [][]int{{1, 3, 0, 2}}},
		{"negative length counts as zero", with(func(p *Policy) { p.MaxTokens, p.KeepOrder = 4, true }),
			[]int{-5, 4}, nil, [][]int{{0}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := NewPlanner(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			got := pl.Plan(tc.lengths, tc.classes)
			if got == nil {
				got = [][]int{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan(%v, %v) = %v, want %v", tc.lengths, tc.classes, got, tc.want)
			}
			checkPlan(t, pl.Policy(), tc.lengths, tc.classes, got)
		})
	}
}

func TestPlanSortingReducesPadding(t *testing.T) {
	lengths := []int{2, 30, 2, 30, 2, 30, 2, 30}
	classes := slices.Repeat([]Class{B}, len(lengths))
	p := Policy{MaxSize: 4, BatchOverhead: -1}
	sorted := planPadding(lengths, Plan(p, lengths, classes))
	p.KeepOrder = true
	unsorted := planPadding(lengths, Plan(p, lengths, classes))
	if sorted != 0 || unsorted <= 0.4 {
		t.Errorf("padding sorted %.3f (want 0), unsorted %.3f (want > 0.4)", sorted, unsorted)
	}
}

func TestPlanMismatchedClassesPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Plan with len(classes) != len(lengths) did not panic")
		}
	}()
	Plan(Policy{}, []int{1, 2}, []Class{I})
}

func TestPlanDoesNotAllocate(t *testing.T) {
	lengths := loadNewsLengths(t, 128)[:256]
	classes := make([]Class, len(lengths))
	for i := range classes {
		classes[i] = Class(i % 2)
	}
	pl, err := NewPlanner(Policy{})
	if err != nil {
		t.Fatal(err)
	}
	pl.Plan(lengths, classes)
	if n := testing.AllocsPerRun(100, func() { pl.Plan(lengths, classes) }); n != 0 {
		t.Errorf("Plan allocates %v times per call, want 0", n)
	}
}

// TestPlanProperties checks Plan's guarantees on random windows.
func TestPlanProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		p := randPolicy(r)
		n := r.IntN(300)
		lengths := make([]int, n)
		classes := make([]Class, n)
		for j := range lengths {
			lengths[j] = r.IntN(600)
			classes[j] = Class(r.IntN(3))
		}
		pl, err := NewPlanner(p)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, pl.Policy(), lengths, classes, pl.Plan(lengths, classes))
		if t.Failed() {
			t.Fatalf("case %d: policy %+v, lengths %v, classes %v", i, p, lengths, classes)
		}
	}
}

func randPolicy(r *rand.Rand) Policy {
	p := Policy{
		MaxSize:       1 + r.IntN(64),
		MaxTokens:     r.IntN(4096) - 64,
		BatchOverhead: r.IntN(2048) - 256,
		KeepOrder:     r.IntN(2) == 0,
	}
	return p
}

func FuzzPlan(f *testing.F) {
	f.Add([]byte{10, 0, 200, 1, 3, 0, 255, 1}, uint8(4), int16(300), int16(50), false)
	f.Add([]byte{1, 1, 1, 1, 1, 1}, uint8(1), int16(0), int16(0), true)
	f.Add([]byte{}, uint8(32), int16(-1), int16(-1), false)
	f.Fuzz(func(t *testing.T, data []byte, size uint8, tokens, overhead int16, keep bool) {
		if size == 0 {
			size = 1
		}
		p := Policy{MaxSize: int(size), MaxTokens: int(tokens), BatchOverhead: int(overhead), KeepOrder: keep}
		// Each pair of bytes is one item: a length (scaled to reach past
		// the budget) and a class.
		var lengths []int
		var classes []Class
		for i := 0; i+1 < len(data); i += 2 {
			lengths = append(lengths, int(data[i])*int(data[i])/4-8)
			classes = append(classes, Class(data[i+1]%4))
		}
		pl, err := NewPlanner(p)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, pl.Policy(), lengths, classes, pl.Plan(lengths, classes))
	})
}

// checkPlan fails t unless batches keep every guarantee Plan documents.
func checkPlan(t *testing.T, p Policy, lengths []int, classes []Class, batches [][]int) {
	t.Helper()
	class := func(i int) Class {
		if classes == nil {
			return 0
		}
		return classes[i]
	}
	seen := make([]int, len(lengths))
	var order []int
	for bi, b := range batches {
		if len(b) == 0 {
			t.Fatalf("batch %d is empty", bi)
		}
		if len(b) > p.MaxSize {
			t.Errorf("batch %d has %d rows, MaxSize %d", bi, len(b), p.MaxSize)
		}
		m := 0
		for _, i := range b {
			seen[i]++
			m = max(m, clampLen(lengths[i]))
		}
		if p.MaxTokens > 0 && len(b) > 1 && len(b)*m > p.MaxTokens {
			t.Errorf("batch %d pads to %d tokens, MaxTokens %d", bi, len(b)*m, p.MaxTokens)
		}
		order = append(order, b...)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("item %d appears %d times", i, n)
		}
	}
	// Batches are contiguous runs of one order: by class, then by length
	// (alternating direction) or arrival.
	for k := 1; k < len(order); k++ {
		a, b := order[k-1], order[k]
		ca, cb := class(a), class(b)
		switch {
		case ca > cb:
			t.Fatalf("item %d (class %d) runs before item %d (class %d)", a, ca, b, cb)
		case ca < cb:
		case p.KeepOrder || clampLen(lengths[a]) == clampLen(lengths[b]):
			if a > b {
				t.Fatalf("items %d and %d of class %d out of arrival order", a, b, ca)
			}
		case ca%2 == 0 && clampLen(lengths[a]) < clampLen(lengths[b]),
			ca%2 == 1 && clampLen(lengths[a]) > clampLen(lengths[b]):
			t.Fatalf("items %d (len %d) and %d (len %d) of class %d out of length order", a, lengths[a], b, lengths[b], ca)
		}
	}
}

func TestPlanRowsCountsWindows(t *testing.T) {
	greedy := Policy{BatchOverhead: -1, KeepOrder: true}
	with := func(f func(*Policy)) Policy { p := greedy; f(&p); return p }
	for _, tc := range []struct {
		name    string
		p       Policy
		lengths []int
		rows    []int
		want    [][]int
	}{
		{"size cap counts rows", with(func(p *Policy) { p.MaxSize = 4 }),
			[]int{5, 5, 5, 5}, []int{3, 1, 2, 2}, [][]int{{0, 1}, {2, 3}}},
		{"token cap counts rows × longest", with(func(p *Policy) { p.MaxTokens = 20 }),
			[]int{4, 4, 4}, []int{2, 3, 1}, [][]int{{0, 1}, {2}}},
		{"windows of two documents share a call", with(func(p *Policy) { p.MaxSize, p.MaxTokens = 32, 1<<20 }),
			[]int{128, 128, 40}, []int{21, 2, 1}, [][]int{{0, 1, 2}}},
		{"more rows than MaxSize alone", with(func(p *Policy) { p.MaxSize = 4 }),
			[]int{5, 5, 5}, []int{1, 9, 1}, [][]int{{0}, {1}, {2}}},
		{"nil rows is Plan", with(func(p *Policy) { p.MaxSize = 2 }),
			[]int{5, 5, 5}, nil, [][]int{{0, 1}, {2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := NewPlanner(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			got := pl.PlanRows(tc.lengths, tc.rows, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("PlanRows(%v, %v) = %v, want %v", tc.lengths, tc.rows, got, tc.want)
			}
		})
	}
}
