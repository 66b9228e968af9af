package batch

import (
	"math"
	"slices"
)

// Class is an item's priority class. Lower classes are served first: Plan
// never puts an item in an earlier batch than an item of a lower class. The
// worker uses Interactive and Bulk; any other value up to 255 also works.
type Class uint8

// The classes, in the order they are served: interactive jobs, then bulk
// jobs and backfill documents alike.
const (
	Interactive Class = 0
	Bulk        Class = 1
)

// Planner cuts a window of items into batches under a Policy. It keeps its
// buffers between calls, so planning allocates nothing once they have grown
// to the window size. A Planner is not safe for concurrent use.
type Planner struct {
	policy  Policy
	keys    []uint64
	order   []int // item indices in planned order
	lens    []int // their lengths, clamped
	rows    []int // their rows, in planned order; nil when every item is one row
	best    []int
	from    []int
	batches [][]int
}

// NewPlanner returns a Planner for p with defaults applied, or p's
// validation error.
func NewPlanner(p Policy) (*Planner, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Planner{policy: p.WithDefaults()}, nil
}

// Policy returns the policy the Planner applies, with defaults filled in.
func (pl *Planner) Policy() Policy { return pl.policy }

// Plan cuts items 0…len(lengths)-1 into batches and returns them as groups
// of indices into lengths, in the order they should run.
//
// lengths[i] is item i's token length (negative counts as 0) and classes[i]
// its Class; a nil classes puts every item in class 0. Items may come in any
// order. Plan guarantees:
//
//   - every index appears in exactly one batch;
//   - no batch holds more than MaxSize items or more than MaxTokens padded
//     tokens (rows × longest row), except an item longer than MaxTokens,
//     which gets a batch of its own;
//   - batches follow class order: every item of class c is in a batch no
//     later than any item of a class above c. A batch at a class boundary
//     may mix the two classes, so the last interactive batch is topped up
//     with bulk items rather than run half empty;
//   - with KeepOrder, items keep their given order within a class;
//     otherwise they are sorted by length within their class (ties keep the
//     given order);
//     classes are sorted in alternating directions (class 0 longest first,
//     class 1 shortest first, …) so that the items meeting in a boundary
//     batch have similar lengths;
//   - batches are contiguous runs of that order, cut where they minimise
//     the padded tokens of all batches plus BatchOverhead for each batch.
//
// The returned slices belong to the Planner and are valid until the next
// call to Plan.
func (pl *Planner) Plan(lengths []int, classes []Class) [][]int {
	return pl.PlanRows(lengths, nil, classes)
}

// PlanRows is Plan for items that take several rows of one model call each
// (the windows of a long document, every window padded to the item's
// length): rows[i] is item i's row count (less than 1 counts as 1), and
// MaxSize and MaxTokens bound a batch's rows and rows × longest row rather
// than its items. An item with more rows than MaxSize gets a batch of its
// own. A nil rows is Plan.
func (pl *Planner) PlanRows(lengths, rows []int, classes []Class) [][]int {
	n := len(lengths)
	if rows != nil && len(rows) != n {
		panic("batch: PlanRows: len(rows) != len(lengths)")
	}
	if classes != nil && len(classes) != n {
		panic("batch: Plan: len(classes) != len(lengths)")
	}
	pl.keys = slices.Grow(pl.keys[:0], n)[:n]
	pl.order = slices.Grow(pl.order[:0], n)[:n]
	// A key packs class (8 bits), length in the class's direction (24 bits)
	// and index (32 bits), so sorting the keys sorts by class, then length,
	// then arrival, with no comparison function and no allocation.
	for i, l := range lengths {
		var c Class
		if classes != nil {
			c = classes[i]
		}
		var lk uint64
		if !pl.policy.KeepOrder {
			lk = uint64(clampLen(l))
			if c%2 == 0 {
				lk = MaxLength - lk
			}
		}
		pl.keys[i] = uint64(c)<<56 | lk<<32 | uint64(uint32(i))
	}
	slices.Sort(pl.keys)
	pl.lens = slices.Grow(pl.lens[:0], n)[:n]
	for i, k := range pl.keys {
		idx := int(uint32(k))
		pl.order[i] = idx
		pl.lens[i] = clampLen(lengths[idx])
	}
	pl.rows = pl.rows[:0]
	if rows != nil {
		pl.rows = slices.Grow(pl.rows, n)[:n]
		for i, k := range pl.keys {
			pl.rows[i] = max(1, rows[int(uint32(k))])
		}
	}

	pl.cut()
	return pl.batches
}

// cut splits pl.order into contiguous batches by dynamic programming: it
// minimises the padded tokens of all batches plus BatchOverhead per batch,
// under MaxSize and MaxTokens. best[j] is the least cost of cutting the
// first j items; from[j] is where the last batch of that cut starts.
func (pl *Planner) cut() {
	n := len(pl.order)
	size, budget := pl.policy.MaxSize, pl.policy.MaxTokens
	overhead := pl.policy.BatchOverhead
	if overhead < 0 {
		overhead = greedyOverhead
	}
	pl.best = slices.Grow(pl.best[:0], n+1)[:n+1]
	pl.from = slices.Grow(pl.from[:0], n+1)[:n+1]
	lens, costs, from := pl.lens[:n], pl.best[:n+1], pl.from[:n+1]
	costs[0] = 0
	for j := 1; j <= n; j++ {
		best, start, longest, rows := math.MaxInt, j-1, 0, 0
		for i := j - 1; i >= 0; i-- {
			longest = max(longest, lens[i])
			if len(pl.rows) > 0 {
				rows += pl.rows[i]
			} else {
				rows++
			}
			if i < j-1 && rows > size {
				break // a lone item may exceed MaxSize rows
			}
			padded := rows * longest
			if i < j-1 && budget > 0 && padded > budget {
				break // the longest row only grows as the batch grows
			}
			if c := costs[i] + overhead + padded; c < best {
				best, start = c, i
			}
		}
		costs[j], from[j] = best, start
	}
	pl.batches = pl.batches[:0]
	for j := n; j > 0; j = pl.from[j] {
		i := pl.from[j]
		pl.batches = append(pl.batches, pl.order[i:j:j])
	}
	slices.Reverse(pl.batches)
}

// greedyOverhead stands for a negative BatchOverhead: one batch costs more
// than all the padding of any window up to 2^17 items (each batch pads at
// most MaxMaxSize × MaxLength = 2^40 tokens), so Plan uses as few batches as
// it can and only then minimises padding. Costs stay below 2^63 for up to
// 2^22 batches.
const greedyOverhead = 1 << 41

// Plan is Planner.Plan with a fresh Planner for p: convenient, but it
// allocates. It panics if p is invalid.
func Plan(p Policy, lengths []int, classes []Class) [][]int {
	pl, err := NewPlanner(p)
	if err != nil {
		panic(err)
	}
	return pl.Plan(lengths, classes)
}

func clampLen(l int) int {
	return min(max(l, 0), MaxLength)
}
