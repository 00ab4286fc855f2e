package tracing

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestOffByDefault(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
	} {
		tr, err := Setup(context.Background(), Config{Getenv: env(vars)})
		if err != nil {
			t.Fatalf("%v: %v", vars, err)
		}
		if tr.Enabled() || Enabled(tr.Provider()) {
			t.Errorf("%v: tracing on", vars)
		}
		if _, ok := tr.Provider().(noop.TracerProvider); !ok {
			t.Errorf("%v: provider %T, want the no-op one", vars, tr.Provider())
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Errorf("%v: shutdown: %v", vars, err)
		}
	}
	if Enabled(nil) {
		t.Error("nil provider enabled")
	}
}

func TestBadVariablesAreNamed(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
	} {
		_, err := Setup(context.Background(), Config{Getenv: env(tc.vars)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.vars, err, tc.want)
		}
	}
}

// TestConsoleExporter: spans go to the console writer with the service name
// from OTEL_SERVICE_NAME, and Shutdown flushes the batch.
func TestConsoleExporter(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "cassata-test")
	var out bytes.Buffer
	tr, err := Setup(context.Background(), Config{
		Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), Console: &out, ServiceVersion: "v9.9.9",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() || !Enabled(tr.Provider()) {
		t.Fatal("console exporter: tracing off")
	}
	_, span := tr.Provider().Tracer("test").Start(context.Background(), "hello-span")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"hello-span"`, `"Value":"cassata-test"`, `"Value":"v9.9.9"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %s:\n%s", want, out.String())
		}
	}
}

// TestSamplerFromEnvironment: OTEL_TRACES_SAMPLER is the SDK's to read.
func TestSamplerFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	var out bytes.Buffer
	tr, err := Setup(context.Background(), Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), Console: &out})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("test").Start(context.Background(), "dropped")
	span.End()
	_ = tr.Shutdown(context.Background())
	if out.Len() != 0 {
		t.Errorf("always_off exported %s", out.String())
	}
}
