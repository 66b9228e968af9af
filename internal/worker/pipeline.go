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
)

// item is one delivery moving through a pipeline.
type item struct {
	msg      *Msg
	sink     sink // where its outcome goes, chosen once (sinkOf)
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
	// reuseKey and reused: its reuse-cache key (backfill documents only;
	// see sink), and whether its result came from that cache instead of
	// the model.
	reuseKey string
	reused   bool
	// parked: RESULTS refused the result, or (heldShare) its tenant holds
	// its share of RESULTS; the item waits in pl.parked.
	parked, heldShare bool
	// resultBytes is the size of the result published to RESULTS for it,
	// which the store adds to its tenant's RESULTS account.
	resultBytes int64
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
	inter Puller
	bulk  Puller
	// backfill is the backfill lane's first puller; parking stops it while
	// RESULTS is full and starts another when it has room (park.go).
	backfill Puller
	// names are the span names, built once (namesOnce).
	namesOnce sync.Once
	names     spanNames

	planner *batch.Planner
	lanes   *batch.Lanes // the collector's
	// cost is the model's learnt cost per call: the runner feeds it, the
	// collector reads the latency budget in tokens from it.
	costMu  sync.Mutex
	cost    batch.Cost
	lengths []int
	classes []batch.Class
	rows    []int // windows per item, so that the planner bounds rows, not documents

	hand   *inHand // messages held, kept alive with InProgress
	parked parking // backfill documents whose results RESULTS refused
	// soft ends when the worker is asked to stop: finish what is in hand.
	soft context.Context
}

func (pl *pipeline) run(ctx context.Context) error {
	pl.hand = newInHand()
	pl.w.hands.Store(pl.model.Task(), pl.hand) // for the membership heartbeat (member.go)
	bctx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go pl.hand.beat(bctx, pl.w.cfg.AckWait/3, func() { pl.w.m.heartbeats.Add(1) })
	pl.parked.wake, pl.parked.lane = make(chan struct{}, 1), pl.backfill
	if pl.soft == nil {
		pl.soft = ctx
	}
	g, ctx := errgroup.WithContext(ctx)
	inter := make(chan *Msg)
	// The bulk and backfill lanes feed one channel, so that the collector
	// takes from both in turn while both have work.
	bulk := make(chan *Msg)
	// Unbuffered, so that a batch keeps growing until the runner takes it.
	batches := make(chan []*item)
	done := make(chan []*item, 1)
	g.Go(func() error { pl.pump(ctx, job.LaneInteractive, pl.inter, inter); return nil })
	g.Go(func() error {
		var feeders sync.WaitGroup
		feeders.Go(func() { pl.pumpFrom(ctx, job.LaneBulk, pl.bulk, bulk) })
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
func (pl *pipeline) pump(ctx context.Context, lane job.Lane, p Puller, out chan<- *Msg) {
	defer close(out)
	pl.pumpFrom(ctx, lane, p, out)
}

// pumpFrom moves messages from a puller to out until the puller stops.
func (pl *pipeline) pumpFrom(ctx context.Context, lane job.Lane, p Puller, out chan<- *Msg) {
	for {
		m, err := p.Next()
		if errors.Is(err, job.ErrStopped) {
			return
		}
		if err != nil {
			pl.w.log.WarnContext(ctx, "pull failed", slog.String("task", pl.model.Task()), slog.String("lane", string(lane)), slog.Any("error", err))
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

// prepare decodes and tokenizes one delivery; a job that cannot succeed gets
// its outcome at once and never reaches the model.
func (pl *pipeline) prepare(ctx context.Context, m *Msg) *item {
	now := time.Now()
	it := &item{msg: m, sink: sinkOf(m, pl.w.cfg.ReuseAcrossTenants), received: now}
	switch {
	case m.DecodeErr != nil:
		it.deadWith(job.CodeInvalidInput, m.DecodeErr)
	case !m.Job.Deadline.IsZero() && now.After(m.Job.Deadline):
		it.finishWith(job.StatusFailed, nil, errorOf(job.CodeDeadline, errors.New("deadline passed before the job ran")))
	default:
		p, err := prepareInput(pl.model, &m.Job)
		if err != nil {
			pl.judged(it, err, job.CodeInternal)
			break
		}
		it.prep = p
		it.reuseKey = it.sink.reuseKey(pl.model, &m.Job)
		it.timings.Tokenize = ms(time.Since(now))
	}
	if !m.Enqueued.IsZero() {
		it.timings.Queue = ms(now.Sub(m.Enqueued))
	}
	pl.w.m.received(ctx, &m.Job, m.Attempt)
	pl.startJobSpan(ctx, it)
	return it
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// tokens is the padded tokens the item adds to a batch: its rows, each
// counted at its longest row's length. It is the one place a batch's size
// in tokens is reckoned, by the collector and the lane policy alike.
func (it *item) tokens() int {
	if it.prep == nil {
		return 0
	}
	return it.prep.Tokens() * it.prep.Rows()
}

func tokensOf(batch []*item) int {
	n := 0
	for _, it := range batch {
		n += it.tokens()
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
