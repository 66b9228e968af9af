package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// outcome is what happens to a job once its batch is through.
type outcome uint8

const (
	pending   outcome = iota // still to run
	finish                   // write the final state, deliver, ack
	dead                     // write dead, dead-letter, terminate
	retry                    // nak with delay
	redeliver                // already final: send the stored record again, ack
)

// item is one delivery moving through a pipeline.
type item struct {
	msg      *queue.Msg
	prep     Prepared
	received time.Time
	started  time.Time
	unmarked bool // never marked running: Finish records started

	outcome outcome
	status  job.Status
	result  json.RawMessage
	err     *job.Error
	delay   time.Duration
	timings job.Timings
	// reuseKey and reused: a backfill document's reuse-cache key, and
	// whether its result came from that cache instead of the model.
	reuseKey string
	reused   bool
	// parked: RESULTS refused the result; the item waits in pl.parked.
	parked bool
	// inferred is when the model call that ran the job returned; span is
	// the job's trace span in this worker, parent its remote parent.
	inferred time.Time
	span     trace.Span
	parent   trace.SpanContext
}

// pipeline serves one model: collect → run → deliver, each a goroutine, so
// the next batch is collected while one runs and the previous is delivered.
type pipeline struct {
	w     *Worker
	model Model
	inter *queue.Puller
	bulk  *queue.Puller
	// backfill is the backfill lane's first puller; parking stops it while
	// RESULTS is full and starts another when it has room (park.go).
	backfill *queue.Puller
	// names are the span names, built once (namesOnce).
	namesOnce sync.Once
	names     spanNames

	planner *batch.Planner
	lengths []int
	classes []batch.Class

	hand   *inHand // messages held, kept alive with InProgress
	parked parking // backfill documents whose results RESULTS refused
	// soft ends when the worker is asked to stop: finish what is in hand.
	soft context.Context
}

func (pl *pipeline) run(ctx context.Context) error {
	pl.hand = newInHand()
	bctx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go pl.hand.beat(bctx, pl.w.cfg.Consumer.AckWait/3, func() { pl.w.m.heartbeats.Add(1) })
	pl.parked.wake, pl.parked.lane = make(chan struct{}, 1), pl.backfill
	if pl.soft == nil {
		pl.soft = ctx
	}
	g, ctx := errgroup.WithContext(ctx)
	inter := make(chan *queue.Msg)
	// The bulk and backfill lanes feed one channel, so that the collector
	// takes from both in turn while both have work.
	bulk := make(chan *queue.Msg)
	// Unbuffered, so that a batch keeps growing until the runner takes it.
	batches := make(chan []*item)
	done := make(chan []*item, 1)
	g.Go(func() error { pl.pump(ctx, pl.inter, inter); return nil })
	g.Go(func() error {
		var feeders sync.WaitGroup
		feeders.Go(func() { pl.pumpFrom(ctx, pl.bulk, bulk) })
		feeders.Go(func() { pl.pumpBackfill(ctx, bulk) })
		feeders.Wait()
		close(bulk)
		return nil
	})
	g.Go(func() error { return pl.collect(ctx, inter, bulk, batches) })
	g.Go(func() error { return pl.runBatches(ctx, batches, done) })
	delivered := make(chan struct{})
	g.Go(func() error {
		defer close(delivered)
		return pl.deliverBatches(ctx, done)
	})
	g.Go(func() error { return pl.unpark(ctx, delivered) })
	return g.Wait()
}

// pump moves messages from a puller to a channel until the puller stops.
func (pl *pipeline) pump(ctx context.Context, p *queue.Puller, out chan<- *queue.Msg) {
	defer close(out)
	pl.pumpFrom(ctx, p, out)
}

