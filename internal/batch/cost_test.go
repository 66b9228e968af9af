package batch

import (
	"testing"
	"time"
)

func TestCost(t *testing.T) {
	const perToken, perRow = 100 * time.Microsecond, 2 * time.Millisecond
	call := func(rows, rowLen int) (int, int, time.Duration) {
		padded := rows * rowLen
		return rows, padded, time.Duration(padded)*perToken + time.Duration(rows)*perRow
	}
	near := func(got, want time.Duration) bool {
		d := got - want
		return d < want/50 && -d < want/50
	}
	t.Run("nothing known: no estimate, no cap", func(t *testing.T) {
		var c Cost
		if c.Estimate(4, 400) != 0 || c.TokensWithin(time.Second) != 0 {
			t.Error("an empty Cost estimates")
		}
	})
	t.Run("separates tokens from rows", func(t *testing.T) {
		var c Cost
		for i := range 50 {
			c.Observe(call(1+i%8, 16+(i*37)%200))
		}
		if !near(c.PerToken(), perToken) || !near(c.PerRow(), perRow) {
			t.Errorf("per token %s (want %s), per row %s (want %s)", c.PerToken(), perToken, c.PerRow(), perRow)
		}
		rows, padded, want := call(10, 100)
		if got := c.Estimate(rows, padded); !near(got, want) {
			t.Errorf("Estimate = %s, want %s", got, want)
		}
	})
	t.Run("one row length: all on tokens, estimates still right", func(t *testing.T) {
		var c Cost
		for i := range 20 {
			c.Observe(call(1+i%8, 64))
		}
		if c.PerRow() != 0 {
			t.Errorf("per row %s from calls that cannot tell", c.PerRow())
		}
		rows, padded, want := call(5, 64)
		if got := c.Estimate(rows, padded); !near(got, want) {
			t.Errorf("Estimate = %s, want %s", got, want)
		}
	})
	t.Run("follows a model that slows down", func(t *testing.T) {
		c := Cost{Weight: 0.2}
		for range 30 {
			c.Observe(8, 800, 80*time.Millisecond)
		}
		for range 30 {
			c.Observe(8, 800, 160*time.Millisecond)
		}
		if got := c.Estimate(8, 800); !near(got, 160*time.Millisecond) {
			t.Errorf("Estimate after the slowdown = %s, want 160ms", got)
		}
	})
	t.Run("tokens within a budget", func(t *testing.T) {
		var c Cost
		for range 10 {
			c.Observe(call(4, 100)) // 400 tokens: 40ms + 8ms
		}
		// At 100-token rows a token costs 100µs + 2ms/100 = 120µs.
		if got := c.TokensWithin(120 * time.Millisecond); got < 990 || got > 1010 {
			t.Errorf("TokensWithin(120ms) = %d, want about 1000", got)
		}
		if got := c.TokensWithin(time.Microsecond); got != 1 {
			t.Errorf("TokensWithin(1µs) = %d, want 1 (a lone row always runs)", got)
		}
	})
	t.Run("leaves room for calls slower than their estimate", func(t *testing.T) {
		var even, uneven Cost
		for i := range 40 {
			even.Observe(4, 400, 40*time.Millisecond)
			d := 40 * time.Millisecond
			if i%4 == 0 {
				d = 60 * time.Millisecond // every fourth call half as slow again
			}
			uneven.Observe(4, 400, d)
		}
		if s := even.Spread(); s != 1 {
			t.Errorf("Spread of calls that keep to their estimate = %.3f, want 1", s)
		}
		if s := uneven.Spread(); s < 1.2 || s > 1.8 {
			t.Errorf("Spread of calls up to 1.5× their mean = %.3f, want about 1.3 to 1.5", s)
		}
		e, u := even.TokensWithin(100*time.Millisecond), uneven.TokensWithin(100*time.Millisecond)
		if u >= e || float64(u) > float64(e)/1.1 {
			t.Errorf("TokensWithin(100ms): %d for uneven calls, %d for even ones; want clearly fewer", u, e)
		}
	})
	t.Run("ignores empty calls", func(t *testing.T) {
		var c Cost
		c.Observe(0, 0, time.Second)
		c.Observe(3, 300, 0)
		if c.Calls() != 0 {
			t.Errorf("%d calls observed", c.Calls())
		}
	})
}
