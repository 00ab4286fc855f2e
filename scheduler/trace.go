package scheduler

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceParentFrom returns the W3C traceparent of the span ctx carries, "" when
// it carries none: always so when tracing is off (internal/tracing), which
// costs one context lookup per create. The tracestate is not kept: it is
// vendor data of the caller's trace, and bytes per event count.
func TraceParentFrom(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// TraceContext returns ctx with the span context of an event's stored
// traceparent as its remote parent (ctx unchanged without one), so the
// spans of the event's deliveries join the trace of its create request.
func TraceContext(ctx context.Context, ev *Event) context.Context {
	if ev.TraceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": ev.TraceParent})
}
