package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// TestHTTPTimeoutsValidate: the defaults pass with the default waits, and
// a write timeout that would cut the longest wait is refused naming the
// flag and the least value that works.
func TestHTTPTimeoutsValidate(t *testing.T) {
	var c Ingest
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := c.HTTP.Validate(max(c.MaxWait, c.InferWait)); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*HTTPTimeouts)
		wait time.Duration
		want string
	}{
		{"write cuts the wait", func(h *HTTPTimeouts) { h.WriteTimeout = time.Minute }, time.Minute, "http-write-timeout: 1m0s would cut the longest wait; set at least 1m35s"},
		{"zero read", func(h *HTTPTimeouts) { h.ReadTimeout = 0 }, time.Second, "http-read-timeout: must be positive"},
		{"header beyond read", func(h *HTTPTimeouts) { h.ReadHeaderTimeout = time.Hour }, time.Second, "http-read-header-timeout: 1h0m0s exceeds"},
		{"zero idle", func(h *HTTPTimeouts) { h.IdleTimeout = 0 }, time.Second, "http-idle-timeout: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := c.HTTP
			tc.mod(&h)
			err := h.Validate(tc.wait)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
