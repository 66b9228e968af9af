package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// Topology sizes the streams and consumers. The zero value is not usable:
// start from DefaultTopology.
type Topology struct {
	// JobsMaxBytes bounds the JOBS stream; a full stream refuses new jobs so
	// ingest pushes back. Defaults to 1 GiB.
	JobsMaxBytes int64
	// JobsMaxMsgs bounds the JOBS stream by count. Defaults to 1,000,000.
	JobsMaxMsgs int64
	// Duplicates is the de-duplication window for Nats-Msg-Id. Defaults to 20m.
	Duplicates time.Duration
	// ResultsMaxAge is how long backfill results are kept. Defaults to 7 days.
	ResultsMaxAge time.Duration
	// ResultsMaxBytes bounds the RESULTS stream; a full stream refuses new
	// results and workers hold their backfill documents until exports
	// purge space. Defaults to 4 GiB.
	ResultsMaxBytes int64
	// DLQMaxAge is how long dead letters are kept. Defaults to 30 days.
	DLQMaxAge time.Duration
	// WebhooksMaxAge is how long a webhook event waits for delivery at
	// most; keep it above the deliverers' retry budget. Defaults to 3 days.
	WebhooksMaxAge time.Duration
	// WebhooksMaxBytes bounds the WEBHOOKS stream. Defaults to 1 GiB.
	WebhooksMaxBytes int64
	// WebhooksMaxPerEndpoint bounds the events waiting for one endpoint; a
	// full endpoint refuses its new events (workers drop them, counted)
	// and no other endpoint's. Defaults to 10,000.
	WebhooksMaxPerEndpoint int64
	// Replicas is how many servers hold a copy of every stream and bucket:
	// 1 on one server, 3 on a 3-node cluster, where each stream keeps
	// every acknowledged message and answers while any one node is down.
	// Defaults to DefaultReplicas.
	Replicas int
	// Storage is file or memory. Defaults to file.
	Storage jetstream.StorageType
}

// DefaultReplicas is the replication factor of a single server.
const DefaultReplicas = 1

// DefaultTopology returns the defaults documented on Topology's fields.
func DefaultTopology() Topology {
	return Topology{
		JobsMaxBytes:           1 << 30,
		JobsMaxMsgs:            1_000_000,
		Duplicates:             20 * time.Minute,
		ResultsMaxAge:          7 * 24 * time.Hour,
		ResultsMaxBytes:        4 << 30,
		DLQMaxAge:              30 * 24 * time.Hour,
		WebhooksMaxAge:         3 * 24 * time.Hour,
		WebhooksMaxBytes:       1 << 30,
		WebhooksMaxPerEndpoint: 10_000,
		Replicas:               DefaultReplicas,
		Storage:                jetstream.FileStorage,
	}
}

// Streams returns the stream configurations of the topology.
func (t Topology) Streams() []jetstream.StreamConfig {
	streams := []jetstream.StreamConfig{
		{
			Name:        job.StreamJobs,
			Description: "jetinfer jobs: jobs.interactive.<task>, and jobs.<lane>.<task>.<tenant> on the shared lanes",
			Subjects:    []string{"jobs.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			Duplicates:  t.Duplicates,
			MaxBytes:    t.JobsMaxBytes,
			MaxMsgs:     t.JobsMaxMsgs,
			Discard:     jetstream.DiscardNew,
			MaxMsgSize:  4 << 20,
		},
		{
			Name:        job.StreamResults,
			Description: "results of backfill documents: results.<backfill id>",
			Subjects:    []string{"results.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			Duplicates:  t.Duplicates,
			MaxAge:      t.ResultsMaxAge,
			MaxBytes:    t.ResultsMaxBytes,
			// A full RESULTS refuses new results rather than dropping
			// results nobody has exported yet: workers hold the documents
			// until an export purges what it has written.
			Discard: jetstream.DiscardNew,
		},
		{
			Name:        job.StreamDLQ,
			Description: "dead letters: jobs that cannot succeed, dlq.<task>.<tenant>.<job id hash>",
			Subjects:    []string{"dlq.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			// A dead letter is de-duplicated by the job's JOBS sequence, so
			// a worker and the mover racing on one job store one copy.
			Duplicates: t.Duplicates,
			MaxAge:     t.DLQMaxAge,
			Discard:    jetstream.DiscardOld,
		},
		{
			Name:        StreamAdvisories,
			Description: "MAX_DELIVERIES advisories of the JOBS consumers, kept until the DLQ mover has moved the job",
			Subjects:    []string{MaxDeliveriesSubject},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			MaxAge:      t.DLQMaxAge,
			Discard:     jetstream.DiscardOld,
		},
	}
	return append(streams, t.webhookStream())
}

// ModelsBucket returns the configuration of the key-value bucket where
// workers announce their models, on the topology's replicas.
func (t Topology) ModelsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ModelsBucket,
		Description: "tasks served by jetinfer workers",
		History:     1,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
	}
}

// streamReplicas is the replication factor of stream name, or
// DefaultReplicas when it cannot be read.
func streamReplicas(ctx context.Context, js jetstream.JetStream, name string) int {
	s, err := js.Stream(ctx, name)
	if err != nil || s.CachedInfo().Config.Replicas < 1 {
		return DefaultReplicas
	}
	return s.CachedInfo().Config.Replicas
}

// ConsumerConfig tunes the durable pull consumers that workers share.
type ConsumerConfig struct {
	// AckWait must cover one batch; long batches also send InProgress.
	// Defaults to 30s.
	AckWait time.Duration
	// MaxDeliver is how often a job is tried before it is dead-lettered.
	// Defaults to 5.
	MaxDeliver int
	// MaxAckPending bounds the jobs handed out and not yet acknowledged across
	// all workers; keep it ≥ workers × batch size. Defaults to 1024. A
	// tenant's consumer of a shared lane has the same bound.
	MaxAckPending int
	// TenantIdle is how long a tenant's consumer of a shared lane lives
	// without a worker pulling from it (workers stop once its subject is
	// empty) before the server removes it. Defaults to
	// DefaultTenantIdle.
	TenantIdle time.Duration
}

// DefaultTenantIdle is the default ConsumerConfig.TenantIdle: long enough
// that a tenant submitting every few minutes keeps its consumer, short
// enough that a fleet serving thousands of tenants does not keep a
// consumer for each one that ever submitted.
const DefaultTenantIdle = 10 * time.Minute

// DefaultConsumerConfig returns the defaults documented on ConsumerConfig.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 1024, TenantIdle: DefaultTenantIdle}
}

