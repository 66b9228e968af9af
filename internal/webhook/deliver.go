package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// Delivery defaults.
const (
	// TimeoutDefault bounds one attempt, connection included.
	TimeoutDefault = 10 * time.Second
	// PerEndpointDefault is how many requests one deliverer has in flight
	// to one endpoint at most.
	PerEndpointDefault = 4
	// ConcurrencyDefault is how many requests one deliverer has in flight
	// in all.
	ConcurrencyDefault = 64
	// MaxPendingDefault bounds the events handed to deliverers and not yet
	// settled, those waiting out a retry delay included: it must hold the
	// backlogs of the endpoints that are down (each capped by the WEBHOOKS
	// stream's per-endpoint limit) with room for the others' events.
	MaxPendingDefault = 100_000
)

// busyDelay is how long an event waits when its endpoint has
// PerEndpoint requests in flight already; it makes no attempt, so the
// retry schedule does not move.
const busyDelay = time.Second

// Source is what a Deliverer needs of the queue.
type Source interface {
	PullWebhooks(ctx context.Context, cfg queue.WebhookConsumerConfig, prefetch int) (*queue.WebhookPuller, error)
	DeadLetterWebhook(ctx context.Context, m *queue.WebhookMsg, code, reason string) error
}

// Endpoints is what a Deliverer needs of the registry.
type Endpoints interface {
	Get(ctx context.Context, tenant, id string) (Endpoint, error)
}

var (
	_ Source    = (*queue.Client)(nil)
	_ Endpoints = (*Registry)(nil)
)

// Config tunes a Deliverer.
type Config struct {
	// Targets refuses dialled addresses; it must match what ingest
	// registers.
	Targets Targets
	// Retry schedules retries and decides when to give up.
	Retry RetryPolicy
	// Timeout bounds one attempt. Defaults to TimeoutDefault.
	Timeout time.Duration
	// PerEndpoint bounds requests in flight to one endpoint. Defaults to
	// PerEndpointDefault.
	PerEndpoint int
	// Concurrency bounds requests in flight in all. Defaults to
	// ConcurrencyDefault.
	Concurrency int
	// MaxPending bounds unsettled events across deliverers. Defaults to
	// MaxPendingDefault.
	MaxPending int
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = TimeoutDefault
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = PerEndpointDefault
	}
	if c.Concurrency <= 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.MaxPending <= 0 {
		c.MaxPending = MaxPendingDefault
	}
	c.Retry = c.Retry.withDefaults()
	return c
}

// Deliverer POSTs webhook events to their endpoints.
type Deliverer struct {
	cfg    Config
	src    Source
	eps    Endpoints
	log    *slog.Logger
	client *http.Client
	m      deliverMetrics

	mu    sync.Mutex
	state map[string]*endpointState // by endpoint id
}

// endpointState is what one deliverer knows of one endpoint.
type endpointState struct {
	inFlight int
	// failures counts failed attempts in a row; while it is not 0 the
	// endpoint gets one request at a time (a probe), and none before
	// pausedUntil.
	failures    int
	pausedUntil time.Time
}

