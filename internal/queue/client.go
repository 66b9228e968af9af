package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Errors callers branch on with errors.Is.
var (
	// ErrFull means the JOBS stream is at its limits and refuses new jobs:
	// the caller should push back (429/503 with Retry-After). It is
	// job.ErrFull.
	ErrFull = job.ErrFull
	// ErrUnavailable means JetStream did not answer: the server is down,
	// restarting, or has lost its quorum.
	ErrUnavailable = errors.New("queue unavailable")
)

// Client publishes and pulls jobs. It is safe for concurrent use.
type Client struct {
	nc           *nats.Conn
	js           jetstream.JetStream
	publishRetry time.Duration

	// hintMu guards hinted, on its own: every published bulk job reads it,
	// and need not wait on mu's publish counting.
	hintMu sync.Mutex
	// hinted is when each tenant subject was last hinted at (hintWork).
	hinted map[hintKey]time.Time

	mu   sync.Mutex
	jobs jetstream.Stream // looked up once (jobsStream)
	// The Publish and PublishBatch calls in flight, for WaitPublished.
	inflight int
	idle     chan struct{} // closed when inflight drops to zero
}

// begin counts a publish call in flight; end ends it.
func (c *Client) begin() {
	c.mu.Lock()
	if c.inflight == 0 {
		c.idle = make(chan struct{})
	}
	c.inflight++
	c.mu.Unlock()
}

func (c *Client) end() {
	c.mu.Lock()
	c.inflight--
	if c.inflight == 0 {
		close(c.idle)
	}
	c.mu.Unlock()
}

// New wraps a connection. The caller owns nc and closes it.
func New(nc *nats.Conn) (*Client, error) {
	// A publish buffered while NATS is away resolves with an error after the
	// timeout instead of holding its slot forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Client{nc: nc, js: js, publishRetry: DefaultPublishRetry}, nil
}

// Connect connects to the NATS server at url with opts and wraps the
// connection; the caller closes it (Client.Conn).
func Connect(url string, opts ...nats.Option) (*Client, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	q, err := New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return q, nil
}

// Conn is the underlying connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// JetStream is the underlying JetStream context, for the few callers (tests,
// jetinferctl) that manage streams directly.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// EnsureStreams creates or updates the streams of t.
func (c *Client) EnsureStreams(ctx context.Context, t Topology) error {
	return EnsureStreams(ctx, c.js, t)
}

// CheckStreams fails when a stream of the topology is missing.
func (c *Client) CheckStreams(ctx context.Context) error { return CheckStreams(ctx, c.js) }

// Ready reports whether NATS is connected and the JOBS stream answers.
func (c *Client) Ready(ctx context.Context) error {
	if !c.nc.IsConnected() {
		return fmt.Errorf("nats: %w (status %s)", ErrUnavailable, c.nc.Status())
	}
	if _, err := c.js.Stream(ctx, job.StreamJobs); err != nil {
		return fmt.Errorf("stream %s: %w", job.StreamJobs, err)
	}
	return nil
}

// Header carries W3C trace context and other per-message metadata.
type Header = map[string][]string

// Publish enqueues j on its subject (job.SubjectOf: its lane and task, and
// on a shared lane its tenant) with j.MsgID() as the
// de-duplication id, and waits for JetStream to confirm it. reply is where the
// worker sends the result. It reports whether JetStream saw the message as a
// duplicate of one already accepted. Concurrent calls share the connection's
// asynchronous publish pipeline, so many requests in flight cost one round
// trip's latency each but not one round trip each of throughput.
//
// While JetStream is unavailable (NATS down or restarting) Publish retries
// with the same message id, so a publish that was stored after all is not
// stored twice, for up to the client's publish retry time (SetPublishRetry)
// before it gives up with ErrUnavailable.
func (c *Client) Publish(ctx context.Context, j *job.Job, reply string, hdr Header) (dup bool, err error) {
	return c.publish(ctx, j, j.MsgID(), reply, hdr)
}

// DefaultPublishRetry is how long Publish retries while JetStream is
// unavailable, unless SetPublishRetry says otherwise: a single server's
// restart.
const DefaultPublishRetry = 5 * time.Second

// ClusterPublishRetry is how long Publish should retry on replicated
// streams: it spans the election of a new stream leader after the old one
// died, which JetStream starts 4 to 9 seconds after the last heartbeat it
// heard, plus the client's reconnect to another node.
const ClusterPublishRetry = 15 * time.Second

// publishAttempt bounds the wait for one attempt's acknowledgement: a
// stream leader answers in milliseconds, and one that died never will.
const publishAttempt = 3 * time.Second

// PublishRetryFor is the publish retry for streams of replicas replicas:
// DefaultPublishRetry on one server, ClusterPublishRetry on a cluster.
func PublishRetryFor(replicas int) time.Duration {
	if replicas > 1 {
		return ClusterPublishRetry
	}
	return DefaultPublishRetry
}

// StreamReplicas is the replication factor of the JOBS stream, or
// DefaultReplicas when it cannot be read.
func (c *Client) StreamReplicas(ctx context.Context) int {
	return streamReplicas(ctx, c.js, job.StreamJobs)
}

// SetPublishRetry sets how long Publish retries while JetStream is
// unavailable; 0 tries once. Call it before the client is shared.
func (c *Client) SetPublishRetry(d time.Duration) { c.publishRetry = max(d, 0) }

