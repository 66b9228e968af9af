package ingest

import (
	"net/http"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestValidateLongOptionsNamesTheField: a bad long-input option is a 400
// naming the option, before anything is enqueued.
func TestValidateLongOptionsNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     job.Options
		field string
	}{
		{"defaults", job.Options{}, ""},
		{"window, left, max", job.Options{LongInput: job.LongWindow, TruncationSide: job.SideLeft, WindowAggregation: job.WindowMax, MaxWindows: 8}, ""},
		{"older truncate", job.Options{Truncate: true}, ""},
		{"truncate spelled both ways", job.Options{Truncate: true, LongInput: job.LongTruncate}, ""},
		{"unknown long_input", job.Options{LongInput: "split"}, "options.long_input"},
		{"truncate against error", job.Options{Truncate: true, LongInput: job.LongError}, "options.long_input"},
		{"unknown side", job.Options{TruncationSide: "middle"}, "options.truncation_side"},
		{"unknown window aggregation", job.Options{WindowAggregation: "sum"}, "options.window_aggregation"},
		{"negative cap", job.Options{MaxWindows: -1}, "options.max_windows"},
		{"huge cap", job.Options{MaxWindows: job.MaxWindowsLimit + 1}, "options.max_windows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aerr := validateOptions(tc.o)
			switch {
			case tc.field == "" && aerr != nil:
				t.Fatalf("refused: %s %s", aerr.Field, aerr.Message)
			case tc.field != "" && aerr == nil:
				t.Fatal("accepted")
			case tc.field != "" && (aerr.Field != tc.field || aerr.Status != http.StatusBadRequest):
				t.Fatalf("%d field %q (%s), want 400 field %q", aerr.Status, aerr.Field, aerr.Message, tc.field)
			}
		})
	}
}
