package worker

import (
	"context"
	"sync"
	"time"
)

// inHand is the set of messages a pipeline holds, from the moment its
// puller hands one out until it is acknowledged, nak'ed or terminated. A
// message waits in several places — the batch being collected, the batch
// queued behind the one that runs, the running batch, delivery — and each
// of those can outlast AckWait when the model is slow, so all of them are
// kept alive with InProgress, not only the batch that runs.
type inHand struct {
	mu   sync.Mutex
	msgs map[*Msg]struct{}
}

func newInHand() *inHand { return &inHand{msgs: map[*Msg]struct{}{}} }

func (h *inHand) add(m *Msg) {
	h.mu.Lock()
	h.msgs[m] = struct{}{}
	h.mu.Unlock()
}

func (h *inHand) remove(m *Msg) {
	h.mu.Lock()
	delete(h.msgs, m)
	h.mu.Unlock()
}

// len is the number of messages in hand.
func (h *inHand) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// beat sends InProgress for every message in hand every `every` until ctx
// ends. It reports each round to onRound.
func (h *inHand) beat(ctx context.Context, every time.Duration, onRound func()) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var batch []*Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		batch = batch[:0]
		for m := range h.msgs {
			batch = append(batch, m)
		}
		h.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		for _, m := range batch {
			_ = m.InProgress()
		}
		onRound()
	}
}
