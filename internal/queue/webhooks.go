package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Webhook event headers, besides job.HeaderTenant.
const (
	// HeaderWebhookID is the event's webhook-id; on a dead letter it marks
	// the letter as a webhook's.
	HeaderWebhookID = "Jetinfer-Webhook-Id"
	// HeaderWebhookTask is the task of the job an event reports on, so
	// that a task-limited token sees and replays only its tasks' webhook
	// dead letters.
	HeaderWebhookTask = "Jetinfer-Webhook-Task"
	// WebhookConsumer is the durable consumer every deliverer shares.
	WebhookConsumer = "webhooks"
	// deadKindWebhook is the task token of webhook dead letters:
	// dlq._webhook.<tenant>.<webhook id token>.
	deadKindWebhook = "_webhook"
)

// DeadKindWebhook is DeadEntry.Kind of an undeliverable webhook event; see
// job.DeadKindWebhook.
const DeadKindWebhook = job.DeadKindWebhook

// webhookStream is the WEBHOOKS stream of t: a work queue of events that
// keeps at most WebhooksMaxPerEndpoint waiting for one endpoint, so that a
// dead receiver's backlog refuses its own new events and nobody else's.
func (t Topology) webhookStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 job.StreamWebhooks,
		Description:          "webhook events waiting for delivery: webhooks.<tenant>.<endpoint id>",
		Subjects:             []string{"webhooks.>"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              t.Storage,
		Replicas:             t.Replicas,
		Duplicates:           t.Duplicates,
		MaxAge:               t.WebhooksMaxAge,
		MaxBytes:             t.WebhooksMaxBytes,
		MaxMsgsPerSubject:    t.WebhooksMaxPerEndpoint,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           4 << 20,
	}
}

// PublishWebhooks queues webhook events in the WEBHOOKS stream (subjects
// from job.WebhookSubject), de-duplicated by their MsgID (the webhook-id),
// and returns once JetStream confirmed them. When JetStream refuses some
// (ErrFull: their endpoint's backlog is full), the error is a
// *DeliverError naming them.
func (c *Client) PublishWebhooks(ctx context.Context, ds []Delivery) error {
	return c.publishStored(ctx, ds)
}

// WebhookConsumerConfig tunes the deliverers' durable consumer.
type WebhookConsumerConfig struct {
	// AckWait must cover one delivery attempt (the request timeout).
	AckWait time.Duration
	// MaxAckPending bounds the events handed out and not yet settled
	// across all deliverers.
	MaxAckPending int
}

// PullWebhooks ensures the deliverers' durable consumer exists with cfg and
// starts pulling events, keeping up to prefetch buffered. Redelivery is
// unlimited: the deliverer decides when an event is given up and
// dead-letters it itself.
func (c *Client) PullWebhooks(ctx context.Context, cfg WebhookConsumerConfig, prefetch int) (*WebhookPuller, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, job.StreamWebhooks, jetstream.ConsumerConfig{
		Durable:       WebhookConsumer,
		Description:   "jetinfer webhook deliverers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s not found: start ingest or run `jetinferctl setup` first", job.StreamWebhooks)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("consumer %s: %w", WebhookConsumer, err))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(prefetch, 1)), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", WebhookConsumer, err)
	}
	return &WebhookPuller{it: it}, nil
}

// WebhookPuller pulls webhook events.
type WebhookPuller struct{ it jetstream.MessagesContext }

// Next blocks until an event arrives; ErrStopped after Stop or Drain.
func (p *WebhookPuller) Next() (*WebhookMsg, error) {
	m, err := p.it.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, ErrStopped
		}
		return nil, fmt.Errorf("next %s: %w", WebhookConsumer, err)
	}
	h := m.Headers()
	wm := &WebhookMsg{m: m, ID: h.Get(HeaderWebhookID), JobID: h.Get(HeaderJobID), Tenant: h.Get(job.HeaderTenant), Attempt: 1}
	if parts := strings.Split(m.Subject(), "."); len(parts) == 3 {
		wm.Endpoint = parts[2]
	}
	if md, err := m.Metadata(); err == nil {
		wm.Attempt, wm.Published, wm.seq = int(md.NumDelivered), md.Timestamp, md.Sequence.Stream
	}
	return wm, nil
}

