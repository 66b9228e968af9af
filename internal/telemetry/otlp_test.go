package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestExportWanted(t *testing.T) {
	for _, c := range []struct {
		name            string
		env             func(string) string
		traces, metrics bool
	}{
		{"nothing set: no export (the SDK would dial localhost)", env(), false, false},
		{"an OTLP endpoint: both", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), true, true},
		{"a traces endpoint only", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"), true, false},
		{"endpoint but metrics exporter none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "x", "OTEL_METRICS_EXPORTER", "none"), true, false},
		{"an exporter named without endpoint", env("OTEL_TRACES_EXPORTER", "console"), true, false},
		{"SDK disabled wins", env("OTEL_SDK_DISABLED", "true", "OTEL_EXPORTER_OTLP_ENDPOINT", "x", "OTEL_TRACES_EXPORTER", "otlp"), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ExportWanted(c.env, SignalTraces); got != c.traces {
				t.Errorf("traces %v, want %v", got, c.traces)
			}
			if got := ExportWanted(c.env, SignalMetrics); got != c.metrics {
				t.Errorf("metrics %v, want %v", got, c.metrics)
			}
		})
	}
}

// Unset, export costs nothing: no exporter, no processor, no reader.
func TestNewExportOffWhenUnset(t *testing.T) {
	e, err := NewExport(context.Background(), env())
	if err != nil || e.Spans != nil || e.Metrics != nil {
		t.Fatalf("NewExport with no OTEL_* variables: %+v, %v", e, err)
	}
}

func TestResourceFollowsOTELServiceName(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	if v, _ := Resource(context.Background(), "jetinfer-ingest").Set().Value("service.name"); v.AsString() != "jetinfer-ingest" {
		t.Errorf("default service.name %q", v.AsString())
	}
	t.Setenv("OTEL_SERVICE_NAME", "ingest-eu")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
	set := Resource(context.Background(), "jetinfer-ingest").Set()
	if v, _ := set.Value("service.name"); v.AsString() != "ingest-eu" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", v.AsString())
	}
	if v, _ := set.Value(attribute.Key("deployment.environment")); v.AsString() != "prod" {
		t.Errorf("OTEL_RESOURCE_ATTRIBUTES not applied: %v", set)
	}
}
