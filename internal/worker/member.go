package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// The defaults of the membership flags (--heartbeat, --member-ttl). Three
// heartbeats fit in one TTL, so one lost or late heartbeat does not drop a
// live worker, and a crashed one is gone within six seconds.
const (
	DefaultHeartbeat = 2 * time.Second
	DefaultMemberTTL = 6 * time.Second
)

// Registry is what a worker needs of the fleet's membership registry
// (queue.Membership).
type Registry interface {
	// Beat writes the worker's entry, to expire m.TTL() from now.
	Beat(ctx context.Context, m job.Member) error
	// Leave removes the worker's entry at once.
	Leave(ctx context.Context, id string) error
}

// InFlight counts the jobs of each task the worker holds: pulled and not
// yet acknowledged.
func (w *Worker) InFlight() map[string]int {
	out := map[string]int{}
	w.hands.Range(func(task, h any) bool {
		out[task.(string)] = h.(*inHand).len()
		return true
	})
	return out
}

// KeepMembership heartbeats the worker's entry m into reg every `every`,
// with the jobs in hand counted afresh each time, until soft ends (the
// worker was asked to stop: it takes no new work, so it leaves the fleet
// at once, though it finishes what it holds) or hard ends (it leaves too).
// A heartbeat that fails is logged and tried again at the next tick: the
// worker goes on serving, and only drops out of the registry if the
// failures outlast its TTL.
func (w *Worker) KeepMembership(soft, hard context.Context, reg Registry, m job.Member, every time.Duration) error {
	if every <= 0 {
		every = DefaultHeartbeat
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		inFlight := w.InFlight()
		for i := range m.Tasks {
			m.Tasks[i].InFlight = inFlight[m.Tasks[i].Task]
		}
		m.LastSeen = time.Now().UTC()
		bctx, cancel := context.WithTimeout(hard, every)
		err := reg.Beat(bctx, m)
		cancel()
		switch {
		case err != nil && !failing && soft.Err() == nil:
			w.log.Warn("membership heartbeat failed; retrying", slog.String("member", m.ID), slog.Any("error", err))
			failing = true
		case err == nil && failing:
			w.log.Info("membership heartbeat recovered", slog.String("member", m.ID))
			failing = false
		}
		select {
		case <-t.C:
			continue
		case <-soft.Done():
		case <-hard.Done():
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(hard), every)
		defer cancel()
		if err := reg.Leave(lctx, m.ID); err != nil {
			w.log.Warn("leaving the membership registry failed; the entry expires with its TTL",
				slog.String("member", m.ID), slog.Any("error", err))
		}
		return nil
	}
}
