package config

import (
	"flag"
	"fmt"
)

// Trace configures tracing.
type Trace struct {
	// SampleRatio is the share of new traces recorded; a caller's sampled
	// traceparent is always followed. Spans get real ids and propagate
	// through NATS either way. Defaults to 0.01.
	SampleRatio float64
}

// RegisterFlags registers the tracing flags.
func (c *Trace) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.SampleRatio, "trace-sample-ratio", 0.01, "share of new traces recorded (0..1); a sampled traceparent is always followed")
}

// Validate checks the tracing settings.
func (c *Trace) Validate() error {
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("trace-sample-ratio: %g is outside 0..1", c.SampleRatio)
	}
	return nil
}