func (c *Client) publish(ctx context.Context, j *job.Job, msgID, reply string, hdr Header) (bool, error) {
	c.begin()
	defer c.end()
	data, err := json.Marshal(j)
	if err != nil {
		return false, fmt.Errorf("encode job: %w", err)
	}
	subj := job.SubjectOf(j)
	giveUp := time.Now().Add(c.publishRetry)
	wait := 50 * time.Millisecond
	for {
		msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
		for k, v := range hdr {
			msg.Header[k] = v
		}
		msg.Header.Set(job.HeaderTenant, j.Tenant)
		if reply != "" {
			msg.Header.Set(job.HeaderReply, reply)
		}
		if !j.Deadline.IsZero() {
			msg.Header.Set(job.HeaderDeadline, j.Deadline.UTC().Format(time.RFC3339Nano))
		}
		// One attempt waits at most publishAttempt, and not past the retry
		// time (but at least a little), so a publish buffered while NATS is
		// away does not hold the caller past it, and one whose stream
		// leader died before it answered is sent again to the next leader
		// instead of waiting out the retry time.
		attempt := max(min(time.Until(giveUp), publishAttempt), time.Second)
		dup, err := c.publishOnce(ctx, msg, msgID, attempt)
		if err == nil {
			c.hintWork(j)
		}
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			return dup, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false, fmt.Errorf("publish %s: %w", subj, ctx.Err())
		}
		wait = min(2*wait, time.Second)
	}
}

func (c *Client) publishOnce(ctx context.Context, msg *nats.Msg, msgID string, timeout time.Duration) (bool, error) {
	fut, err := c.js.PublishMsgAsync(msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(job.StreamJobs))
	if err != nil {
		return false, classify(fmt.Errorf("publish %s: %w", msg.Subject, err))
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ack := <-fut.Ok():
		return ack.Duplicate, nil
	case err := <-fut.Err():
		return false, classify(fmt.Errorf("publish %s: %w", msg.Subject, err))
	case <-t.C:
		// The message may still be stored; a retry with the same id is
		// de-duplicated by JetStream.
		return false, fmt.Errorf("publish %s: %w: no acknowledgement within %s", msg.Subject, ErrUnavailable, timeout)
	case <-ctx.Done():
		return false, fmt.Errorf("publish %s: %w", msg.Subject, ctx.Err())
	}
}

// WaitPublished blocks until no Publish or PublishBatch call is in flight,
// so every job was confirmed or refused to its caller, or ctx ends; ingest
// calls it while draining. It does not wait for the asynchronous pipeline
// to empty: an attempt abandoned after publishAttempt (its stream leader
// died) stays pending there until its timeout although a retry with the
// same message id has long been confirmed.
func (c *Client) WaitPublished(ctx context.Context) error {
	c.mu.Lock()
	n, idle := c.inflight, c.idle
	c.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %d publishes: %w", n, ctx.Err())
	}
}

// classify maps JetStream's answers to ErrFull and ErrUnavailable.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if apiErr.ErrorCode == 10077 || strings.Contains(apiErr.Description, "maximum messages exceeded") ||
			strings.Contains(apiErr.Description, "maximum bytes exceeded") {
			return fmt.Errorf("%w: %w", ErrFull, err)
		}
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, nats.ErrConnectionReconnecting) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// Delivery is one result to send; see job.Delivery.
type Delivery = job.Delivery

// Reply sends results to waiting callers' inboxes with core publishes,
// fire-and-forget: a caller that has stopped waiting finds the result in
// the result store.
func (c *Client) Reply(_ context.Context, ds []Delivery) error {
	for _, d := range ds {
		if d.Subject == "" {
			continue
		}
		var err error
		if d.Header == nil {
			err = c.nc.Publish(d.Subject, d.Data)
		} else {
			err = c.nc.PublishMsg(&nats.Msg{Subject: d.Subject, Data: d.Data, Header: nats.Header(d.Header)})
		}
		if err != nil {
			return classify(fmt.Errorf("publish %s: %w", d.Subject, err))
		}
	}
	return nil
}

// PublishResults stores backfill documents' results in the RESULTS stream,
// de-duplicated by their MsgID, and returns once JetStream confirmed them.
// When JetStream refuses some, the error is a *DeliverError naming them.
func (c *Client) PublishResults(ctx context.Context, ds []Delivery) error {
	return c.publishStored(ctx, ds)
}

// publishStored publishes ds through JetStream, de-duplicated by their
// MsgID, and waits for every acknowledgement; the stream is the one their
// subjects belong to. When JetStream refuses some, the error is a
// *DeliverError naming them.
func (c *Client) publishStored(ctx context.Context, ds []Delivery) error {
	futs := make([]jetstream.PubAckFuture, 0, len(ds))
	fidx := make([]int, 0, len(ds))
	for i, d := range ds {
		msg := &nats.Msg{Subject: d.Subject, Data: d.Data, Header: nats.Header(d.Header)}
		f, err := c.js.PublishMsgAsync(msg, jetstream.WithMsgID(d.MsgID))
		if err != nil {
			return classify(fmt.Errorf("publish %s: %w", d.Subject, err))
		}
		futs, fidx = append(futs, f), append(fidx, i)
	}
	var de *DeliverError
	for k, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if de == nil {
				de = &DeliverError{Err: classify(fmt.Errorf("publish %s: %w", f.Msg().Subject, err))}
			}
			de.Failed = append(de.Failed, fidx[k])
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if de != nil {
		return de
	}
	return nil
}

// DeliverError reports the deliveries JetStream did not store; see
// job.DeliverError.
type DeliverError = job.DeliverError
