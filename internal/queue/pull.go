package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ErrStopped is returned by Puller.Next once the puller was stopped or
// drained and no buffered message is left.
var ErrStopped = job.ErrStopped

// Puller pulls the jobs of one lane and task (of one tenant, on a shared
// lane) from its durable consumer.
type Puller struct {
	Lane job.Lane
	Task string
	name string
	it   jetstream.MessagesContext
}

// Pull ensures the durable consumer of lane and task exists with cfg and
// starts pulling from it, keeping up to prefetch messages buffered (about one
// batch: prefetched messages age in the client while they wait). On a
// shared lane it serves what an older ingest queued on the lane subject;
// PullTenant serves each tenant's subject.
func (c *Client) Pull(ctx context.Context, l job.Lane, task string, cfg ConsumerConfig, prefetch int) (*Puller, error) {
	return c.pull(ctx, l, task, cfg.consumer(l, task), prefetch)
}

// PullTenant is Pull for the consumer of tenantToken's jobs of a shared
// lane and task, which it creates when missing (the server removes it once
// idle: ConsumerConfig.TenantIdle).
func (c *Client) PullTenant(ctx context.Context, l job.Lane, task, tenantToken string, cfg ConsumerConfig, prefetch int) (*Puller, error) {
	if !l.Shared() {
		return nil, fmt.Errorf("lane %s is not shared between tenants", l)
	}
	return c.pull(ctx, l, task, cfg.tenantConsumer(l, task, tenantToken), prefetch)
}

func (c *Client) pull(ctx context.Context, l job.Lane, task string, cfg jetstream.ConsumerConfig, prefetch int) (*Puller, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, job.StreamJobs, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	// A missed heartbeat (a busy machine, a leader election) is a hiccup
	// the iterator recovers from by pulling again; surfaced, it would make
	// callers back off and log for nothing.
	it, err := cons.Messages(jetstream.PullMaxMessages(max(prefetch, 1)), jetstream.PullExpiry(5*time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", cfg.Durable, err)
	}
	return &Puller{Lane: l, Task: task, name: cfg.Durable, it: it}, nil
}

// hintEvery is how often at most a client hints at work on one tenant
// subject: a tenant that submits steadily is pulled already, and its hints
// would only make workers list tenants for nothing.
const hintEvery = time.Second

// maxHinted bounds the subjects a client remembers hinting at; past it, it
// forgets them all, which costs a few hints.
const maxHinted = 10_000

// WorkHintSubject is the core NATS subject on which publishers hint that
// jobs of shared lane l and task arrived on a tenant's subject
// (WatchTenants). Its payload is the tenant token.
func WorkHintSubject(l job.Lane, task string) string {
	return "jetinfer.work." + string(l) + "." + task
}

// hintKey names a tenant subject of a shared lane by its parts, so that
// hintWork looks it up without building the subject: a lane, a task and a
// tenant token (job.TenantSubject).
type hintKey struct {
	lane        job.Lane
	task, token string
}

// hintWork tells the workers, fire-and-forget and at most every hintEvery
// per tenant subject, that j is queued on a shared lane, so that a tenant
// with no worker pulling its consumer is pulled at once rather than at the
// workers' next scan. It costs no round trip, and no allocation when the
// subject was hinted at within hintEvery.
func (c *Client) hintWork(j *job.Job) {
	if !j.Lane.Shared() {
		return
	}
	key, now := hintKey{j.Lane, j.Task, job.DLQTenantToken(j.Tenant)}, time.Now()
	c.hintMu.Lock()
	if now.Sub(c.hinted[key]) < hintEvery {
		c.hintMu.Unlock()
		return
	}
	if c.hinted == nil || len(c.hinted) >= maxHinted {
		c.hinted = map[hintKey]time.Time{}
	}
	c.hinted[key] = now
	c.hintMu.Unlock()
	_ = c.nc.Publish(WorkHintSubject(j.Lane, j.Task), []byte(key.token))
}

// WatchTenants calls fn whenever a publisher hints that jobs of shared lane
// l and task arrived on a tenant's subject, until stop is called. A hint may
// be lost or come for a tenant already pulled: callers still look for
// tenants every so often (TenantsWaiting).
func (c *Client) WatchTenants(l job.Lane, task string, fn func()) (stop func(), err error) {
	sub, err := c.nc.Subscribe(WorkHintSubject(l, task), func(*nats.Msg) { fn() })
	if err != nil {
		return nil, fmt.Errorf("watch tenants of %s: %w", job.Subject(l, task), err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// TenantsWaiting lists the tokens of the tenants whose jobs of shared lane
// l and task are in JOBS, waiting or in a worker's hands, in one round
// trip: the subjects JOBS holds messages on are what each tenant's
// consumer filters on, so this needs no consumer to exist.
func (c *Client) TenantsWaiting(ctx context.Context, l job.Lane, task string) ([]string, error) {
	counts, err := c.subjectCounts(ctx, job.Subject(l, task)+".*")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(counts))
	for subj, n := range counts {
		if _, _, tok, err := job.ParseTenantSubject(subj); err == nil && tok != "" && n > 0 {
			out = append(out, tok)
		}
	}
	slices.Sort(out)
	return out, nil
}

// subjectCounts is how many messages JOBS holds on each subject matching
// filter.
func (c *Client) subjectCounts(ctx context.Context, filter string) (map[string]uint64, error) {
	s, err := c.jobsStream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, classify(fmt.Errorf("stream %s subjects %s: %w", job.StreamJobs, filter, err))
	}
	return info.State.Subjects, nil
}

// jobsStream is the JOBS stream's handle, looked up once.
func (c *Client) jobsStream(ctx context.Context) (jetstream.Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs != nil {
		return c.jobs, nil
	}
	s, err := c.js.Stream(ctx, job.StreamJobs)
	if err != nil {
		return nil, classify(fmt.Errorf("stream %s: %w", job.StreamJobs, err))
	}
	c.jobs = s
	return s, nil
}

// Next blocks until a message arrives. It returns ErrStopped after Stop or
// once Drain has handed out every buffered message.
func (p *Puller) Next() (*Msg, error) {
	m, err := p.it.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, job.ErrStopped
		}
		return nil, fmt.Errorf("next %s: %w", p.name, err)
	}
	return newMsg(m), nil
}