// ConsumerName is the durable name of the consumer for lane and task.
func ConsumerName(l job.Lane, task string) string { return "jobs-" + string(l) + "-" + task }

// tenantSep separates the task from the tenant token in the name of a
// tenant's consumer; no task name or tenant token holds it.
const tenantSep = "@"

// TenantConsumerName is the durable name of the consumer of tenantToken's
// jobs of lane and task (job.TenantSubject): jobs-<lane>-<task>@<token>.
func TenantConsumerName(l job.Lane, task, tenantToken string) string {
	return ConsumerName(l, task) + tenantSep + tenantToken
}

// tenantConsumer is the consumer configuration of tenantToken's jobs of a
// shared lane and task: the lane consumer's, filtered to the tenant's
// subject, and removed by the server once no worker pulls from it for
// TenantIdle.
func (c ConsumerConfig) tenantConsumer(l job.Lane, task, tenantToken string) jetstream.ConsumerConfig {
	cfg := c.consumer(l, task)
	cfg.Durable = TenantConsumerName(l, task, tenantToken)
	cfg.FilterSubject = job.Subject(l, task) + "." + tenantToken
	cfg.Description = "jetinfer workers for " + cfg.FilterSubject
	cfg.InactiveThreshold = c.TenantIdle
	if cfg.InactiveThreshold <= 0 {
		cfg.InactiveThreshold = DefaultTenantIdle
	}
	cfg.Metadata = map[string]string{"jetinfer_lane": string(l), "jetinfer_task": task, "jetinfer_tenant": tenantToken}
	return cfg
}

// consumer returns the consumer configuration for lane and task. Redeliveries
// back off: the first waits AckWait, later ones longer, so a job that crashes
// its worker does not crash the next one at once.
func (c ConsumerConfig) consumer(l job.Lane, task string) jetstream.ConsumerConfig {
	backoff := make([]time.Duration, 0, c.MaxDeliver)
	d := c.AckWait
	for i := 0; i < c.MaxDeliver-1; i++ {
		backoff = append(backoff, d)
		d = min(2*d, 10*time.Minute)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       ConsumerName(l, task),
		Description:   "jetinfer workers for " + job.Subject(l, task),
		FilterSubject: job.Subject(l, task),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(backoff) > 0 {
		cfg.BackOff = backoff
	}
	return cfg
}

// EnsureStreams creates the streams and the models bucket of t, or updates
// them to t (raising or lowering their replicas too).
//
// A cluster that has just formed, or whose membership is changing, refuses
// to place replicated streams for a moment ("no suitable peers for
// placement, peer offline" until every server's report has reached the
// meta leader; "JetStream system temporarily unavailable" while it has no
// leader), and can leave a request unanswered across a leader change.
// EnsureStreams asks again after those answers, and after formingAttempt
// without one, until ctx ends, so that ingest started together with its
// NATS cluster starts instead of exiting (or waiting forever).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, cfg := range t.Streams() {
		err := whileForming(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	err := whileForming(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateKeyValue(ctx, t.ModelsBucket())
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", ModelsBucket, err)
	}
	return nil
}

// formingAttempt bounds the wait for JetStream's answer to one request of
// whileForming; formingRetry is the pause before the next.
const (
	formingAttempt = 5 * time.Second
	formingRetry   = 250 * time.Millisecond
)

// whileForming calls f, each time with a context that ends after
// formingAttempt, until it returns nil, an error that is not one of a
// forming cluster's (formingErr) or a timeout of that attempt, or ctx
// ends; then it returns f's last error, saying for how long it retried.
// f must be idempotent.
func whileForming(ctx context.Context, f func(context.Context) error) error {
	start := time.Now()
	for {
		actx, cancel := context.WithTimeout(ctx, formingAttempt)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil && !formingErr(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (retried for %s while the NATS cluster formed; check that every node is up and routed: nats server list)",
				err, time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-time.After(formingRetry):
		}
	}
}

// JetStream's error codes (nats-server's JSClusterNoPeersErrF and
// JSClusterNotAvailErr), which nats.go does not name.
const (
	errCodeClusterNoPeers  jetstream.ErrorCode = 10005 // no suitable peers for placement
	errCodeClusterNotAvail jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable
)

// formingErr reports whether err is JetStream's answer while a cluster
// forms or elects its meta leader, which passes by itself.
func formingErr(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNoPeers, errCodeClusterNotAvail:
			return true
		}
	}
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders)
}

// CheckStreams reports an error naming the first stream of the topology that
// does not exist; workers call it to fail fast at start.
func CheckStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{job.StreamJobs, job.StreamResults, job.StreamDLQ, StreamAdvisories} {
		if _, err := js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s not found: start ingest or run `jetinferctl setup` first", name)
			}
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}
