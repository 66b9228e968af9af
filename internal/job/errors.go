package job

import (
	"errors"
	"time"
)

// Error codes kept in Record.Error.Code and used by the HTTP API.
const (
	CodeInvalidInput = "invalid_input"
	CodeInputTooLong = "input_too_long"
	CodeModelError   = "model_error"
	CodeDeadline     = "deadline_exceeded"
	CodeMaxDeliver   = "max_deliveries"
	CodeCanceled     = "canceled"
	CodeUnknownTask  = "unknown_task"
	CodeInternal     = "internal"
)

// PermanentError marks an error that no retry can fix: the job goes to the
// dead-letter stream at once and its message is terminated.
type PermanentError struct {
	Code string
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the worker dead-letters the job instead of
// retrying it. code is one of the Code constants.
func Permanent(code string, err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Code: code, Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent, and
// returns its code.
func IsPermanent(err error) (string, bool) {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Code, true
	}
	return "", false
}

// RetryError asks for the job to be delivered again after Delay.
type RetryError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter wraps err so that the worker naks the job with delay d.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &RetryError{Delay: d, Err: err}
}
