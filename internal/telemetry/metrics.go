package telemetry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// LatencyBuckets are histogram boundaries in seconds for per-job and
// per-request durations: from 100µs (a cached answer) to 60s (a long wait).
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// SizeBuckets are histogram boundaries for counts per batch (documents or
// rows in one model call).
var SizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// TokenBuckets are histogram boundaries for tokens per model call.
var TokenBuckets = []float64{16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768}

// RatioBuckets are histogram boundaries for ratios between 0 and 1.
var RatioBuckets = []float64{0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}

// Metrics is a process's OpenTelemetry meter provider exporting to its own
// Prometheus registry. Instrument names use dots ("jetinfer.worker.batches");
// Prometheus sees them with underscores and the usual suffixes
// (jetinfer_worker_batches_total, …_seconds for unit "s").
type Metrics struct {
	reg      *prometheus.Registry
	provider *sdkmetric.MeterProvider
}

// NewMetrics returns a meter provider whose instruments are served by
// Handler, together with the Go runtime and process collectors. opts add to
// the provider (another reader, such as an OTLP exporter's; a resource).
func NewMetrics(opts ...sdkmetric.Option) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
	)
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	opts = append([]sdkmetric.Option{sdkmetric.WithReader(exp)}, opts...)
	return &Metrics{reg: reg, provider: sdkmetric.NewMeterProvider(opts...)}, nil
}

// Meter returns the meter for an instrumentation scope (a package path).
func (m *Metrics) Meter(scope string) metric.Meter { return m.provider.Meter(scope) }

// Provider is the meter provider.
func (m *Metrics) Provider() metric.MeterProvider { return m.provider }

// Registry is the Prometheus registry the metrics are exported to.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: false})
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }
