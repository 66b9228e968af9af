package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
)

// The types of backfill events.
const (
	// TypeBackfillCompleted reports, once, that a backfill ended: every
	// document of a sealed backfill has its one result (data.state
	// completed), or the backfill was canceled (data.state canceled).
	TypeBackfillCompleted = "backfill.completed"
	// TypeBackfillProgress reports every progress_every results.
	TypeBackfillProgress = "backfill.progress"
)

// MinProgressEvery is the smallest progress_every a backfill may ask for:
// one event per result would cost a webhook delivery per document.
const MinProgressEvery = 100

// BackfillData is the data of a backfill event.
type BackfillData struct {
	ID    string         `json:"id"`
	Task  string         `json:"task"`
	Name  string         `json:"name,omitempty"`
	State backfill.State `json:"state"`
	// Counts are the backfill's counters when the event was decided; Done
	// is the documents in a final state.
	Counts BackfillCounts `json:"counts"`
	// Results says where to export the results from.
	Results BackfillResults `json:"results"`
}

// BackfillCounts are a backfill's counters in an event.
type BackfillCounts struct {
	backfill.Counters
	Done int64 `json:"done"`
}

// BackfillResults locates a backfill's results.
type BackfillResults struct {
	// URL is the export, relative to the API's base URL.
	URL string `json:"url"`
	// Cursor is the RESULTS stream sequence of the backfill's latest
	// result when the event was queued: GET URL?after=<the previous
	// event's cursor>&follow=false reads the page of results since that
	// event (after=0 for the first), and ?after=<cursor> resumes past it.
	Cursor uint64 `json:"cursor"`
}

// BackfillEventID is the webhook-id (and JetStream message id) of a
// backfill event, derived from the backfill so that every copy of one
// event, however many publishers decided it, carries the same id: the
// completion's, or the progress event's at that many results.
func BackfillEventID(ev store.BackfillEvent) string {
	if ev.Kind == "progress" {
		return "msg_" + ev.Backfill + "_progress_" + strconv.FormatInt(ev.Results(), 10)
	}
	return "msg_" + ev.Backfill + "_completed"
}

// PublishBackfill queues backfill events (their endpoint is ev.Webhook).
// Like Publish, it drops an event its endpoint's full backlog refuses and
// returns any other error for the caller to retry; a retried copy is
// de-duplicated by its id.
func (p *Publisher) PublishBackfill(ctx context.Context, evs []store.BackfillEvent) error {
	ds := make([]job.Delivery, 0, len(evs))
	types := make([]string, 0, len(evs))
	for _, ev := range evs {
		cursor, err := p.q.LastResultSeq(ctx, ev.Backfill)
		if err != nil {
			return err
		}
		typ := TypeBackfillCompleted
		if ev.Kind == "progress" {
			typ = TypeBackfillProgress
		}
		c := backfill.Counters{Submitted: ev.Submitted, Succeeded: ev.Succeeded, Failed: ev.Failed, Dead: ev.Dead,
			Canceled: ev.Canceled, Reused: ev.Reused}
		data, err := json.Marshal(BackfillData{ID: ev.Backfill, Task: ev.Task, Name: ev.Name, State: backfill.State(ev.State),
			Counts:  BackfillCounts{Counters: c, Done: c.Done()},
			Results: BackfillResults{URL: "/v1/backfills/" + ev.Backfill + "/results", Cursor: cursor}})
		if err != nil {
			return err
		}
		body, err := json.Marshal(Event{Type: typ, Timestamp: ev.At.UTC(), Data: data})
		if err != nil {
			return err
		}
		types = append(types, typ)
		id := BackfillEventID(ev)
		// The backfill stands in for the job of a job event: dead letters
		// name it, and a task-limited token sees those of its tasks.
		ds = append(ds, job.Delivery{Subject: job.WebhookSubject(ev.Tenant, ev.Webhook), MsgID: id, Data: body,
			Header: map[string][]string{queue.HeaderWebhookID: {id}, queue.HeaderJobID: {ev.Backfill}, job.HeaderTenant: {ev.Tenant},
				queue.HeaderWebhookTask: {ev.Task}}})
	}
	err := p.queue(ctx, ds, func(k int) (string, string, slog.Attr) {
		return evs[k].Tenant, evs[k].Webhook, slog.String("backfill", evs[k].Backfill)
	})
	if err != nil {
		return err
	}
	for i, ev := range evs {
		p.backfill.Add(ctx, 1, metric.WithAttributes(attribute.String("tenant", ev.Tenant), attribute.String("type", types[i])))
	}
	return nil
}
