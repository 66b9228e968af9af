package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"first is base", Backoff{Base: 10 * ms, Max: time.Second}, 1, 10 * ms},
		{"doubles", Backoff{Base: 10 * ms, Max: time.Second}, 3, 40 * ms},
		{"capped", Backoff{Base: 10 * ms, Max: 100 * ms}, 5, 100 * ms},
		{"far attempts stay capped", Backoff{Base: 10 * ms, Max: 100 * ms}, 1 << 20, 100 * ms},
		{"zero value defaults", Backoff{}, 1, 50 * ms},
		{"zero value cap", Backoff{}, 100, 2 * time.Second},
		{"attempt below one is the base", Backoff{Base: 10 * ms, Max: time.Second}, 0, 10 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Delay(tc.attempt); got != tc.want {
				t.Errorf("Delay(%d) = %s, want %s", tc.attempt, got, tc.want)
			}
		})
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not return when its context ended")
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
