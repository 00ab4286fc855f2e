package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cassata/cassata/internal/tracing"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// tracerName is the instrumentation scope of the worker's spans.
const tracerName = "github.com/cassata/cassata/scheduler/worker"

// DeliverySpanName names the span of one delivery attempt.
const DeliverySpanName = "cassata.deliver"

// Attribute keys of a delivery span.
const (
	AttrEventID  = attribute.Key("cassata.event.id")
	AttrApp      = attribute.Key("cassata.app")
	AttrAttempt  = attribute.Key("cassata.attempt")
	AttrOutcome  = attribute.Key("cassata.outcome")
	AttrHTTPCode = attribute.Key("http.response.status_code")
)

// newTracer returns the worker's tracer, nil when tracing is off: process
// then skips every tracing step behind one nil check.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if !tracing.Enabled(tp) {
		return nil
	}
	return tp.Tracer(tracerName)
}

// attemptSpan is the span of one delivery attempt; a nil *attemptSpan
// (tracing off) does nothing.
type attemptSpan struct{ span trace.Span }

// startAttempt starts ev's attempt span as a child of the span that created
// the event (its stored traceparent; a new trace without one) and returns
// the context the request is sent under: delivery.Deliverer puts that
// span's traceparent on the outgoing request.
func (w *Worker) startAttempt(ctx context.Context, ev *scheduler.Event) (context.Context, *attemptSpan) {
	if w.tracer == nil {
		return ctx, nil
	}
	ctx, span := w.tracer.Start(scheduler.TraceContext(ctx, ev), DeliverySpanName,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrEventID.String(ev.ID), AttrApp.String(ev.App), AttrAttempt.Int(ev.Attempts),
			attribute.String("http.request.method", ev.Method)))
	return ctx, &attemptSpan{span: span}
}

// end records the attempt's response and outcome ("completed", "failed",
// "service_unavailable", "retry", "stale", or why nothing was recorded)
// and ends the span.
func (s *attemptSpan) end(res delivery.Result, outcome string) {
	if s == nil {
		return
	}
	if res.StatusCode != 0 {
		s.span.SetAttributes(AttrHTTPCode.Int(res.StatusCode))
	}
	s.span.SetAttributes(AttrOutcome.String(outcome))
	switch {
	case res.Err != nil:
		s.span.SetStatus(codes.Error, res.Err.Error())
	case outcome != "completed":
		s.span.SetStatus(codes.Error, outcome)
	}
	s.span.End()
}

// outcomeLabel names what became of an attempt, as the
// cassata_deliveries_total metric's outcome label and the span's
// cassata.outcome attribute do.
func outcomeLabel(st scheduler.Status, held bool) string {
	switch {
	case !held:
		return scheduler.OutcomeStale
	case st == scheduler.StatusCompleted:
		return scheduler.OutcomeCompleted
	case st == scheduler.StatusFailed:
		return scheduler.OutcomeFailed
	case st == scheduler.StatusServiceUnavailable:
		return scheduler.OutcomeServiceUnavailable
	default: // PENDING again: retried later
		return scheduler.OutcomeRetry
	}
}
