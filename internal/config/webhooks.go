package config

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/jetinfer/jetinfer/internal/webhook"
)

// WebhookTargets says which webhook endpoints may be registered (ingest)
// and called (workers); both must agree.
type WebhookTargets struct {
	// AllowPrivate allows endpoints on loopback, private, link-local and
	// other non-public addresses. Defaults to false: ingest and workers
	// sit inside a cluster, where such addresses reach internal services.
	AllowPrivate bool
	// AllowHTTP allows plain http endpoint URLs. Defaults to false.
	AllowHTTP bool
}

// RegisterFlags registers the webhook target flags.
func (c *WebhookTargets) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AllowPrivate, "webhook-allow-private", false,
		"allow webhook endpoints on loopback, private and link-local addresses (receivers inside this network; tests)")
	fs.BoolVar(&c.AllowHTTP, "webhook-allow-http", false, "allow plain http webhook endpoint URLs besides https")
}

// Targets returns the address filter the flags describe.
func (c WebhookTargets) Targets() webhook.Targets {
	return webhook.Targets{AllowPrivate: c.AllowPrivate, AllowHTTP: c.AllowHTTP}
}

// Webhooks configures a worker's webhook deliverer.
type Webhooks struct {
	WebhookTargets
	// Deliver runs a deliverer in this worker. Defaults to true.
	Deliver bool
	// Timeout bounds one delivery attempt. Defaults to webhook.TimeoutDefault.
	Timeout time.Duration
	// PerEndpoint bounds requests in flight to one endpoint. Defaults to
	// webhook.PerEndpointDefault.
	PerEndpoint int
	// Concurrency bounds requests in flight in all. Defaults to
	// webhook.ConcurrencyDefault.
	Concurrency int
	// MaxPending bounds unsettled events across deliverers. Defaults to
	// webhook.MaxPendingDefault.
	MaxPending int
	// RetryBase, RetryMax and MaxAge shape the retry schedule (see
	// webhook.RetryPolicy). Default to webhook.RetryBaseDefault,
	// webhook.RetryMaxDefault and webhook.RetryMaxAgeDefault.
	RetryBase, RetryMax, MaxAge time.Duration
}

// RegisterFlags registers the webhook delivery flags.
func (c *Webhooks) RegisterFlags(fs *flag.FlagSet) {
	c.WebhookTargets.RegisterFlags(fs)
	fs.BoolVar(&c.Deliver, "webhook-deliver", true, "deliver webhook events from this worker")
	fs.DurationVar(&c.Timeout, "webhook-timeout", webhook.TimeoutDefault, "time limit of one webhook delivery attempt")
	fs.IntVar(&c.PerEndpoint, "webhook-per-endpoint", webhook.PerEndpointDefault, "webhook requests in flight to one endpoint")
	fs.IntVar(&c.Concurrency, "webhook-concurrency", webhook.ConcurrencyDefault, "webhook requests in flight in all")
	fs.IntVar(&c.MaxPending, "webhook-max-pending", webhook.MaxPendingDefault,
		"webhook events handed out and not yet settled across workers, those waiting to retry included")
	fs.DurationVar(&c.RetryBase, "webhook-retry-base", webhook.RetryBaseDefault, "first wait after a failed webhook delivery")
	fs.DurationVar(&c.RetryMax, "webhook-retry-max", webhook.RetryMaxDefault, "longest wait between webhook delivery attempts")
	fs.DurationVar(&c.MaxAge, "webhook-max-age", webhook.RetryMaxAgeDefault, "how long a webhook event is retried before it is dead-lettered")
}

// Validate checks the webhook delivery flags.
func (c *Webhooks) Validate() error {
	errs := []error{positive("webhook-timeout", c.Timeout), positive("webhook-retry-base", c.RetryBase),
		positive("webhook-retry-max", c.RetryMax), positive("webhook-max-age", c.MaxAge)}
	if c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("webhook-retry-max: %s is below webhook-retry-base %s", c.RetryMax, c.RetryBase))
	}
	if c.PerEndpoint < 1 || c.Concurrency < c.PerEndpoint {
		errs = append(errs, fmt.Errorf("webhook-per-endpoint: %d must be at least 1 and at most webhook-concurrency %d", c.PerEndpoint, c.Concurrency))
	}
	if c.MaxPending < c.Concurrency {
		errs = append(errs, fmt.Errorf("webhook-max-pending: %d is below webhook-concurrency %d", c.MaxPending, c.Concurrency))
	}
	return errors.Join(errs...)
}

// Config returns the deliverer configuration the flags describe.
func (c *Webhooks) Config() webhook.Config {
	return webhook.Config{Targets: c.Targets(), Timeout: c.Timeout, PerEndpoint: c.PerEndpoint,
		Concurrency: c.Concurrency, MaxPending: c.MaxPending,
		Retry: webhook.RetryPolicy{Base: c.RetryBase, Max: c.RetryMax, MaxAge: c.MaxAge}}
}
