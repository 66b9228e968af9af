package backoff

import (
	"context"
	"time"
)

// Backoff is an exponential schedule: attempt 1 waits Base, each later
// attempt twice the one before, never more than Max.
type Backoff struct {
	// Base is the first wait. Zero means 50ms.
	Base time.Duration
	// Max caps every wait. Zero means 2s.
	Max time.Duration
}

// Delay is the wait after the attempt-th failure (attempt ≥ 1).
func (b Backoff) Delay(attempt int) time.Duration {
	base, ceiling := b.Base, b.Max
	if base <= 0 {
		base = 50 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 2 * time.Second
	}
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Sleep waits d, or until ctx ends, whichever is first; it returns ctx's
// error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
