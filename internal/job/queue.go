package job

import (
	"context"
	"errors"
	"time"
)

// The types below are what the queue answers its callers with (ingest
// among them), kept here so that callers depend on the contract and not on
// the JetStream adapter.

// Errors the queue's readers answer with.
var (
	// ErrNoResult means no result arrived within the wait given to a
	// ResultStream's Next.
	ErrNoResult = errors.New("no result yet")
	// ErrDeadNotFound means a tenant has no dead letter for the job.
	ErrDeadNotFound = errors.New("dead letter not found")
	// ErrDeadLetterKept means a replay published its job but could not
	// delete the dead letter: the job is queued again, and the stale letter
	// only lingers in the DLQ listing.
	ErrDeadLetterKept = errors.New("job replayed; its dead letter could not be deleted")
)

// Reply is a result as it reached a process's inbox.
type Reply struct {
	Data []byte
	// Header carries the trace context of the worker's job span, when the
	// job is traced.
	Header map[string][]string
	// Arrived is when the subscription received it.
	Arrived time.Time
}

// Published is the outcome of publishing one job of a batch.
type Published struct {
	// Dup reports that the queue already held a message with the job's
	// de-duplication id (within its duplicate window).
	Dup bool
	// Err is why the job was not enqueued (ErrFull, unavailable...).
	Err error
}

// Usage is how full a stream is.
type Usage struct {
	// Bytes and Msgs are what the stream holds.
	Bytes, Msgs uint64
	// MaxBytes and MaxMsgs are its limits (0 or -1: none).
	MaxBytes, MaxMsgs int64
	// First is when its oldest message was stored (zero when empty); MaxAge
	// is how long messages are kept (0: until a limit or an ack removes
	// them).
	First  time.Time
	MaxAge time.Duration
}

// ResultStream reads the results of one backfill, oldest first.
type ResultStream interface {
	// Next returns the next result, its stream sequence, and how many more
	// the stream holds for the backfill at this moment. It returns
	// ErrNoResult when none arrives within wait, and ctx's error when ctx
	// ends.
	Next(ctx context.Context, wait time.Duration) (data []byte, seq, pending uint64, err error)
	// LastSeq is the stream sequence of the backfill's latest result, 0
	// when it has none.
	LastSeq(ctx context.Context) (uint64, error)
	// Stop ends the reading.
	Stop()
}

// DeadEntry is one dead letter as the DLQ admin API shows it.
type DeadEntry struct {
	// Seq is the dead letter's sequence in the DLQ stream.
	Seq    uint64    `json:"seq"`
	JobID  string    `json:"job_id"`
	Tenant string    `json:"-"`
	Task   string    `json:"task"`
	Lane   Lane      `json:"lane,omitempty"`
	Code   string    `json:"code"`
	Reason string    `json:"reason"`
	DeadAt time.Time `json:"dead_at"`
	// Attempts is how often the job was delivered before it died.
	Attempts int `json:"attempts"`
	// Kind is DeadKindWebhook for an undeliverable webhook event (JobID
	// is then the job it reports on, WebhookID the id replay takes), and
	// empty for a dead job.
	Kind      string `json:"kind,omitempty"`
	WebhookID string `json:"webhook_id,omitempty"`
	// Endpoint is the webhook endpoint id of a webhook dead letter.
	Endpoint string `json:"endpoint,omitempty"`
	// ReplyTo is where the job's result went (a backfill's results
	// subject), kept on replay; never shown.
	ReplyTo string `json:"-"`
}

// DeadKindWebhook is DeadEntry.Kind of an undeliverable webhook event.
const DeadKindWebhook = "webhook"

// DeadPage is one page of a tenant's dead letters.
type DeadPage struct {
	Entries []DeadEntry `json:"dead_letters"`
	// Next is the cursor of the following page, 0 when this is the last.
	Next uint64 `json:"next,omitempty"`
}

// Backlog is what one durable consumer of JOBS has waiting and in flight.
type Backlog struct {
	// Pending is the number of jobs not yet handed to any worker.
	Pending uint64
	// AckPending is the number of jobs handed out and not yet acknowledged.
	AckPending int
	// Redelivered is the number of jobs handed out more than once and not
	// yet acknowledged.
	Redelivered int
}

// ConsumerBacklog is the backlog of the consumer of one lane and task.
type ConsumerBacklog struct {
	Lane Lane
	Task string
	Backlog
}
