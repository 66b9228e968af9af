package batch

import (
	"math"
	"time"
)

// DefaultCostWeight is the weight Cost gives the newest model call.
const DefaultCostWeight = 0.1

// Cost learns what one model costs per call, online: d ≈ a·padded + b·rows,
// where padded is a call's padded tokens (rows × longest row) and rows its
// rows, fitted by exponentially weighted least squares over recent calls so
// that it follows a model whose speed changes (a warming cache, a busier
// machine). A Cost is a value with no clock and no locks: its owner feeds
// it and reads it.
type Cost struct {
	// Weight is the weight of the newest call in (0, 1]. Defaults to
	// DefaultCostWeight.
	Weight float64

	// Exponentially weighted sums of padded², padded·rows, rows², and of
	// padded·d and rows·d (d in seconds), and of padded and rows.
	tt, tr, rr, td, rd, t, r float64
	calls                    int
	// Exponentially weighted mean and mean square of how long each call
	// took against what the fit expected of it just before (the spread
	// TokensWithin leaves room for).
	q, qq float64
}

// spreadSigmas is how many standard deviations of a call's time over its
// estimate TokensWithin leaves room for: with calls' times spread about
// normally, 2 keeps about 98% of capped calls within the budget.
const spreadSigmas = 2

// Observe records a call of rows rows and padded padded tokens that took d.
func (c *Cost) Observe(rows, padded int, d time.Duration) {
	if rows <= 0 || padded <= 0 || d <= 0 {
		return
	}
	w := c.Weight
	if w <= 0 || w > 1 {
		w = DefaultCostWeight
	}
	if c.calls == 0 {
		w = 1
	}
	T, R, D := float64(padded), float64(rows), d.Seconds()
	ew := func(s *float64, v float64) { *s = (1-w)**s + w*v }
	if c.calls > 0 {
		if e := c.Estimate(rows, padded).Seconds(); e > 0 {
			ratio := D / e
			if c.q == 0 {
				c.q, c.qq = ratio, ratio*ratio
			} else {
				ew(&c.q, ratio)
				ew(&c.qq, ratio*ratio)
			}
		}
	}
	ew(&c.tt, T*T)
	ew(&c.tr, T*R)
	ew(&c.rr, R*R)
	ew(&c.td, T*D)
	ew(&c.rd, R*D)
	ew(&c.t, T)
	ew(&c.r, R)
	c.calls++
}

// Calls is how many calls were observed.
func (c *Cost) Calls() int { return c.calls }

// PerToken and PerRow are the fitted costs of a padded token and of a row.
// Where recent calls cannot tell the two apart (every call had rows of the
// same length), the whole cost is put on tokens.
func (c *Cost) PerToken() time.Duration { a, _ := c.fit(); return seconds(a) }

// PerRow is the fitted cost of one row beyond its tokens; see PerToken.
func (c *Cost) PerRow() time.Duration { _, b := c.fit(); return seconds(b) }

func (c *Cost) fit() (a, b float64) {
	if c.calls == 0 {
		return 0, 0
	}
	det := c.tt*c.rr - c.tr*c.tr
	if det > 1e-9*c.tt*c.rr {
		a = (c.td*c.rr - c.tr*c.rd) / det
		b = (c.tt*c.rd - c.tr*c.td) / det
		if a > 0 && b >= 0 {
			return a, b
		}
	}
	return c.td / c.tt, 0
}

// Estimate is the expected duration of a call of rows rows and padded
// padded tokens; 0 before any call was observed.
func (c *Cost) Estimate(rows, padded int) time.Duration {
	a, b := c.fit()
	return seconds(a*float64(padded) + b*float64(rows))
}

// TokensWithin is the most padded tokens a call of rows of the recent
// average length may hold to take at most budget, nearly always: the
// expected cost is scaled by Spread, so that a call slower than its
// estimate (a busy machine, a cold cache) still fits, and what an
// interactive job waits behind it stays within the budget at a high
// quantile, not only on average. 0 when nothing is known yet (no cap).
func (c *Cost) TokensWithin(budget time.Duration) int {
	if c.calls == 0 || budget <= 0 || c.r <= 0 {
		return 0
	}
	a, b := c.fit()
	rowLen := c.t / c.r // padded tokens per row, recently
	perToken := (a + b/rowLen) * c.Spread()
	if perToken <= 0 {
		return 0
	}
	return max(1, int(budget.Seconds()/perToken))
}

// Spread is how much slower than its estimate a call may well be: the
// recent calls' mean ratio of actual to expected time plus spreadSigmas
// standard deviations of it, at least 1 (calls that keep to their
// estimates).
func (c *Cost) Spread() float64 {
	if c.q == 0 {
		return 1
	}
	v := max(c.qq-c.q*c.q, 0)
	return max(1, c.q+spreadSigmas*math.Sqrt(v))
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
