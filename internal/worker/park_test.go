package worker

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/job"
)

// taskModel is a Model that only has a task: parking asks for no more.
type taskModel struct{ Model }

func (taskModel) Task() string { return "sentiment" }

// onLog is a slog.Handler that calls fn with each record's message, in
// the goroutine that logs it.
type onLog struct{ fn func(msg string) }

func (h onLog) Enabled(context.Context, slog.Level) bool { return true }
func (h onLog) Handle(_ context.Context, r slog.Record) error {
	h.fn(r.Message)
	return nil
}
func (h onLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onLog) WithGroup(string) slog.Handler      { return h }

// heldPipeline is a pipeline whose backfill lane is a fairPuller, with
// nothing but what parking needs, whose log calls fn.
func heldPipeline(fn func(msg string)) (*pipeline, *fairPuller) {
	f := &fairPuller{members: map[string]*member{}, rescan: make(chan struct{}, 1)}
	w := New(Config{}, nil, nil, nil, slog.New(onLog{fn}), nil)
	pl := &pipeline{w: w, model: taskModel{}}
	pl.parked.wake, pl.parked.lane = make(chan struct{}, 1), f
	return pl, f
}

// heldDoc is a backfill document of tenant held for its share.
func heldDoc(tenant string) *item {
	return &item{msg: &Msg{Job: job.Job{ID: tenant + ":d1", Tenant: tenant, Task: "sentiment", Lane: job.LaneBackfill}},
		parked: true, heldShare: true}
}

// taken is what the unparker does once RESULTS took every parked result:
// nothing is parked any more, and the held tenants are released.
func taken(ctx context.Context, pl *pipeline) {
	pl.parked.mu.Lock()
	its := pl.parked.items
	pl.parked.items = nil
	pl.parked.mu.Unlock()
	countHeld(pl.w.m, its, -1)
	pl.releaseDone(ctx)
}

// heldAgree fails t unless the fair puller stops tenant exactly when the
// parking holds it.
func heldAgree(t *testing.T, pl *pipeline, f *fairPuller, tenant string, want bool) {
	t.Helper()
	pl.parked.mu.Lock()
	parked := pl.parked.held[tenant]
	pl.parked.mu.Unlock()
	f.mu.Lock()
	stopped := f.held[tenant]
	f.mu.Unlock()
	if parked != want || stopped != want {
		t.Fatalf("%s held by the parking: %v, its consumer stopped by the fair puller: %v; want both %v", tenant, parked, stopped, want)
	}
}

// TestParkAndReleaseAgree: the fair puller's stopped tenants follow the
// parking's held ones whatever the order in which a park and the
// unparker's release run. The log, which both write as they go, runs the
// other one at the worst moment.
func TestParkAndReleaseAgree(t *testing.T) {
	ctx := context.Background()

	t.Run("ReleasedWhileParking", func(t *testing.T) {
		// The unparker releases hog just as its document is parked: hog
		// ends released, not stopped forever in the fair puller.
		var pl *pipeline
		pl, f := heldPipeline(func(msg string) {
			if strings.Contains(msg, "holds its share") {
				taken(ctx, pl)
			}
		})
		pl.park(ctx, []*item{heldDoc("hog")})
		heldAgree(t, pl, f, "hog", false)
	})

	t.Run("ParkedWhileReleasing", func(t *testing.T) {
		// hog's document is parked again just as the unparker releases
		// it: hog ends held, its consumer stopped.
		var pl *pipeline
		again := true
		pl, f := heldPipeline(func(msg string) {
			if strings.Contains(msg, "under its share") && again {
				again = false
				pl.park(ctx, []*item{heldDoc("hog")})
			}
		})
		pl.park(ctx, []*item{heldDoc("hog")})
		heldAgree(t, pl, f, "hog", true)
		taken(ctx, pl)
		heldAgree(t, pl, f, "hog", true)
	})
}