// Stop stops pulling at once; buffered events are left to redelivery.
func (p *WebhookPuller) Stop() { p.it.Stop() }

// Drain stops pulling but lets Next hand out the events already buffered.
func (p *WebhookPuller) Drain() { p.it.Drain() }

// WebhookMsg is one delivery of a webhook event.
type WebhookMsg struct {
	// ID is the event's webhook-id.
	ID string
	// JobID is the job the event reports on.
	JobID    string
	Tenant   string
	Endpoint string
	// Published is when the event was stored: its age decides retries.
	Published time.Time
	// Attempt is JetStream's delivery count.
	Attempt int
	seq     uint64
	m       jetstream.Msg
}

// Body is the event as it is POSTed.
func (m *WebhookMsg) Body() []byte { return m.m.Data() }

// Ack settles a delivered event.
func (m *WebhookMsg) Ack() error { return m.m.Ack() }

// NakWithDelay asks for the event again after d.
func (m *WebhookMsg) NakWithDelay(d time.Duration) error { return m.m.NakWithDelay(d) }

// DeadLetterWebhook copies m to the DLQ stream with the reason it cannot be
// delivered and terminates it. The copy is de-duplicated by the event's
// WEBHOOKS sequence.
func (c *Client) DeadLetterWebhook(ctx context.Context, m *WebhookMsg, code, reason string) error {
	msg := &nats.Msg{Subject: job.DLQSubject(deadKindWebhook, m.Tenant, m.ID), Data: m.Body(), Header: nats.Header{}}
	msg.Header.Set(HeaderWebhookID, m.ID)
	msg.Header.Set(HeaderJobID, m.JobID)
	msg.Header.Set(job.HeaderTenant, m.Tenant)
	msg.Header.Set(job.HeaderError, code+": "+reason)
	msg.Header.Set(job.HeaderAttempts, strconv.Itoa(m.Attempt))
	msg.Header.Set(HeaderSubject, m.m.Subject())
	if task := m.m.Headers().Get(HeaderWebhookTask); task != "" {
		msg.Header.Set(HeaderWebhookTask, task)
	}
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq:webhooks:"+strconv.FormatUint(m.seq, 10))); err != nil {
		return classify(fmt.Errorf("dead-letter webhook %s: %w", m.ID, err))
	}
	if err := m.m.TermWithReason(code + ": " + reason); err != nil {
		return fmt.Errorf("term webhook %s: %w", m.ID, err)
	}
	return nil
}

// ReplayWebhook publishes the event of webhook dead letter e to WEBHOOKS
// again, with a fresh retry budget and the same webhook-id (receivers
// de-duplicate by it), and deletes the dead letter.
func (c *Client) ReplayWebhook(ctx context.Context, e *DeadEntry) error {
	s, err := c.js.Stream(ctx, job.StreamDLQ)
	if err != nil {
		return classify(fmt.Errorf("stream %s: %w", job.StreamDLQ, err))
	}
	raw, err := s.GetMsg(ctx, e.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ErrDeadNotFound
	}
	if err != nil {
		return classify(fmt.Errorf("get %s #%d: %w", job.StreamDLQ, e.Seq, err))
	}
	if raw.Header.Get(job.HeaderTenant) != e.Tenant || raw.Header.Get(HeaderWebhookID) != e.WebhookID {
		return fmt.Errorf("dead letter #%d holds another tenant's or webhook's event", e.Seq)
	}
	msg := &nats.Msg{Subject: job.WebhookSubject(e.Tenant, e.Endpoint), Data: raw.Data, Header: nats.Header{}}
	msg.Header.Set(HeaderWebhookID, e.WebhookID)
	msg.Header.Set(HeaderJobID, e.JobID)
	msg.Header.Set(job.HeaderTenant, e.Tenant)
	if e.Task != "" {
		msg.Header.Set(HeaderWebhookTask, e.Task)
	}
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.WebhookID+":replay:"+strconv.FormatUint(e.Seq, 10))); err != nil {
		return classify(fmt.Errorf("replay webhook %s: %w", e.WebhookID, err))
	}
	if err := s.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return classify(fmt.Errorf("delete %s #%d: %w", job.StreamDLQ, e.Seq, err))
	}
	return nil
}
