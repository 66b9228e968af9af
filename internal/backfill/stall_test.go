package backfill

import (
	"testing"
	"time"
)

func TestStallOf(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	quiet := time.Minute
	pending := Counters{Submitted: 10, Succeeded: 4}
	for _, tt := range []struct {
		name   string
		b      Backfill
		now    time.Duration
		quiet  time.Duration
		served bool
		want   string // the reason, "" for none
		since  time.Duration
	}{
		{"quiet but within the quiet time", Backfill{State: StateOpen, Created: t0, Counters: pending}, 59 * time.Second, quiet, true, "", 0},
		{"no document ever finished, workers serve it", Backfill{State: StateOpen, Created: t0, Counters: Counters{Submitted: 3}}, time.Minute, quiet, true, StallNoProgress, 0},
		{"no worker serves it", Backfill{State: StateSealed, Created: t0, Counters: pending}, 2 * time.Minute, quiet, false, StallNoWorkers, 0},
		{"progress restarts the quiet time", Backfill{State: StateOpen, Created: t0, Last: t0.Add(90 * time.Second), Counters: pending}, 2 * time.Minute, quiet, false, "", 0},
		{"stalled since the latest finished document", Backfill{State: StateOpen, Created: t0, Last: t0.Add(30 * time.Second), Counters: pending}, 2 * time.Minute, quiet, true, StallNoProgress, 30 * time.Second},
		{"nothing pending is never stalled", Backfill{State: StateOpen, Created: t0, Counters: Counters{Submitted: 4, Succeeded: 4}}, time.Hour, quiet, false, "", 0},
		{"a canceled backfill is not stalled", Backfill{State: StateCanceled, Created: t0, Counters: pending}, time.Hour, quiet, false, "", 0},
		{"quiet 0 never reports", Backfill{State: StateOpen, Created: t0, Counters: pending}, time.Hour, 0, false, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.Task = "sentiment"
			got := StallOf(&tt.b, t0.Add(tt.now), tt.quiet, tt.served)
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("stalled: %+v", got)
			case tt.want == "":
			case got == nil:
				t.Fatalf("not stalled, want %s", tt.want)
			case got.Reason != tt.want || !got.Since.Equal(t0.Add(tt.since)) || got.Message == "":
				t.Fatalf("got %+v, want reason %s since +%s", got, tt.want, tt.since)
			}
		})
	}
}
