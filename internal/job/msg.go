package job

import (
	"errors"
	"fmt"
	"time"
)

// Errors the queue answers with, for callers to branch on with errors.Is.
var (
	// ErrFull means a stream is at its limits and refuses what it is given:
	// JOBS refusing a job (push back with 429/503 and Retry-After), or
	// RESULTS refusing a backfill document's result (park it until exports
	// purge results).
	ErrFull = errors.New("queue full")
	// ErrStopped is returned by a puller's Next once it was stopped or
	// drained and no buffered message is left.
	ErrStopped = errors.New("puller stopped")
)

// Settler is how a delivered message is settled with the queue it came
// from: the one handle a consumer needs to end or extend a delivery.
type Settler interface {
	// Ack acknowledges the message: the job is done with.
	Ack() error
	// NakWithDelay asks for a redelivery after d.
	NakWithDelay(d time.Duration) error
	// Term stops redelivery for good, with a reason the queue reports.
	Term(reason string) error
	// InProgress resets the message's ack timer while it is still held.
	InProgress() error
}

// Msg is one delivery of a job from the queue.
type Msg struct {
	// Job is the decoded job; when DecodeErr is set it holds whatever could
	// be recovered (possibly nothing).
	Job Job
	// DecodeErr is why the payload is not a valid job; such a message can
	// never succeed.
	DecodeErr error
	// Reply is where the result goes (HeaderReply), or empty.
	Reply string
	// Attempt is the delivery count, 1 for the first delivery.
	Attempt int
	// Enqueued is when the queue stored the message.
	Enqueued time.Time
	// StreamSeq is the message's sequence in the JOBS stream.
	StreamSeq uint64
	// Subject is the subject the job was published to.
	Subject string
	// Data is the raw payload.
	Data []byte
	// Header is the message's headers (trace context among them).
	Header map[string][]string
	// Settler settles the delivery with the queue.
	Settler Settler
}

// Ack acknowledges the message: the job is done with.
func (m *Msg) Ack() error { return m.Settler.Ack() }

// NakWithDelay asks for a redelivery after d.
func (m *Msg) NakWithDelay(d time.Duration) error { return m.Settler.NakWithDelay(d) }

// Term stops redelivery of the message for good, with a reason the queue
// reports in its advisory.
func (m *Msg) Term(reason string) error { return m.Settler.Term(reason) }

// InProgress resets the message's ack timer while a long batch runs.
func (m *Msg) InProgress() error { return m.Settler.InProgress() }

// Delivery is one result to send to a job's reply subject: a waiting
// caller's inbox, or a backfill's RESULTS subject.
type Delivery struct {
	Subject string
	// MsgID de-duplicates results the RESULTS stream stores.
	MsgID string
	Data  []byte
	// Header carries the trace context of the job's span, or is nil.
	Header map[string][]string
}

// DeliverError reports the results the RESULTS stream did not store; the
// rest are stored. It unwraps to the first refusal (ErrFull when RESULTS is
// at its limits).
type DeliverError struct {
	// Failed are indexes into the deliveries given.
	Failed []int
	Err    error
}

func (e *DeliverError) Error() string {
	return fmt.Sprintf("%d results not stored: %v", len(e.Failed), e.Err)
}

func (e *DeliverError) Unwrap() error { return e.Err }
