package queue

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Reply is a result as it reached this process's inbox; see job.Reply.
type Reply = job.Reply

// Replies routes results sent to this process's inbox subjects to the
// requests waiting for them. One wildcard subscription serves every waiter,
// so a synchronous call costs no subscription round trip.
type Replies struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	waiters map[string]chan Reply
}

// NewReplies subscribes to a fresh inbox prefix on nc.
func NewReplies(nc *nats.Conn) (*Replies, error) {
	r := &Replies{prefix: nc.NewRespInbox(), waiters: map[string]chan Reply{}}
	sub, err := nc.Subscribe(r.prefix+".*", r.handle)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s.*: %w", r.prefix, err)
	}
	// A burst of results must not make the subscription a slow consumer.
	if err := sub.SetPendingLimits(1<<20, 512<<20); err != nil {
		return nil, fmt.Errorf("pending limits: %w", err)
	}
	r.sub = sub
	return r, nil
}

func (r *Replies) handle(m *nats.Msg) {
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	r.mu.Lock()
	ch := r.waiters[id]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- Reply{Data: m.Data, Header: m.Header, Arrived: time.Now()}:
		default: // a redelivered result for a waiter that has one already
		}
	}
}

// Register makes a reply subject for token (a job id, no dots) and returns
// it with the channel its result arrives on. Call cancel when done waiting.
func (r *Replies) Register(token string) (subject string, results <-chan Reply, cancel func()) {
	ch := make(chan Reply, 1)
	r.mu.Lock()
	r.waiters[token] = ch
	r.mu.Unlock()
	return r.prefix + "." + token, ch, func() {
		r.mu.Lock()
		if r.waiters[token] == ch {
			delete(r.waiters, token)
		}
		r.mu.Unlock()
	}
}

// Close unsubscribes.
func (r *Replies) Close() error { return r.sub.Unsubscribe() }