// NewDeliverer returns a deliverer of src's events to the endpoints eps
// holds. meter may be nil.
func NewDeliverer(cfg Config, src Source, eps Endpoints, log *slog.Logger, meter metric.Meter) *Deliverer {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: cfg.Targets.dialControl}
	tr := &http.Transport{
		// No proxy: a proxy would dial for us, past the address check.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.PerEndpoint,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Deliverer{cfg: cfg, src: src, eps: eps, log: log, m: newDeliverMetrics(meter),
		state: map[string]*endpointState{},
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			// A redirect is a failure: following it would call a URL
			// nobody registered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Run delivers events until ctx ends, then waits for the attempts in
// flight (each bounded by the timeout) and returns. A consumer that fails
// (deleted with its stream, a lost connection) is set up again after a
// pause rather than ending the worker around it.
func (d *Deliverer) Run(ctx context.Context) error {
	slots := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for pause := time.Second; ; pause = min(2*pause, time.Minute) {
		err := d.consume(ctx, slots, &wg)
		if ctx.Err() != nil {
			return nil
		}
		d.log.WarnContext(ctx, "webhook consumer failed; starting it again", slog.Any("error", err), slog.Duration("in", pause))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// consume pulls events and starts an attempt for each until ctx ends (nil)
// or the consumer fails.
func (d *Deliverer) consume(ctx context.Context, slots chan struct{}, wg *sync.WaitGroup) error {
	p, err := d.src.PullWebhooks(ctx, queue.WebhookConsumerConfig{
		AckWait:       d.cfg.Timeout + 30*time.Second,
		MaxAckPending: d.cfg.MaxPending,
	}, d.cfg.Concurrency)
	if err != nil {
		return err
	}
	defer p.Stop()
	stop := context.AfterFunc(ctx, p.Stop)
	defer stop()
	// Settling outlives a stop: an attempt that got its answer acks it.
	actx := context.WithoutCancel(ctx)
	for {
		m, err := p.Next()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, queue.ErrStopped) {
			return errors.New("webhook puller stopped")
		}
		if err != nil {
			return err
		}
		if wait, ok := d.acquire(m.Endpoint, time.Now()); !ok {
			// This endpoint has its share in flight, or pauses after
			// failures: the event comes back later without an attempt,
			// and other endpoints' events go on meanwhile.
			d.m.busy(actx, m)
			_ = m.NakWithDelay(wait + rand.N(busyDelay))
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			d.release(m.Endpoint, Gone, time.Now())
			_ = m.NakWithDelay(0)
			return nil
		}
		wg.Go(func() {
			v := d.handle(actx, m)
			d.release(m.Endpoint, v, time.Now())
			<-slots
		})
	}
}

// acquire takes a request slot of endpoint ep at now, or returns how long
// its event should wait.
func (d *Deliverer) acquire(ep string, now time.Time) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state[ep]
	if st == nil {
		st = &endpointState{}
		d.state[ep] = st
	}
	limit := d.cfg.PerEndpoint
	if st.failures > 0 {
		if now.Before(st.pausedUntil) {
			return st.pausedUntil.Sub(now), false
		}
		limit = 1
	}
	if st.inFlight >= limit {
		return busyDelay, false
	}
	st.inFlight++
	return 0, true
}

// release returns ep's slot after an attempt with verdict v.
func (d *Deliverer) release(ep string, v Verdict, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state[ep]
	st.inFlight--
	switch v {
	case Delivered:
		st.failures = 0
	case Failed:
		st.failures++
		st.pausedUntil = now.Add(d.cfg.Retry.EndpointPause(st.failures))
	}
	if st.inFlight == 0 && st.failures == 0 {
		delete(d.state, ep)
	}
}

// handle makes one attempt at m, settles it, and returns the verdict
// (Gone when no attempt could be made, which leaves the endpoint's state
// as it was).
func (d *Deliverer) handle(ctx context.Context, m *queue.WebhookMsg) Verdict {
	log := d.log.With(slog.String("webhook_id", m.ID), slog.String("tenant", m.Tenant), slog.String("endpoint", m.Endpoint))
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ep, err := d.eps.Get(lctx, m.Tenant, m.Endpoint)
	cancel()
	if errors.Is(err, ErrNotFound) {
		d.deadLetter(ctx, log, m, "endpoint_deleted", "the endpoint was deleted before the event was delivered")
		return Gone
	}
	if err != nil {
		// The registry is out of reach: no attempt was made.
		log.WarnContext(ctx, "webhook endpoint lookup", slog.Any("error", err))
		_ = m.NakWithDelay(d.cfg.Retry.Base)
		return Gone
	}
	start := time.Now()
	status, retryAfter, err := d.post(ctx, &ep, m, start)
	elapsed := time.Since(start)
	verdict, reason := Judge(status, err)
	d.m.attempt(ctx, m, verdict, elapsed)
	switch verdict {
	case Delivered:
		if err := m.Ack(); err != nil {
			log.WarnContext(ctx, "ack webhook", slog.Any("error", err))
		}
	case Gone:
		d.deadLetter(ctx, log, m, "endpoint_refused", reason)
	default:
		wait, giveUp := d.cfg.Retry.Next(m.Published, time.Now(), retryAfter, rand.Float64())
		if giveUp {
			d.deadLetter(ctx, log, m, "undeliverable",
				fmt.Sprintf("gave up after %d deliveries over %s; last: %s", m.Attempt, time.Since(m.Published).Round(time.Second), reason))
			return verdict
		}
		log.InfoContext(ctx, "webhook attempt failed; will retry", slog.Int("attempt", m.Attempt),
			slog.Duration("retry_in", wait), slog.String("reason", reason))
		if err := m.NakWithDelay(wait); err != nil {
			log.WarnContext(ctx, "nak webhook", slog.Any("error", err))
		}
	}
	return verdict
}

// post makes one signed request; retryAfter is the receiver's Retry-After.
func (d *Deliverer) post(ctx context.Context, ep *Endpoint, m *queue.WebhookMsg, now time.Time) (status int, retryAfter time.Duration, err error) {
	body := m.Body()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jetinfer-webhooks")
	if err := SetHeaders(req.Header, m.ID, now, body, ep.Secrets(now)...); err != nil {
		return 0, 0, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	// Read a little of the answer so the connection can be reused; a
	// receiver has nothing to tell us past its status.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

func (d *Deliverer) deadLetter(ctx context.Context, log *slog.Logger, m *queue.WebhookMsg, code, reason string) {
	log.WarnContext(ctx, "webhook dead-lettered", slog.String("code", code), slog.String("reason", reason))
	d.m.dead(ctx, m)
	if err := d.src.DeadLetterWebhook(ctx, m, code, reason); err != nil {
		log.WarnContext(ctx, "dead-letter webhook", slog.Any("error", err))
		_ = m.NakWithDelay(d.cfg.Retry.Base)
	}
}

// deliverMetrics are the deliverer's instruments. Exported names
// (Prometheus): jetinfer_webhook_attempts_total{tenant,endpoint,outcome}
// with outcome delivered, failed or gone;
// jetinfer_webhook_attempt_duration_seconds{tenant,endpoint};
// jetinfer_webhook_deferred_total{tenant,endpoint} (events put back
// because their endpoint had its share in flight);
// jetinfer_webhook_dead_letters_total{tenant,endpoint}. Endpoints are
// bounded by MaxEndpoints a tenant.
type deliverMetrics struct {
	attempts metric.Int64Counter
	latency  metric.Float64Histogram
	deferred metric.Int64Counter
	deadC    metric.Int64Counter
}

func newDeliverMetrics(meter metric.Meter) deliverMetrics {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	var m deliverMetrics
	m.attempts, _ = meter.Int64Counter("jetinfer.webhook.attempts",
		metric.WithDescription("webhook delivery attempts by tenant, endpoint and outcome (delivered, failed, gone)"))
	m.latency, _ = meter.Float64Histogram("jetinfer.webhook.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("time of one webhook delivery attempt, by tenant and endpoint"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	m.deferred, _ = meter.Int64Counter("jetinfer.webhook.deferred",
		metric.WithDescription("webhook events put back without an attempt because their endpoint had its share of requests in flight"))
	m.deadC, _ = meter.Int64Counter("jetinfer.webhook.dead_letters",
		metric.WithDescription("webhook events dead-lettered, by tenant and endpoint"))
	return m
}

var outcomes = [...]string{Delivered: "delivered", Failed: "failed", Gone: "gone"}

func epAttrs(m *queue.WebhookMsg, extra ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributes(append([]attribute.KeyValue{attribute.String("tenant", m.Tenant),
		attribute.String("endpoint", m.Endpoint)}, extra...)...)
}

func (dm deliverMetrics) attempt(ctx context.Context, m *queue.WebhookMsg, v Verdict, d time.Duration) {
	dm.attempts.Add(ctx, 1, epAttrs(m, attribute.String("outcome", outcomes[v])))
	dm.latency.Record(ctx, d.Seconds(), epAttrs(m))
}

func (dm deliverMetrics) busy(ctx context.Context, m *queue.WebhookMsg) {
	dm.deferred.Add(ctx, 1, epAttrs(m))
}
func (dm deliverMetrics) dead(ctx context.Context, m *queue.WebhookMsg) {
	dm.deadC.Add(ctx, 1, epAttrs(m))
}