// pumpFrom moves messages from a puller to out until the puller stops.
func (pl *pipeline) pumpFrom(ctx context.Context, p *queue.Puller, out chan<- *queue.Msg) {
	for {
		m, err := p.Next()
		if errors.Is(err, queue.ErrStopped) {
			return
		}
		if err != nil {
			pl.w.log.WarnContext(ctx, "pull failed", slog.String("task", p.Task), slog.String("lane", string(p.Lane)), slog.Any("error", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		pl.hand.add(m)
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// collect fills batches, interactive lane first, until the batch is full by
// size or tokens or its first document has waited BatchWait; then, until
// the runner is free to take it, the batch goes on growing while it has
// room. So BatchWait can be zero: an idle model runs a job as soon as it
// comes, and a busy one gets batches that filled while it worked.
func (pl *pipeline) collect(ctx context.Context, inter, bulk <-chan *queue.Msg, out chan<- []*item) error {
	defer close(out)
	cfg := pl.w.cfg
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var carry []*item // bulk jobs that made room for interactive ones
	var lastInter time.Time
	for inter != nil || bulk != nil || len(carry) > 0 {
		batch := carry
		deferred := len(carry) > 0 // made way for interactive jobs once already
		carry = nil
		tokens := tokensOf(batch)
		add := func(m *queue.Msg, ok bool, lane *<-chan *queue.Msg) {
			if !ok {
				*lane = nil
				return
			}
			it := pl.prepare(ctx, m)
			if it.prep != nil {
				tokens += it.prep.Tokens() * it.prep.Rows()
			}
			if m.Job.Lane == job.LaneInteractive {
				lastInter = time.Now()
			}
			batch = append(batch, it)
		}
		if len(batch) == 0 {
			select {
			case m, ok := <-inter:
				add(m, ok, &inter)
			case m, ok := <-bulk:
				add(m, ok, &bulk)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(batch) == 0 {
			continue
		}
		// How far a batch may grow depends on who is waiting. With only
		// bulk work about, it grows to a window of several model calls, so
		// that the planner can group similar lengths and padding stays
		// small; with an interactive job in it, to one model call; and a
		// bulk batch formed while interactive jobs are about, to a quarter
		// of a call, so that an interactive job waits behind at most a
		// small one.
		room := func() bool {
			n, budget := windowCalls*cfg.BatchSize, windowCalls*cfg.BatchTokens
			if hasInteractive(batch) {
				n, budget = cfg.BatchSize, cfg.BatchTokens
			} else if time.Since(lastInter) < time.Second {
				n, budget = max(1, cfg.BatchSize/4), cfg.BatchTokens
			}
			return len(batch) < n && tokens < budget
		}
		timer.Reset(cfg.BatchWait)
	fill:
		for room() && (inter != nil || bulk != nil) {
			select { // interactive first, whenever one is waiting
			case m, ok := <-inter:
				add(m, ok, &inter)
				continue
			default:
			}
			select {
			case m, ok := <-inter:
				add(m, ok, &inter)
			case m, ok := <-bulk:
				add(m, ok, &bulk)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if quarter := max(1, cfg.BatchSize/4); time.Since(lastInter) < time.Second && !hasInteractive(batch) && len(batch) > quarter {
			carry = append(batch[quarter:len(batch):len(batch)], carry...)
			batch = batch[:quarter:quarter]
			tokens = tokensOf(batch)
		}
		if !deferred {
			if err := pl.pauseBulk(ctx, &batch, &carry, &inter, &bulk, &lastInter, room, add); err != nil {
				return err
			}
		}
	send:
		for {
			// Until the runner takes the batch, it keeps growing while it
			// has room: an idle model gets a job at once, a busy one a
			// batch that filled while it worked.
			var more <-chan *queue.Msg
			if room() && time.Since(lastInter) >= time.Second {
				more = bulk // only while no interactive job is about
			}
			select {
			case out <- batch:
				break send
			case m, ok := <-more:
				add(m, ok, &bulk)
			case m, ok := <-inter:
				if !ok {
					inter = nil
					continue
				}
				it := pl.prepare(ctx, m)
				lastInter = time.Now()
				if !hasInteractive(batch) {
					// A bulk batch waiting for the model makes way: the
					// interactive job goes alone, the bulk batch next.
					carry = append(carry, batch...)
					batch = []*item{it}
					tokens = tokensOf(batch)
					continue
				}
				batch = append([]*item{it}, batch...)
				if len(batch) > cfg.BatchSize {
					i := len(batch) - 1
					for i > 0 && batch[i].msg.Job.Lane == job.LaneInteractive {
						i--
					}
					carry = append(carry, batch[i])
					batch = append(batch[:i], batch[i+1:]...)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// prepare decodes and tokenizes one delivery; a job that cannot succeed gets
// its outcome at once and never reaches the model.
func (pl *pipeline) prepare(ctx context.Context, m *queue.Msg) *item {
	now := time.Now()
	it := &item{msg: m, received: now}
	switch {
	case m.DecodeErr != nil:
		it.fail(dead, job.CodeInvalidInput, m.DecodeErr)
	case !m.Job.Deadline.IsZero() && now.After(m.Job.Deadline):
		it.fail(finish, job.CodeDeadline, errors.New("deadline passed before the job ran"))
		it.status = job.StatusFailed
	default:
		p, err := prepareInput(pl.model, &m.Job)
		if err != nil {
			if code, ok := job.IsPermanent(err); ok {
				it.fail(dead, code, err)
			} else {
				it.fail(retry, job.CodeInternal, err)
				it.delay = pl.w.retryDelay(m.Attempt)
			}
			break
		}
		it.prep = p
		it.timings.Tokenize = ms(time.Since(now))
	}
	if !m.Enqueued.IsZero() {
		it.timings.Queue = ms(now.Sub(m.Enqueued))
	}
	pl.w.m.received(ctx, &m.Job, m.Attempt)
	pl.startJobSpan(ctx, it)
	return it
}

func (it *item) fail(o outcome, code string, err error) {
	it.outcome = o
	it.err = errorOf(code, err)
	if o == dead {
		it.status = job.StatusDead
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pauseBulk holds a bulk-only batch for Config.BulkPause while interactive
// jobs have arrived within the last second: ingest, NATS and Redis share
// the CPU with the worker, and a backfill running flat out would delay
// synchronous calls severalfold. An interactive job that arrives meanwhile
// joins the batch at the front and ends the pause.
func (pl *pipeline) pauseBulk(ctx context.Context, batch, carry *[]*item, inter, bulk *<-chan *queue.Msg, lastInter *time.Time, room func() bool, add func(*queue.Msg, bool, *<-chan *queue.Msg)) error {
	pause := pl.w.cfg.BulkPause
	if pause <= 0 || time.Since(*lastInter) >= time.Second {
		return nil
	}
	for _, it := range *batch {
		if it.msg.Job.Lane == job.LaneInteractive {
			return nil
		}
	}
	t := time.NewTimer(pause)
	defer t.Stop()
	for {
		// The paused batch goes on filling with bulk jobs, so that the
		// pause costs the backfill latency but not batch size; a full
		// batch still waits the pause out, which is the gap interactive
		// jobs use.
		var more <-chan *queue.Msg
		if room() {
			more = *bulk
		}
		select {
		case <-t.C:
			return nil
		case m, ok := <-more:
			add(m, ok, bulk)
		case m, ok := <-*inter:
			if !ok {
				*inter = nil
				continue
			}
			// The interactive job goes to the model alone; the paused
			// bulk batch waits for the next round.
			*lastInter = time.Now()
			*carry = append(*carry, *batch...)
			*batch = []*item{pl.prepare(ctx, m)}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// windowCalls is how many model calls' worth of bulk jobs a batch may
// gather while the model is busy, for the planner to sort by length.
const windowCalls = batch.DefaultWindowBatches

func tokensOf(batch []*item) int {
	n := 0
	for _, it := range batch {
		if it.prep != nil {
			n += it.prep.Tokens() * it.prep.Rows()
		}
	}
	return n
}

func hasInteractive(batch []*item) bool {
	for _, it := range batch {
		if it.msg.Job.Lane == job.LaneInteractive {
			return true
		}
	}
	return false
}
