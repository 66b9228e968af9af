package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrDeadNotFound is returned when a tenant has no dead letter for a job.
var ErrDeadNotFound = job.ErrDeadNotFound

// DeadEntry is one dead letter as the DLQ admin API shows it; see
// job.DeadEntry.
type DeadEntry = job.DeadEntry

// DeadPage is one page of a tenant's dead letters, oldest first.
type DeadPage = job.DeadPage

func deadEntry(seq uint64, t time.Time, h nats.Header) DeadEntry {
	e := DeadEntry{Seq: seq, DeadAt: t.UTC(), JobID: h.Get(HeaderJobID), Tenant: h.Get(job.HeaderTenant)}
	e.Attempts, _ = strconv.Atoi(h.Get(job.HeaderAttempts))
	e.Code, e.Reason, _ = strings.Cut(h.Get(job.HeaderError), ": ")
	if l, task, err := job.ParseSubject(h.Get(HeaderSubject)); err == nil {
		e.Lane, e.Task = l, task
	}
	if id := h.Get(HeaderWebhookID); id != "" {
		e.Kind, e.WebhookID, e.Task = DeadKindWebhook, id, h.Get(HeaderWebhookTask)
		if _, ep, ok := job.ParseWebhookSubject(h.Get(HeaderSubject)); ok {
			e.Endpoint = ep
		}
	}
	return e
}

// scanDLQ calls fn with the headers of the dead letters on the subjects
// filters after seq after, oldest first, until fn returns false or none is
// left. It returns the last sequence it handed to fn. The server does the
// filtering, so a tenant's scan does not read other tenants' letters.
func (c *Client) scanDLQ(ctx context.Context, after uint64, filters []string, fn func(e DeadEntry) bool) (uint64, error) {
	s, err := c.js.Stream(ctx, job.StreamDLQ)
	if err != nil {
		return 0, classify(fmt.Errorf("stream %s: %w", job.StreamDLQ, err))
	}
	if after >= s.CachedInfo().State.LastSeq || s.CachedInfo().State.Msgs == 0 {
		return after, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
		HeadersOnly:    true,
	})
	if err != nil {
		return 0, classify(fmt.Errorf("scan %s: %w", job.StreamDLQ, err))
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, classify(fmt.Errorf("scan %s: %w", job.StreamDLQ, err))
	}
	seen, pending := after, info.NumPending
	for pending > 0 {
		// Ask for no more than there are, or the fetch waits out its
		// expiry for messages that will not come.
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return seen, classify(fmt.Errorf("scan %s: %w", job.StreamDLQ, err))
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			seen, pending = md.Sequence.Stream, md.NumPending
			if !fn(deadEntry(seen, md.Timestamp, m.Headers())) {
				return seen, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return seen, classify(fmt.Errorf("scan %s: %w", job.StreamDLQ, err))
		}
		if n == 0 {
			break // deleted meanwhile
		}
	}
	return seen, nil
}

// tenantFilters are the DLQ subjects that can hold tenant's dead letters:
// its own, and the two-token subjects of letters stored before subjects
// named the tenant (dlq.<task>), which the scan filters by header.
func tenantFilters(tenant string) []string {
	return []string{"dlq.*." + job.DLQTenantToken(tenant) + ".*", "dlq.*"}
}

// ListDead returns up to limit of tenant's dead letters after the cursor
// after (0 for the first page), reading headers only and only the tenant's
// subjects.
func (c *Client) ListDead(ctx context.Context, tenant string, after uint64, limit int) (DeadPage, error) {
	if limit <= 0 {
		limit = 100
	}
	page := DeadPage{Entries: []DeadEntry{}}
	full := false
	last, err := c.scanDLQ(ctx, after, tenantFilters(tenant), func(e DeadEntry) bool {
		if e.Tenant != tenant || e.JobID == "" {
			return true
		}
		page.Entries = append(page.Entries, e)
		full = len(page.Entries) == limit
		return !full
	})
	if err != nil {
		return DeadPage{}, err
	}
	if full {
		page.Next = last
	}
	return page, nil
}

// FindDead returns the newest dead letter of tenant's job id, or
// ErrDeadNotFound. Its subject names the job, so this is one lookup; only
// letters stored before subjects named jobs are scanned for.
func (c *Client) FindDead(ctx context.Context, tenant, id string) (*DeadEntry, error) {
	s, err := c.js.Stream(ctx, job.StreamDLQ)
	if err != nil {
		return nil, classify(fmt.Errorf("stream %s: %w", job.StreamDLQ, err))
	}
	m, err := s.GetLastMsgForSubject(ctx, "dlq.*."+job.DLQTenantToken(tenant)+"."+job.DLQIDToken(id))
	switch {
	case err == nil:
		e := deadEntry(m.Sequence, m.Time, m.Header)
		if e.Tenant == tenant && (e.JobID == id || e.WebhookID == id) {
			return &e, nil
		}
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, classify(fmt.Errorf("find dead letter of %s: %w", id, err))
	}
	var found *DeadEntry
	if _, err := c.scanDLQ(ctx, 0, []string{"dlq.*"}, func(e DeadEntry) bool {
		if e.Tenant == tenant && e.JobID == id {
			found = &e
		}
		return true
	}); err != nil {
		return nil, err
	}
	if found == nil {
		return nil, ErrDeadNotFound
	}
	return found, nil
}

// DeadJob reads the job a dead letter holds.
func (c *Client) DeadJob(ctx context.Context, e *DeadEntry) (*job.Job, error) {
	s, err := c.js.Stream(ctx, job.StreamDLQ)
	if err != nil {
		return nil, classify(fmt.Errorf("stream %s: %w", job.StreamDLQ, err))
	}
	raw, err := s.GetMsg(ctx, e.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrDeadNotFound
	}
	if err != nil {
		return nil, classify(fmt.Errorf("get %s #%d: %w", job.StreamDLQ, e.Seq, err))
	}
	var j job.Job
	if err := json.Unmarshal(raw.Data, &j); err != nil {
		return nil, fmt.Errorf("dead letter #%d: decode job: %w", e.Seq, err)
	}
	if j.Tenant != e.Tenant || j.ID != e.JobID {
		return nil, fmt.Errorf("dead letter #%d holds job %s of another tenant or id", e.Seq, j.ID)
	}
	if reply := raw.Header.Get(job.HeaderReply); strings.HasPrefix(reply, "results.") {
		e.ReplyTo = reply
	}
	return &j, nil
}

// Replay publishes the job of dead letter e to JOBS again, under a fresh
// de-duplication id (the job's own id is still in the window), and deletes
// the dead letter. A backfill document's result goes to its results subject
// again; a synchronous caller's inbox is long gone, so none is kept.
//
// Once the publish is confirmed the job is queued, whatever follows: a
// failure to delete the letter then wraps job.ErrDeadLetterKept, so that the
// caller keeps the job's record queued instead of marking it dead again.
func (c *Client) Replay(ctx context.Context, e *DeadEntry, j *job.Job) error {
	if _, err := c.publish(ctx, j, j.MsgID()+":replay:"+strconv.FormatUint(e.Seq, 10), e.ReplyTo, nil); err != nil {
		return err
	}
	s, err := c.js.Stream(ctx, job.StreamDLQ)
	if err == nil {
		err = s.DeleteMsg(ctx, e.Seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: delete %s #%d: %w", job.ErrDeadLetterKept, job.StreamDLQ, e.Seq, classify(err))
	}
	return nil
}
