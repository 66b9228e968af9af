package batch

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)

func newCollector(t *testing.T, p Policy) *Collector[string] {
	t.Helper()
	c, err := NewCollector[string](p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCollectorEmpty(t *testing.T) {
	c := newCollector(t, Policy{})
	if c.Len() != 0 || c.Full() || c.Ready(t0.Add(time.Hour)) || !c.Deadline().IsZero() || c.Flush() != nil {
		t.Errorf("empty collector: Len %d Full %v Ready %v Deadline %v", c.Len(), c.Full(), c.Ready(t0.Add(time.Hour)), c.Deadline())
	}
}

func TestCollectorMaxWait(t *testing.T) {
	c := newCollector(t, Policy{MaxWait: 5 * time.Millisecond})
	c.Add("a", 10, Bulk, t0)
	c.Add("b", 10, Bulk, t0.Add(3*time.Millisecond)) // company does not move the deadline
	if got, want := c.Deadline(), t0.Add(5*time.Millisecond); !got.Equal(want) {
		t.Errorf("Deadline() = %v, want %v", got, want)
	}
	if c.Ready(t0.Add(5*time.Millisecond - time.Nanosecond)) {
		t.Error("Ready before the deadline")
	}
	if !c.Ready(t0.Add(5 * time.Millisecond)) {
		t.Error("not Ready at the deadline")
	}
	c.Flush()
	if !c.Deadline().IsZero() {
		t.Errorf("Deadline() after Flush = %v, want zero", c.Deadline())
	}
	// The next window's clock starts at its own first item.
	t1 := t0.Add(time.Second)
	c.Add("c", 10, Bulk, t1)
	if got, want := c.Deadline(), t1.Add(5*time.Millisecond); !got.Equal(want) {
		t.Errorf("Deadline() of the next window = %v, want %v", got, want)
	}
}

func TestCollectorNoWait(t *testing.T) {
	c := newCollector(t, Policy{MaxWait: -1})
	c.Add("a", 10, Interactive, t0)
	if !c.Ready(t0) || !c.Deadline().Equal(t0) {
		t.Errorf("with negative MaxWait: Ready %v, Deadline %v, want ready at %v", c.Ready(t0), c.Deadline(), t0)
	}
}

func TestCollectorFull(t *testing.T) {
	t.Run("by items", func(t *testing.T) {
		c := newCollector(t, Policy{MaxSize: 2, Window: 4, MaxWait: time.Hour})
		for i := range 4 {
			if c.Full() || c.Ready(t0) {
				t.Fatalf("full after %d of 4 items", i)
			}
			c.Add("x", 1, Bulk, t0)
		}
		if !c.Full() || !c.Ready(t0) {
			t.Error("not full and ready with Window items")
		}
	})
	t.Run("by tokens", func(t *testing.T) {
		// Two batches of 100 tokens: full once 200 tokens wait.
		c := newCollector(t, Policy{MaxSize: 4, Window: 8, MaxTokens: 100, MaxWait: time.Hour})
		c.Add("a", 90, Bulk, t0)
		c.Add("b", 90, Bulk, t0)
		if c.Full() {
			t.Fatal("full at 180 tokens")
		}
		c.Add("c", 20, Bulk, t0)
		if !c.Full() || !c.Ready(t0) {
			t.Error("not full and ready at 200 tokens")
		}
	})
	t.Run("oversize item counts as one budget", func(t *testing.T) {
		c := newCollector(t, Policy{MaxSize: 4, Window: 8, MaxTokens: 100, MaxWait: time.Hour})
		c.Add("huge", 10000, Bulk, t0)
		if c.Full() {
			t.Error("one oversize item fills a two-batch window")
		}
	})
}

func TestCollectorFlush(t *testing.T) {
	c := newCollector(t, Policy{MaxSize: 2, Window: 8, BatchOverhead: -1})
	c.Add("bulk-long", 50, Bulk, t0)
	c.Add("bulk-short", 5, Bulk, t0)
	c.Add("int-a", 10, Interactive, t0)
	c.Add("bulk-mid", 20, Bulk, t0)
	c.Add("int-b", 12, Interactive, t0)
	got := c.Flush()
	want := [][]string{{"int-b", "int-a"}, {"bulk-short", "bulk-mid"}, {"bulk-long"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Flush() = %v, want %v", got, want)
	}
	if c.Len() != 0 {
		t.Errorf("Len() after Flush = %d", c.Len())
	}
	// Adding to the next window leaves the flushed batches intact.
	c.Add("next", 1, Interactive, t0)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after Add, flushed batches became %v", got)
	}
	if got := c.Flush(); !reflect.DeepEqual(got, [][]string{{"next"}}) {
		t.Errorf("second Flush() = %v", got)
	}
}

func TestCollectorSteadyStateDoesNotAllocate(t *testing.T) {
	lengths := loadNewsLengths(t, 128)
	c, err := NewCollector[int](Policy{})
	if err != nil {
		t.Fatal(err)
	}
	window := c.Policy().Window
	cycle := func() {
		for i := range window {
			c.Add(i, lengths[i], Class(i%2), t0)
		}
		c.Flush()
	}
	cycle()
	if n := testing.AllocsPerRun(50, cycle); n != 0 {
		t.Errorf("a window allocates %v times, want 0", n)
	}
}
