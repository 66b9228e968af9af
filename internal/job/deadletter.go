package job

import (
	"errors"
	"fmt"
	"time"
)

// MaxRetryDelay caps the backoff between deliveries of a failing job.
const MaxRetryDelay = time.Minute

// Verdict is what becomes of a job after one failed attempt.
type Verdict struct {
	// Dead: no retry can help; the job is dead-lettered now with Err.
	Dead bool
	// Delay is how long the queue waits before it delivers the job again,
	// when it is not dead.
	Delay time.Duration
	// Err is what the job's record and dead letter say.
	Err *Error
}

// Judge is the dead-letter policy for a job whose attempt (1 for the first
// delivery) failed with err, and the one place it is written: a permanent
// error kills the job at once with its code; a RetryError asks for its own
// delay; anything else is retried after Backoff(base, attempt) with code
// fallback. The queue ends a job that fails MaxDeliver times on its own;
// the dead-letter mover then records it with Exhausted.
func Judge(err error, attempt int, base time.Duration, fallback string) Verdict {
	if code, ok := IsPermanent(err); ok {
		return Verdict{Dead: true, Err: &Error{Code: code, Message: err.Error()}}
	}
	var ra *RetryError
	if errors.As(err, &ra) {
		return Verdict{Delay: ra.Delay, Err: &Error{Code: fallback, Message: err.Error()}}
	}
	return Verdict{Delay: Backoff(base, attempt), Err: &Error{Code: fallback, Message: err.Error()}}
}

// Backoff is the delay before delivery attempt+1 of a failing job: base,
// doubling with each attempt, at most MaxRetryDelay.
func Backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, MaxRetryDelay)
}

// Exhausted is the error a job ends with when the queue gave up on it
// after attempts deliveries.
func Exhausted(attempts int) *Error {
	return &Error{Code: CodeMaxDeliver, Message: fmt.Sprintf("gave up after %d deliveries", attempts)}
}
