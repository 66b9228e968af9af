package job_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

func TestJudge(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		err     error
		attempt int
		want    job.Verdict
	}{
		{"permanent dies at once with its code", job.Permanent(job.CodeInputTooLong, boom), 1,
			job.Verdict{Dead: true, Err: &job.Error{Code: job.CodeInputTooLong, Message: "boom"}}},
		{"permanent dies even on a late attempt", job.Permanent(job.CodeInvalidInput, boom), 4,
			job.Verdict{Dead: true, Err: &job.Error{Code: job.CodeInvalidInput, Message: "boom"}}},
		{"retry-after keeps its delay", job.RetryAfter(7*time.Second, boom), 3,
			job.Verdict{Delay: 7 * time.Second, Err: &job.Error{Code: job.CodeModelError, Message: "boom"}}},
		{"transient backs off: first", boom, 1, job.Verdict{Delay: time.Second, Err: &job.Error{Code: job.CodeModelError, Message: "boom"}}},
		{"transient backs off: third", boom, 3, job.Verdict{Delay: 4 * time.Second, Err: &job.Error{Code: job.CodeModelError, Message: "boom"}}},
		{"transient backoff is capped", boom, 30, job.Verdict{Delay: job.MaxRetryDelay, Err: &job.Error{Code: job.CodeModelError, Message: "boom"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := job.Judge(tc.err, tc.attempt, time.Second, job.CodeModelError)
			if got.Dead != tc.want.Dead || got.Delay != tc.want.Delay || *got.Err != *tc.want.Err {
				t.Errorf("Judge = %+v (%+v), want %+v (%+v)", got, got.Err, tc.want, tc.want.Err)
			}
		})
	}
}

func TestExhausted(t *testing.T) {
	e := job.Exhausted(5)
	if e.Code != job.CodeMaxDeliver || e.Message != "gave up after 5 deliveries" {
		t.Errorf("Exhausted(5) = %+v", e)
	}
}
