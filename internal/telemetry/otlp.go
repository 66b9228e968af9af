package telemetry

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Signal is a kind of telemetry OTLP carries, as OTEL_* variables name it.
type Signal string

// The signals jetinfer exports.
const (
	SignalTraces  Signal = "TRACES"
	SignalMetrics Signal = "METRICS"
)

// ExportWanted reports whether the standard OpenTelemetry environment
// (read through getenv) asks for signal to be exported: OTEL_<SIGNAL>_EXPORTER
// names an exporter other than "none", or, with it unset, an OTLP endpoint
// is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT). OTEL_SDK_DISABLED=true turns all
// export off. The SDK's own default exporter is OTLP to localhost even when
// nothing is set; jetinfer exports nothing then, so that an unconfigured
// process makes no connections and spends nothing on export.
func ExportWanted(getenv func(string) string, signal Signal) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if v := strings.TrimSpace(getenv("OTEL_" + string(signal) + "_EXPORTER")); v != "" {
		return v != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+string(signal)+"_ENDPOINT") != ""
}

// SamplerFromEnv reports whether OTEL_TRACES_SAMPLER chooses the sampler,
// which then takes the place of the configured sample ratio.
func SamplerFromEnv(getenv func(string) string) bool {
	return strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")) != ""
}

// Export is what a process hands to OTLP (or another exporter the OTEL_*
// variables name): a span processor and a metric reader, each nil when its
// signal is not exported.
type Export struct {
	Spans   sdktrace.SpanProcessor
	Metrics sdkmetric.Reader
}

// NewExport builds the exporters the standard environment asks for
// (ExportWanted), through autoexport: OTEL_EXPORTER_OTLP_PROTOCOL picks
// grpc or http/protobuf, and the OTEL_EXPORTER_OTLP_* endpoint, header,
// timeout and compression variables apply as the OTLP exporters define
// them. Spans are batched (OTEL_BSP_*); metrics are pushed periodically
// (OTEL_METRIC_EXPORT_INTERVAL) besides being served for scraping. The
// tracer and meter providers own what it returns and shut it down.
func NewExport(ctx context.Context, getenv func(string) string) (Export, error) {
	var e Export
	if ExportWanted(getenv, SignalTraces) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return Export{}, fmt.Errorf("trace exporter (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*): %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			e.Spans = sdktrace.NewBatchSpanProcessor(exp)
		}
	}
	if ExportWanted(getenv, SignalMetrics) {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			if e.Spans != nil {
				_ = e.Spans.Shutdown(ctx)
			}
			return Export{}, fmt.Errorf("metric exporter (OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_*): %w", err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			e.Metrics = r
		}
	}
	return e, nil
}

// Resource describes the process in exported telemetry: service.name is
// service unless OTEL_SERVICE_NAME names it, and OTEL_RESOURCE_ATTRIBUTES
// adds attributes.
func Resource(ctx context.Context, service string) *resource.Resource {
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)), resource.WithFromEnv())
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES still leaves what parsed.
		if res == nil {
			res = resource.NewSchemaless(attribute.String("service.name", service))
		}
	}
	return res
}
