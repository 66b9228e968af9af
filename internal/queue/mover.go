package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// StreamAdvisories captures the MAX_DELIVERIES advisories of the JOBS
// consumers durably, so that a job that exhausted its deliveries is moved to
// the DLQ even when no mover was running at the moment the server gave up.
const StreamAdvisories = "ADVISORIES"

// MaxDeliveriesSubject is where the server announces that a JOBS message
// reached its consumer's MaxDeliver: one token per consumer.
const MaxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + job.StreamJobs + ".*"

// MoverConsumer is the durable consumer every mover shares, so each
// advisory is handled by one worker process.
const MoverConsumer = "dlq-mover"

// Header names a dead letter carries besides job.HeaderError and
// job.HeaderAttempts.
const (
	// HeaderJobID is the id of the dead job, so that dead letters can be
	// found without decoding their payload.
	HeaderJobID = "Jetinfer-Job-Id"
	// HeaderSubject is the JOBS subject the job was published to.
	HeaderSubject = "Jetinfer-Subject"
	// HeaderJobSeq is the job's sequence in the JOBS stream.
	HeaderJobSeq = "Jetinfer-Job-Seq"
)

// DeadStore is what the mover needs of the result store.
type DeadStore interface {
	// MarkDead writes the dead state of j unless it has a final state
	// already, and returns the status j ends with.
	MarkDead(ctx context.Context, j *job.Job, e *job.Error, attempts int, now time.Time) (job.Status, error)
	// Get returns the record of a tenant's job.
	Get(ctx context.Context, tenant, id string) (*job.Record, error)
}

// maxDeliveriesAdvisory is the part of the server's
// io.nats.jetstream.advisory.v1.max_deliver event the mover reads.
type maxDeliveriesAdvisory struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// MoverConfig tunes RunMover.
type MoverConfig struct {
	// RetryDelay is how long an advisory waits before it is handled again
	// after a failure (the result store or NATS down). Defaults to 2s.
	RetryDelay time.Duration
	// AckWait is how long the mover may take over one advisory before the
	// server offers it to another mover. Defaults to 30s.
	AckWait time.Duration
}