// Stop stops pulling at once; buffered messages are left to redelivery.
func (p *Puller) Stop() { p.it.Stop() }

// Drain stops pulling but lets Next hand out the messages already buffered.
func (p *Puller) Drain() { p.it.Drain() }

// Msg is one delivery of a job; see job.Msg.
type Msg = job.Msg

func newMsg(m jetstream.Msg) *Msg {
	h := m.Headers()
	msg := &Msg{Attempt: 1, Header: Header(h), Subject: m.Subject(), Data: m.Data(), Settler: settler{m}}
	if md, err := m.Metadata(); err == nil {
		msg.Attempt = int(md.NumDelivered)
		msg.Enqueued = md.Timestamp
		msg.StreamSeq = md.Sequence.Stream
	}
	msg.Reply = h.Get(job.HeaderReply)
	if err := json.Unmarshal(m.Data(), &msg.Job); err != nil {
		msg.DecodeErr = fmt.Errorf("decode job: %w", err)
	} else if lane, task, err := job.ParseSubject(m.Subject()); err != nil {
		msg.DecodeErr = err
	} else if msg.Job.Task != task || msg.Job.Lane != lane {
		msg.DecodeErr = fmt.Errorf("job %s names task %q lane %q but came on %s", msg.Job.ID, msg.Job.Task, msg.Job.Lane, m.Subject())
	} else if msg.Job.ID == "" {
		msg.DecodeErr = errors.New("job has no id")
	}
	if t := h.Get(job.HeaderTenant); t != "" && msg.Job.Tenant == "" {
		msg.Job.Tenant = t
	}
	return msg
}

// settler settles a JetStream delivery.
type settler struct{ m jetstream.Msg }

func (s settler) Ack() error                         { return s.m.Ack() }
func (s settler) NakWithDelay(d time.Duration) error { return s.m.NakWithDelay(d) }
func (s settler) Term(reason string) error           { return s.m.TermWithReason(reason) }
func (s settler) InProgress() error                  { return s.m.InProgress() }
