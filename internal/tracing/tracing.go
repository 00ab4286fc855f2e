// Package tracing sets up OpenTelemetry tracing for a Cassata process from
// the standard OTEL_* environment variables. It is off by default: without
// OTEL_TRACES_EXPORTER (or with "none") Setup returns a no-op provider, the
// API installs no tracing middleware and the worker starts no spans, so an
// untraced process pays nothing but a nil check per delivery.
//
// What is traced when it is on:
//
//	client ──traceparent──► POST /v1/events   (server span, otelgin; the
//	                          │                 route template is its name)
//	                          │ the span's traceparent is stored with the
//	                          ▼ event (hash field tc, store/redisstore)
//	                        cassata.deliver   (client span per attempt, in
//	                          │                 the worker; child of the
//	                          │                 create request's span)
//	                          ▼
//	                        destination, which receives traceparent
//
// Variables read (the OpenTelemetry SDK's names and meanings):
// OTEL_TRACES_EXPORTER (otlp, console, none; a comma-separated list is
// allowed), OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
// (http/protobuf, the default, or grpc), OTEL_EXPORTER_OTLP_ENDPOINT and the exporter's other
// OTEL_EXPORTER_OTLP_* variables, OTEL_SERVICE_NAME (default "cassata"),
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (default parentbased_always_on), OTEL_BSP_* (batching), OTEL_SDK_DISABLED.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultShutdownTimeout bounds how long Shutdown waits for the last spans
// to be exported.
const DefaultShutdownTimeout = 5 * time.Second

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "cassata"

// Propagator reads and writes the W3C trace context (traceparent,
// tracestate) and baggage headers: what the API extracts from a create
// request.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Config configures Setup.
type Config struct {
	// ServiceVersion is service.version. Defaults to none.
	ServiceVersion string
	// Getenv reads the environment. Defaults to os.Getenv (the OTLP
	// exporter reads its own OTEL_EXPORTER_OTLP_* variables with os.Getenv
	// whatever this is).
	Getenv func(string) string
	// Console receives the spans of the console exporter. Defaults to
	// os.Stdout.
	Console io.Writer
	// ShutdownTimeout bounds Shutdown. Defaults to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives export errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// Tracing is a process's tracing: its provider and how to stop it.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
	timeout  time.Duration
}

// Setup builds the tracer provider the environment asks for. When tracing
// is off (OTEL_TRACES_EXPORTER unset or "none", or OTEL_SDK_DISABLED=true)
// it returns a no-op provider and changes nothing global; when it is on it
// also becomes the global provider and propagator (otel.SetTracerProvider)
// for libraries that use those. An unknown exporter or protocol is an error
// that names the variable.
func Setup(ctx context.Context, cfg Config) (*Tracing, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	t := &Tracing{provider: noop.NewTracerProvider(), timeout: cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return t, nil
	}
	var opts []sdktrace.TracerProviderOption
	for name := range strings.SplitSeq(getenv("OTEL_TRACES_EXPORTER"), ",") {
		exp, err := exporter(ctx, strings.ToLower(strings.TrimSpace(name)), getenv, cfg.Console)
		if err != nil {
			return nil, err
		}
		if exp != nil {
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
	}
	if len(opts) == 0 {
		return t, nil
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	// Later options win: the environment overrides the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// No sampler option: the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself.
	t.sdk = sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	t.provider = t.sdk
	log := cmp.Or(cfg.Logger, slog.Default())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: export failed", "err", err) }))
	otel.SetTracerProvider(t.sdk)
	otel.SetTextMapPropagator(Propagator)
	log.Info("tracing on", "exporter", getenv("OTEL_TRACES_EXPORTER"), "sampler", cmp.Or(getenv("OTEL_TRACES_SAMPLER"), "parentbased_always_on"))
	return t, nil
}

// exporter returns the span exporter named by one OTEL_TRACES_EXPORTER
// entry, nil for none.
func exporter(ctx context.Context, name string, getenv func(string) string, console io.Writer) (sdktrace.SpanExporter, error) {
	switch name {
	case "", "none":
		return nil, nil
	case "console":
		return stdouttrace.New(stdouttrace.WithWriter(cmp.Or[io.Writer](console, os.Stdout)))
	case "otlp":
		proto := cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")
		var exp sdktrace.SpanExporter
		var err error
		switch proto {
		case "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		default:
			return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q: want http/protobuf or grpc", proto)
		}
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER %q: want otlp, console or none", name)
}

// Provider returns the tracer provider: a no-op one when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Shutdown exports the spans still buffered and stops the provider, within
// the configured timeout. ctx's cancellation is ignored: shutdown runs
// after the process's context has ended.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	} else if err != nil {
		return fmt.Errorf("tracing: shutdown: spans still buffered after %s were dropped: %w", t.timeout, err)
	}
	return nil
}

// Enabled reports whether tp records spans: false for nil and for the no-op
// provider Setup returns when tracing is off. Components check it once, at
// construction, and then skip all tracing work when it is false.
func Enabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, off := tp.(noop.TracerProvider)
	return !off
}
