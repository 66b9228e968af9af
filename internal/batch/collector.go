package batch

import (
	"slices"
	"time"
)

// Collector gathers a window of items and tells the worker when to cut it
// into batches. It encodes the time part of a Policy without goroutines or a
// clock of its own: the caller passes the current time to Add and Ready and
// arms its own timer at Deadline. A Collector is not safe for concurrent use.
//
// A worker loop looks like this:
//
//	for {
//		var timeout <-chan time.Time
//		if c.Len() > 0 {
//			timer.Reset(time.Until(c.Deadline()))
//			timeout = timer.C
//		}
//		select {
//		case m := <-msgs:
//			c.Add(m, m.Tokens, m.Class, time.Now())
//		case <-timeout:
//		}
//		if c.Ready(time.Now()) {
//			for _, b := range c.Flush() {
//				run(b)
//			}
//		}
//	}
type Collector[T any] struct {
	planner Planner
	items   []T
	lengths []int
	classes []Class
	tokens  int // sum of lengths, each capped at MaxTokens
	first   time.Time
	out     []T
	batches [][]T
}

// NewCollector returns an empty Collector for p with defaults applied, or
// p's validation error.
func NewCollector[T any](p Policy) (*Collector[T], error) {
	pl, err := NewPlanner(p)
	if err != nil {
		return nil, err
	}
	return &Collector[T]{planner: *pl}, nil
}

// Policy returns the policy the Collector applies, with defaults filled in.
func (c *Collector[T]) Policy() Policy { return c.planner.policy }

// Add appends an item with its token length and class, arriving at now. The
// first item of a window starts the MaxWait clock. Add never refuses an
// item: a worker should stop taking messages while Full reports true, and
// flush.
func (c *Collector[T]) Add(item T, length int, class Class, now time.Time) {
	if len(c.items) == 0 {
		c.first = now
	}
	c.items = append(c.items, item)
	c.lengths = append(c.lengths, length)
	c.classes = append(c.classes, class)
	l := clampLen(length)
	if b := c.planner.policy.MaxTokens; b > 0 {
		l = min(l, b)
	}
	c.tokens += l
}

// Len is the number of items waiting.
func (c *Collector[T]) Len() int { return len(c.items) }

// Full reports whether the window is full: it holds Window items, or more
// tokens than ⌈Window/MaxSize⌉ batches can carry under MaxTokens.
func (c *Collector[T]) Full() bool {
	p := c.planner.policy
	if len(c.items) >= p.Window {
		return true
	}
	if p.MaxTokens > 0 {
		nb := (p.Window + p.MaxSize - 1) / p.MaxSize
		return c.tokens >= nb*p.MaxTokens
	}
	return false
}

// Deadline is when the oldest waiting item has waited MaxWait: the latest
// time the worker must flush. It is the zero Time when nothing waits.
func (c *Collector[T]) Deadline() time.Time {
	if len(c.items) == 0 {
		return time.Time{}
	}
	w := c.planner.policy.MaxWait
	if w < 0 {
		return c.first
	}
	return c.first.Add(w)
}

// Ready reports whether the worker should flush at now: something waits,
// and the window is Full or its Deadline has come.
func (c *Collector[T]) Ready(now time.Time) bool {
	if len(c.items) == 0 {
		return false
	}
	return c.Full() || !now.Before(c.Deadline())
}

// Flush cuts every waiting item into batches with Planner.Plan, empties the
// Collector and returns the batches in the order they should run. The
// returned slices belong to the Collector and are valid until the next
// Flush. Flush on an empty Collector returns nil.
func (c *Collector[T]) Flush() [][]T {
	clear(c.out) // drop references from the previous flush
	c.out = c.out[:0]
	c.batches = c.batches[:0]
	if len(c.items) == 0 {
		return nil
	}
	plan := c.planner.Plan(c.lengths, c.classes)
	c.out = slices.Grow(c.out, len(c.items))
	for _, idx := range plan {
		start := len(c.out)
		for _, i := range idx {
			c.out = append(c.out, c.items[i])
		}
		c.batches = append(c.batches, c.out[start:len(c.out):len(c.out)])
	}
	clear(c.items)
	c.items = c.items[:0]
	c.lengths = c.lengths[:0]
	c.classes = c.classes[:0]
	c.tokens = 0
	c.first = time.Time{}
	return c.batches
}
