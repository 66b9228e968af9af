package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
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

// Values of --audit-log besides a file path.
const (
	// AuditLogStderr writes the audit log to standard error.
	AuditLogStderr = "stderr"
	// AuditLogOff writes no audit log.
	AuditLogOff = "off"
	// DefaultAuditLog is where the audit log goes unless told.
	DefaultAuditLog = AuditLogStderr
)

// HTTPEdge is what ingest's public listener shows the world: the audit log
// of its API requests, which peers may name the client in
// X-Forwarded-For, and TLS.
type HTTPEdge struct {
	// AuditLog is where one JSON line per API request goes: AuditLogStderr,
	// a file path (appended to), or AuditLogOff. Defaults to
	// DefaultAuditLog.
	AuditLog string
	// TrustedProxies are comma-separated CIDRs of the proxies whose
	// X-Forwarded-For is believed; from any other peer it is ignored.
	// Defaults to none.
	TrustedProxies string
	// TLSCertFile and TLSKeyFile, both set, make the API listener serve
	// TLS (1.2 at least, HTTP/2 on) with this certificate and key, read
	// again when the files change. Both empty serve plain HTTP.
	TLSCertFile, TLSKeyFile string
}

// RegisterFlags registers the edge flags.
func (c *HTTPEdge) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AuditLog, "audit-log", DefaultAuditLog, "where one JSON line per API request goes: stderr, a file path (appended to), or off")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client in the audit log; from other peers it is ignored")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (chain) to serve TLS with; reloaded when the file changes (with tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of tls-cert-file")
}

// Proxies parses TrustedProxies.
func (c *HTTPEdge) Proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range SplitList(c.TrustedProxies) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			if a, aerr := netip.ParseAddr(v); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("trusted-proxies: %q is not a CIDR (like 10.0.0.0/8) or an address", v)
			}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// TLS reports whether the listener serves TLS.
func (c *HTTPEdge) TLS() bool { return c.TLSCertFile != "" }

// Validate checks the edge flags.
func (c *HTTPEdge) Validate() error {
	var errs []error
	if c.AuditLog == "" {
		errs = append(errs, fmt.Errorf("audit-log: must be %s, %s or a file path", AuditLogStderr, AuditLogOff))
	}
	if _, err := c.Proxies(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls-cert-file and tls-key-file: set both to serve TLS, or neither"))
	}
	for name, f := range map[string]string{"tls-cert-file": c.TLSCertFile, "tls-key-file": c.TLSKeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
