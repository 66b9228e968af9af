package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

// Event is the body of every delivery, as the Standard Webhooks
// specification shapes it.
type Event struct {
	// Type is "job.<final status>": job.succeeded, job.failed, job.dead.
	Type string `json:"type"`
	// Timestamp is when the event happened (the job's final state).
	Timestamp time.Time `json:"timestamp"`
	// Data is the job's record, as GET /v1/jobs/{id} shows it.
	Data json.RawMessage `json:"data"`
}

// EventID is the webhook-id of the event reporting that job id reached
// status. Every retry and replay of it keeps the id, so receivers
// de-duplicate by it; a dead job that is replayed and then succeeds is a
// new event.
func EventID(jobID string, status job.Status) string {
	return "msg_" + jobID + "_" + string(status)
}

// Sink is what a Publisher needs of the queue.
type Sink interface {
	PublishWebhooks(ctx context.Context, ds []job.Delivery) error
	// LastResultSeq is the RESULTS sequence of a backfill's latest result:
	// the export cursor a backfill event carries.
	LastResultSeq(ctx context.Context, backfill string) (uint64, error)
}

var _ Sink = (*queue.Client)(nil)

// Publisher puts the events of finished jobs on the WEBHOOKS stream.
type Publisher struct {
	q        Sink
	log      *slog.Logger
	dropped  metric.Int64Counter
	backfill metric.Int64Counter
}

// NewPublisher returns a publisher onto q. meter may be nil.
func NewPublisher(q Sink, log *slog.Logger, meter metric.Meter) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	dropped, _ := meter.Int64Counter("jetinfer.webhook.events.dropped",
		metric.WithDescription("webhook events not queued because their endpoint's backlog (or WEBHOOKS) was full, by tenant"))
	backfill, _ := meter.Int64Counter("jetinfer.webhook.backfill_events",
		metric.WithDescription("backfill webhook events queued (backfill.completed, backfill.progress; a copy JetStream drops as a duplicate counts too), by tenant and type"))
	return &Publisher{q: q, log: log, dropped: dropped, backfill: backfill}
}

// Publish queues one event for each record whose job names a webhook
// endpoint (recs[i] is jobs[i]'s final record) and returns once JetStream
// stored them. An event refused because its endpoint's backlog is full is
// dropped, logged and counted rather than returned: a dead receiver must
// not hold up inference, and the result stays readable by polling. Any
// other error is returned, and the caller retries; the copy a retry
// publishes is de-duplicated by its webhook-id.
func (p *Publisher) Publish(ctx context.Context, jobs []*job.Job, recs []*job.Record) error {
	var ds []job.Delivery
	var idx []int
	for i, j := range jobs {
		if j.Webhook == "" {
			continue
		}
		rec := recs[i]
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		ts := rec.Finished
		if ts.IsZero() {
			ts = time.Now()
		}
		body, err := json.Marshal(Event{Type: "job." + string(rec.Status), Timestamp: ts.UTC(), Data: data})
		if err != nil {
			return err
		}
		id := EventID(j.ID, rec.Status)
		ds = append(ds, job.Delivery{Subject: job.WebhookSubject(j.Tenant, j.Webhook), MsgID: id, Data: body,
			Header: map[string][]string{queue.HeaderWebhookID: {id}, queue.HeaderJobID: {j.ID}, job.HeaderTenant: {j.Tenant},
				queue.HeaderWebhookTask: {j.Task}}})
		idx = append(idx, i)
	}
	return p.queue(ctx, ds, func(k int) (string, string, slog.Attr) {
		j := jobs[idx[k]]
		return j.Tenant, j.Webhook, slog.String("job_id", j.ID)
	})
}

// queue publishes ds. An event refused because its endpoint's backlog is
// full is dropped, counted and logged (of names ds[k]'s tenant, endpoint,
// and what it reports on); any other error is returned.
func (p *Publisher) queue(ctx context.Context, ds []job.Delivery, of func(k int) (tenant, endpoint string, about slog.Attr)) error {
	if len(ds) == 0 {
		return nil
	}
	err := p.q.PublishWebhooks(ctx, ds)
	var de *job.DeliverError
	if errors.As(err, &de) && errors.Is(err, job.ErrFull) {
		for _, k := range de.Failed {
			tenant, endpoint, about := of(k)
			p.dropped.Add(ctx, 1, metric.WithAttributes(attribute.String("tenant", tenant)))
			p.log.WarnContext(ctx, "webhook event dropped: endpoint backlog full", slog.String("tenant", tenant),
				slog.String("endpoint", endpoint), about)
		}
		return nil
	}
	return err
}