func (c MoverConfig) withDefaults() MoverConfig {
	if c.RetryDelay <= 0 {
		c.RetryDelay = 2 * time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	return c
}

// RunMover moves jobs that exhausted MaxDeliver into the DLQ until ctx ends.
// For each MAX_DELIVERIES advisory captured in StreamAdvisories it reads the
// job from JOBS by sequence, marks its record dead, copies it into the DLQ
// with its error and attempt count, sends the dead record to the job's reply
// subject, and deletes the original. Every step is idempotent, so an
// advisory handled twice (a mover killed halfway) moves the job once.
func (c *Client) RunMover(ctx context.Context, st DeadStore, cfg MoverConfig, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamAdvisories, jetstream.ConsumerConfig{
		Durable:       MoverConsumer,
		Description:   "moves jobs that exhausted MaxDeliver into the DLQ",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("consumer %s: %w", MoverConsumer, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(16), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("pull %s: %w", MoverConsumer, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			log.WarnContext(ctx, "dlq mover pull failed", slog.Any("error", err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
				continue
			}
		}
		actx := context.WithoutCancel(ctx)
		if err := c.moveOne(actx, st, m.Data()); err != nil {
			log.WarnContext(ctx, "dlq mover: will retry", slog.Any("error", err))
			_ = m.NakWithDelay(cfg.RetryDelay)
			continue
		}
		_ = m.Ack()
	}
}

// moveOne handles one advisory; a nil error means it needs no retry.
func (c *Client) moveOne(ctx context.Context, st DeadStore, data []byte) error {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(data, &adv); err != nil || adv.Stream != job.StreamJobs || adv.StreamSeq == 0 {
		return nil // not ours, or nothing to move
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	jobs, err := c.js.Stream(ctx, job.StreamJobs)
	if err != nil {
		return classify(fmt.Errorf("stream %s: %w", job.StreamJobs, err))
	}
	raw, err := jobs.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // moved already, or acknowledged after all
	}
	if err != nil {
		return classify(fmt.Errorf("get %s #%d: %w", job.StreamJobs, adv.StreamSeq, err))
	}
	attempts := int(adv.Deliveries)
	m := decodeStored(raw, attempts)
	jerr := job.Exhausted(attempts)
	reason := jerr.Message
	backfill := m.DecodeErr == nil && m.Job.Backfill != ""
	if backfill && m.Reply != "" {
		// A backfill document has no record to hold its outcome: RESULTS
		// must have it before the store counts it (as the worker does). If
		// the document had a result already, its message id drops this one.
		rec := job.RecordOf(&m.Job, job.StatusDead)
		rec.Error, rec.Attempts, rec.Finished = jerr, attempts, time.Now().UTC()
		data, _ := json.Marshal(rec)
		if err := c.PublishResults(ctx, []Delivery{{Subject: m.Reply, MsgID: m.Job.MsgID(), Data: data}}); err != nil {
			return err
		}
	}
	status := job.StatusDead
	if m.DecodeErr == nil {
		status, err = st.MarkDead(ctx, &m.Job, jerr, attempts, time.Now())
		if err != nil {
			return fmt.Errorf("mark job %s dead: %w", m.Job.ID, err)
		}
	}
	if status == job.StatusDead {
		if err := c.copyToDLQ(ctx, m, job.CodeMaxDeliver, reason, attempts); err != nil {
			return err
		}
	}
	// A job that has a final state of its own (it succeeded, but every ack
	// was lost) only leaves JOBS; either way its caller hears the outcome.
	if m.Reply != "" && m.DecodeErr == nil && !backfill {
		rec, err := st.Get(ctx, m.Job.Tenant, m.Job.ID)
		if err != nil {
			return fmt.Errorf("get job %s: %w", m.Job.ID, err)
		}
		data, _ := json.Marshal(rec)
		if err := c.Reply(ctx, []Delivery{{Subject: m.Reply, MsgID: m.Job.MsgID(), Data: data}}); err != nil {
			return err
		}
	}
	if err := jobs.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return classify(fmt.Errorf("delete %s #%d: %w", job.StreamJobs, adv.StreamSeq, err))
	}
	return nil
}

// decodeStored decodes a message read from JOBS by sequence the way a
// delivered one is decoded.
func decodeStored(raw *jetstream.RawStreamMsg, attempts int) *Msg {
	return newMsg(storedMsg{raw: raw, attempts: attempts})
}

// storedMsg is a message read from a stream by sequence, seen as a delivery
// so that it decodes like one. It cannot be acknowledged.
type storedMsg struct {
	raw      *jetstream.RawStreamMsg
	attempts int
}

var errStored = errors.New("a message read by sequence cannot be acknowledged")

func (s storedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: s.raw.Sequence},
		NumDelivered: uint64(s.attempts), Timestamp: s.raw.Time, Stream: job.StreamJobs}, nil
}
func (s storedMsg) Data() []byte                     { return s.raw.Data }
func (s storedMsg) Headers() nats.Header             { return s.raw.Header }
func (s storedMsg) Subject() string                  { return s.raw.Subject }
func (s storedMsg) Reply() string                    { return "" }
func (s storedMsg) Ack() error                       { return errStored }
func (s storedMsg) DoubleAck(context.Context) error  { return errStored }
func (s storedMsg) Nak() error                       { return errStored }
func (s storedMsg) NakWithDelay(time.Duration) error { return errStored }
func (s storedMsg) InProgress() error                { return errStored }
func (s storedMsg) Term() error                      { return errStored }
func (s storedMsg) TermWithReason(string) error      { return errStored }

// copyToDLQ stores m in the DLQ stream with why it is dead, de-duplicated by
// its JOBS sequence.
func (c *Client) copyToDLQ(ctx context.Context, m *Msg, code, reason string, attempts int) error {
	task := m.Job.Task
	if task == "" || !job.ValidTaskName(task) {
		if _, t, err := job.ParseSubject(m.Subject); err == nil && job.ValidTaskName(t) {
			task = t
		} else {
			task = "_unknown"
		}
	}
	msg := &nats.Msg{Subject: job.DLQSubject(task, m.Job.Tenant, m.Job.ID), Data: m.Data, Header: nats.Header{}}
	for k, v := range m.Header {
		// Nats-Msg-Id, Nats-Expected-Stream and the like were the original
		// publish's instructions to JetStream, not the dead letter's.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		msg.Header[k] = v
	}
	msg.Header.Set(job.HeaderError, code+": "+reason)
	msg.Header.Set(job.HeaderAttempts, strconv.Itoa(attempts))
	msg.Header.Set(HeaderSubject, m.Subject)
	msg.Header.Set(HeaderJobSeq, strconv.FormatUint(m.StreamSeq, 10))
	if m.Job.ID != "" {
		msg.Header.Set(HeaderJobID, m.Job.ID)
	}
	if m.Job.Tenant != "" {
		msg.Header.Set(job.HeaderTenant, m.Job.Tenant)
	}
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq:"+strconv.FormatUint(m.StreamSeq, 10))); err != nil {
		return classify(fmt.Errorf("dead-letter job %s: %w", m.Job.ID, err))
	}
	return nil
}
