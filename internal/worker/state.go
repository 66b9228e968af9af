package worker

import (
	"encoding/json"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// outcome is what happens to a job once its batch is through.
type outcome uint8

const (
	pending outcome = iota // still to run
	finish                 // store the final state, deliver, ack
	dead                   // store dead, dead-letter, terminate
	retry                  // nak: the queue redelivers it after a delay
	// resend: the store holds a final state already (an earlier delivery
	// whose ack was lost, or a cancellation): send that stored record to
	// the caller again, and ack.
	resend
)

// The transitions below are the only places an item's outcome, status,
// result and error are set. Every decision about a job in the worker ends
// in one of them.

// finishWith ends the job in st (succeeded, or failed) with its result or
// error.
func (it *item) finishWith(st job.Status, result json.RawMessage, e *job.Error) {
	it.outcome, it.status, it.result, it.err = finish, st, result, e
}

// deadWith ends the job dead: no retry can help it. Its message is
// dead-lettered.
func (it *item) deadWith(code string, err error) {
	it.outcome, it.status, it.result, it.err = dead, job.StatusDead, nil, errorOf(code, err)
}

// retryLater hands the job back to the queue for redelivery after delay.
// e, when not nil, is why (kept for the span and logs).
func (it *item) retryLater(delay time.Duration, e *job.Error) {
	it.outcome, it.delay = retry, delay
	if e != nil {
		it.err = e
	}
}

// resendStored records that the store holds the final state st from
// elsewhere, which stands: it is what the caller must see.
func (it *item) resendStored(st job.Status) {
	it.outcome, it.status, it.result = resend, st, nil
}

// final reports whether the item has a final state of its own to store.
func (it *item) final() bool { return it.outcome == finish || it.outcome == dead }

// record is the item's final record as of now.
func (it *item) record(now time.Time) *job.Record {
	rec := job.RecordOf(&it.msg.Job, it.status)
	rec.Result, rec.Error, rec.Attempts = it.result, it.err, it.msg.Attempt
	rec.Started, rec.Finished = it.started, now
	return rec
}
