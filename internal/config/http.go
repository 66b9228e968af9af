package config

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults of the HTTP server timeouts (HTTPTimeouts).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a response from the end of the request
	// headers: it covers reading the body, the longest wait (max-wait,
	// infer-wait) and writing the answer.
	DefaultWriteTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds a keep-alive connection between requests.
	DefaultIdleTimeout = 2 * time.Minute
	// WriteTimeoutMargin is what write-timeout must leave beyond
	// read-timeout plus the longest wait, for the answer itself.
	WriteTimeoutMargin = 5 * time.Second
)

// HTTPTimeouts bound how long a client may hold an HTTP connection, so
// that slow or stalled clients cannot pin goroutines and sockets. Streaming
// responses (backfill result exports, document uploads) extend their own
// deadlines while they make progress, so these bound a stall, not a
// stream's length.
type HTTPTimeouts struct {
	// ReadHeaderTimeout bounds reading the request headers. Defaults to
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, and one stall of a
	// streaming upload. Defaults to DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response from the end of the headers, and one
	// stall of a streaming response. Defaults to DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout bounds an idle keep-alive connection. Defaults to
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// RegisterFlags registers the HTTP timeout flags.
func (c *HTTPTimeouts) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ReadHeaderTimeout, "http-read-header-timeout", DefaultReadHeaderTimeout, "longest time to read a request's headers")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", DefaultReadTimeout, "longest time to read a request, and longest stall of a streaming upload")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", DefaultWriteTimeout, "longest time from a request's headers to the end of its answer (must exceed http-read-timeout plus max-wait and infer-wait), and longest stall of a streaming answer")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", DefaultIdleTimeout, "longest time a keep-alive connection stays idle")
}

// Validate checks the timeouts against the longest wait a request may ask
// for (max-wait, infer-wait).
func (c *HTTPTimeouts) Validate(longestWait time.Duration) error {
	errs := []error{positive("http-read-header-timeout", c.ReadHeaderTimeout), positive("http-read-timeout", c.ReadTimeout),
		positive("http-write-timeout", c.WriteTimeout), positive("http-idle-timeout", c.IdleTimeout)}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		errs = append(errs, fmt.Errorf("http-read-header-timeout: %s exceeds http-read-timeout %s", c.ReadHeaderTimeout, c.ReadTimeout))
	}
	if need := c.ReadTimeout + longestWait + WriteTimeoutMargin; c.WriteTimeout < need {
		errs = append(errs, fmt.Errorf("http-write-timeout: %s would cut the longest wait; set at least %s (http-read-timeout + the longer of max-wait and infer-wait + %s)",
			c.WriteTimeout, need, WriteTimeoutMargin))
	}
	return errors.Join(errs...)
}
