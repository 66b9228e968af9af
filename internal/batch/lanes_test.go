package batch

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// lanesAt returns a policy of 32 items and 1000 tokens a call, pausing
// 10ms, whose last interactive job arrived ago before t0 (never when ago
// is negative).
func lanesAt(ago time.Duration) *Lanes {
	l := NewLanes(32, 1000, 10*time.Millisecond)
	if ago >= 0 {
		l.Saw(Interactive, t0.Add(-ago))
	}
	return l
}

const never = -1

func TestLanesInteractiveAbout(t *testing.T) {
	for _, tc := range []struct {
		name string
		ago  time.Duration
		want bool
	}{
		{"never seen", never, false},
		{"just now", 0, true},
		{"within the second", 999 * time.Millisecond, true},
		{"a second ago", time.Second, false},
		{"long ago", time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lanesAt(tc.ago).InteractiveAbout(t0); got != tc.want {
				t.Errorf("InteractiveAbout = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("bulk arrivals do not count", func(t *testing.T) {
		l := lanesAt(never)
		l.Saw(Bulk, t0)
		if l.InteractiveAbout(t0) {
			t.Error("a bulk arrival made interactive traffic about")
		}
	})
}

func TestLanesLimit(t *testing.T) {
	for _, tc := range []struct {
		name              string
		ago               time.Duration
		b                 Shape
		wantN, wantTokens int
	}{
		{"bulk alone: a window of calls", never, Shape{Len: 1}, 4 * 32, 4 * 1000},
		{"bulk with interactive about: a quarter call", 0, Shape{Len: 1}, 8, 1000},
		{"interactive in the batch: one call", 0, Shape{Len: 1, Interactive: true}, 32, 1000},
		{"interactive in the batch, none about since: one call", time.Hour, Shape{Len: 1, Interactive: true}, 32, 1000},
		{"capped: bulk alone but interactive recent", time.Minute, Shape{Len: 1}, 4 * 32, 300},
		{"capped: quarter while interactive about", 0, Shape{Len: 1}, 8, 300},
		{"cap lapses once interactive traffic is long gone", time.Hour, Shape{Len: 1}, 4 * 32, 4 * 1000},
		{"the cap never binds an interactive batch", 0, Shape{Len: 1, Interactive: true}, 32, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lanesAt(tc.ago)
			if strings.Contains(tc.name, "cap") {
				l.BulkCap = 300
			}
			n, tokens := l.Limit(tc.b, t0)
			if n != tc.wantN || tokens != tc.wantTokens {
				t.Errorf("Limit = %d items, %d tokens; want %d, %d", n, tokens, tc.wantN, tc.wantTokens)
			}
		})
	}
}

func TestLanesRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		ago  time.Duration
		b    Shape
		want bool
	}{
		{"bulk window has room", never, Shape{Len: 127, Tokens: 3999}, true},
		{"bulk window full by items", never, Shape{Len: 128}, false},
		{"bulk window full by tokens", never, Shape{Len: 3, Tokens: 4000}, false},
		{"quarter full while interactive about", 0, Shape{Len: 8}, false},
		{"quarter has room", 0, Shape{Len: 7}, true},
		{"interactive batch full at one call", 0, Shape{Len: 32, Interactive: true}, false},
		{"interactive batch full by one call's tokens", 0, Shape{Len: 2, Tokens: 1000, Interactive: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lanesAt(tc.ago).Room(tc.b, t0); got != tc.want {
				t.Errorf("Room(%+v) = %v, want %v", tc.b, got, tc.want)
			}
		})
	}
	t.Run("capped batch full at the cap, a lone item always fits", func(t *testing.T) {
		l := lanesAt(time.Minute)
		l.BulkCap = 300
		if l.Room(Shape{Len: 2, Tokens: 300}, t0) {
			t.Error("room past the cap")
		}
		if !l.Room(Shape{Len: 0}, t0) {
			t.Error("no room for a first item")
		}
	})
	t.Run("no token budget", func(t *testing.T) {
		l := NewLanes(4, -1, 0)
		if !l.Room(Shape{Len: 3, Tokens: 1 << 20}, t0) {
			t.Error("a negative budget bounded tokens")
		}
	})
}

func TestLanesCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		ago  time.Duration
		b    Shape
		want int
	}{
		{"bulk alone runs whole", never, Shape{Len: 100}, 100},
		{"bulk cut to a quarter while interactive about", 0, Shape{Len: 100}, 8},
		{"small bulk runs whole", 0, Shape{Len: 5}, 5},
		{"interactive batch never cut", 0, Shape{Len: 30, Interactive: true}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lanesAt(tc.ago).Cut(tc.b, t0); got != tc.want {
				t.Errorf("Cut(%+v) = %d, want %d", tc.b, got, tc.want)
			}
		})
	}
	t.Run("quarter of a tiny call is one", func(t *testing.T) {
		l := NewLanes(2, 1000, 0)
		l.Saw(Interactive, t0)
		if got := l.Cut(Shape{Len: 2}, t0); got != 1 {
			t.Errorf("Cut = %d, want 1", got)
		}
	})
}

func TestLanesPauseFor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ago     time.Duration
		pause   time.Duration
		b       Shape
		carried bool
		want    time.Duration
	}{
		{"bulk while interactive about pauses", 0, 10 * time.Millisecond, Shape{Len: 8}, false, 10 * time.Millisecond},
		{"bulk alone runs at once", never, 10 * time.Millisecond, Shape{Len: 8}, false, 0},
		{"interactive never pauses", 0, 10 * time.Millisecond, Shape{Len: 8, Interactive: true}, false, 0},
		{"a carried batch pauses once only", 0, 10 * time.Millisecond, Shape{Len: 8}, true, 0},
		{"no pause configured", 0, 0, Shape{Len: 8}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lanesAt(tc.ago)
			l.Pause = tc.pause
			if got := l.PauseFor(tc.b, tc.carried, t0); got != tc.want {
				t.Errorf("PauseFor = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLanesGrowWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ago          time.Duration
		b            Shape
		wait, paused bool
	}{
		{"bulk alone grows", never, Shape{Len: 10}, true, true},
		{"full window does not grow", never, Shape{Len: 128}, false, false},
		{"no growth while interactive about, but a paused batch fills its quarter", 0, Shape{Len: 3}, false, true},
		{"paused full quarter waits", 0, Shape{Len: 8}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lanesAt(tc.ago)
			if got := l.GrowWhileWaiting(tc.b, t0); got != tc.wait {
				t.Errorf("GrowWhileWaiting = %v, want %v", got, tc.wait)
			}
			if got := l.GrowWhilePaused(tc.b, t0); got != tc.paused {
				t.Errorf("GrowWhilePaused = %v, want %v", got, tc.paused)
			}
		})
	}
}

func TestLanesOnInteractive(t *testing.T) {
	l := lanesAt(0)
	for _, tc := range []struct {
		name     string
		b        Shape
		want     Arrival
		overflow bool
	}{
		{"preempts a bulk batch", Shape{Len: 8}, Preempt, false},
		{"joins an interactive batch", Shape{Len: 3, Interactive: true}, Join, false},
		{"a full interactive batch overflows", Shape{Len: 33, Interactive: true}, Join, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := l.OnInteractive(tc.b); got != tc.want {
				t.Errorf("OnInteractive = %v, want %v", got, tc.want)
			}
			if got := l.Overflow(tc.b); got != tc.overflow {
				t.Errorf("Overflow = %v, want %v", got, tc.overflow)
			}
		})
	}
}
