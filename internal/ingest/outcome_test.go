package ingest

import (
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestOutcomeOf checks which synchronous calls count for and against a
// task's breaker: model failures and full-length timeouts against, bad
// input and short client waits neither way.
func TestOutcomeOf(t *testing.T) {
	raw := func(s string) wireRecord { return wireRecord{raw: []byte(s)} }
	for _, tt := range []struct {
		name            string
		rec             wireRecord
		final, fullWait bool
		want            outcome
	}{
		{"succeeded", raw(`{"status":"succeeded","result":{}}`), true, true, outcomeOK},
		{"succeeded, from the store", wireRecord{rec: &job.Record{Status: job.StatusSucceeded}}, true, false, outcomeOK},
		{"model error", raw(`{"status":"dead","error":{"code":"model_error","message":"x"}}`), true, true, outcomeFailed},
		{"internal error, from the store", wireRecord{rec: &job.Record{Status: job.StatusFailed, Error: &job.Error{Code: job.CodeInternal}}}, true, true, outcomeFailed},
		{"bad input", raw(`{"status":"failed","error":{"code":"invalid_input","message":"x"}}`), true, true, outcomeNeutral},
		{"input too long", raw(`{"status":"failed","error":{"code":"input_too_long","message":"x"}}`), true, true, outcomeNeutral},
		{"canceled", raw(`{"status":"canceled"}`), true, true, outcomeNeutral},
		{"timed out after the full wait", wireRecord{rec: &job.Record{Status: job.StatusQueued}}, false, true, outcomeFailed},
		{"timed out after a short client wait", wireRecord{rec: &job.Record{Status: job.StatusRunning}}, false, false, outcomeNeutral},
	} {
		if got := outcomeOf(tt.rec, tt.final, tt.fullWait); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
