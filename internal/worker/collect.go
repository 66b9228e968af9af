package worker

import (
	"context"
	"time"

	"github.com/jetinfer/jetinfer/internal/batch"
	"github.com/jetinfer/jetinfer/internal/job"
)

// collector forms a pipeline's batches: it takes messages from the
// interactive lane first, asks the lane policy (batch.Lanes) how far each
// batch may grow, how much of it runs now, whether it pauses, and what an
// interactive arrival does to it, and hands batches to the runner. It makes
// no decision of its own; it only waits on channels and timers.
//
// A batch is offered to the runner as soon as it is full or its first
// document has waited Config.BatchWait, and goes on growing until the runner
// takes it: an idle model runs a lone job at once, a busy one gets a batch
// that filled while it worked.
type collector struct {
	pl    *pipeline
	lanes *batch.Lanes
	// inter and bulk are the lanes' channels, nil once closed.
	inter, bulk <-chan *Msg
	// batch is the batch being formed and tokens its padded tokens; carry
	// is what made way for interactive jobs and forms the next batch.
	batch, carry []*item
	tokens       int
	timer        *time.Timer
}

// collect runs the collector until both lanes are closed and nothing is
// carried, or ctx ends.
func (pl *pipeline) collect(ctx context.Context, inter, bulk <-chan *Msg, out chan<- []*item) error {
	defer close(out)
	c := &collector{pl: pl, lanes: pl.lanes, inter: inter, bulk: bulk, timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	for c.inter != nil || c.bulk != nil || len(c.carry) > 0 {
		c.batch, c.carry = c.carry, nil
		carried := len(c.batch) > 0
		c.lanes.BulkCap = c.pl.bulkCap()
		c.tokens = tokensOf(c.batch)
		if !carried {
			select {
			case m, ok := <-c.inter:
				c.take(ctx, m, ok, &c.inter)
			case m, ok := <-c.bulk:
				c.take(ctx, m, ok, &c.bulk)
			case <-ctx.Done():
				return ctx.Err()
			}
			if len(c.batch) == 0 {
				continue
			}
		}
		if err := c.fill(ctx); err != nil {
			return err
		}
		if n := c.lanes.Cut(c.shape(), time.Now()); n < len(c.batch) {
			c.carry = append(c.batch[n:len(c.batch):len(c.batch)], c.carry...)
			c.batch = c.batch[:n:n]
			c.tokens = tokensOf(c.batch)
		}
		if err := c.pause(ctx, carried); err != nil {
			return err
		}
		if err := c.send(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// shape is the batch as the lane policy sees it.
func (c *collector) shape() batch.Shape {
	return batch.Shape{Len: len(c.batch), Tokens: c.tokens, Interactive: hasInteractive(c.batch)}
}

// take prepares a message from lane into the batch, or marks the lane
// closed.
func (c *collector) take(ctx context.Context, m *Msg, ok bool, lane *<-chan *Msg) {
	if !ok {
		*lane = nil
		return
	}
	it := c.prepare(ctx, m)
	c.batch = append(c.batch, it)
	c.tokens += it.tokens()
}

// prepare prepares a message and tells the lane policy it arrived.
func (c *collector) prepare(ctx context.Context, m *Msg) *item {
	it := c.pl.prepare(ctx, m)
	c.lanes.Saw(classOf(it), it.received)
	return it
}

// fill grows the batch, interactive lane first, while it has room and until
// its first document has waited BatchWait.
func (c *collector) fill(ctx context.Context) error {
	c.timer.Reset(c.pl.w.cfg.BatchWait)
	defer func() {
		if !c.timer.Stop() {
			select {
			case <-c.timer.C:
			default:
			}
		}
	}()
	for c.lanes.Room(c.shape(), time.Now()) && (c.inter != nil || c.bulk != nil) {
		select { // interactive first, whenever one is waiting
		case m, ok := <-c.inter:
			c.take(ctx, m, ok, &c.inter)
			continue
		default:
		}
		select {
		case m, ok := <-c.inter:
			c.take(ctx, m, ok, &c.inter)
		case m, ok := <-c.bulk:
			c.take(ctx, m, ok, &c.bulk)
		case <-c.timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pause holds the batch for as long as the lane policy says (a bulk batch
// while interactive traffic is about), taking more bulk work meanwhile; an
// interactive arrival ends it.
func (c *collector) pause(ctx context.Context, carried bool) error {
	d := c.lanes.PauseFor(c.shape(), carried, time.Now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		var more <-chan *Msg
		if c.lanes.GrowWhilePaused(c.shape(), time.Now()) {
			more = c.bulk
		}
		select {
		case <-t.C:
			return nil
		case m, ok := <-more:
			c.take(ctx, m, ok, &c.bulk)
		case m, ok := <-c.inter:
			if !ok {
				c.inter = nil
				continue
			}
			c.interactive(c.prepare(ctx, m))
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// send offers the batch to the runner; until the runner takes it, the batch
// grows as the lane policy allows and interactive arrivals join or preempt
// it.
func (c *collector) send(ctx context.Context, out chan<- []*item) error {
	for {
		var more <-chan *Msg
		if c.lanes.GrowWhileWaiting(c.shape(), time.Now()) {
			more = c.bulk
		}
		select {
		case out <- c.batch:
			return nil
		case m, ok := <-more:
			c.take(ctx, m, ok, &c.bulk)
		case m, ok := <-c.inter:
			if !ok {
				c.inter = nil
				continue
			}
			c.interactive(c.prepare(ctx, m))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// interactive applies the lane policy to an interactive job that arrived
// while the batch waits: it preempts a bulk batch (carried, to run next) or
// joins the batch at the front, pushing its last bulk item to the carry when
// the batch overflows one call.
func (c *collector) interactive(it *item) {
	if c.lanes.OnInteractive(c.shape()) == batch.Preempt {
		c.carry = append(c.carry, c.batch...)
		c.batch, c.tokens = []*item{it}, it.tokens()
		return
	}
	c.batch = append([]*item{it}, c.batch...)
	c.tokens += it.tokens()
	if c.lanes.Overflow(c.shape()) {
		i := len(c.batch) - 1
		for i > 0 && c.batch[i].msg.Job.Lane == job.LaneInteractive {
			i--
		}
		c.carry = append(c.carry, c.batch[i])
		c.tokens -= c.batch[i].tokens()
		c.batch = append(c.batch[:i], c.batch[i+1:]...)
	}
}

// classOf is the planner's and lane policy's class of an item.
func classOf(it *item) batch.Class {
	if it.msg.Job.Lane == job.LaneInteractive {
		return batch.Interactive
	}
	return batch.Bulk
}
