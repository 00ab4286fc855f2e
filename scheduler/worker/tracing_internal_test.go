package worker

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// TestTracerOffUnlessRecording: a worker without a provider, or with the
// no-op one tracing.Setup returns when tracing is off, has no tracer, so
// process does no tracing work at all.
func TestTracerOffUnlessRecording(t *testing.T) {
	t.Parallel()
	if newTracer(nil) != nil || newTracer(noop.NewTracerProvider()) != nil {
		t.Error("tracer with tracing off")
	}
	if newTracer(sdktrace.NewTracerProvider()) == nil {
		t.Error("no tracer with an SDK provider")
	}
	w := &Worker{}
	ctx := context.Background()
	got, span := w.startAttempt(ctx, &scheduler.Event{App: "a", ID: "x"})
	if got != ctx || span != nil {
		t.Error("startAttempt did something with tracing off")
	}
	span.end(delivery.Result{}, "completed") // a nil span is fine
}

// BenchmarkAttemptSpan measures what tracing adds to one delivery attempt
// in the worker: off (no tracer: the default) and on (an SDK provider with
// no exporter, so only span bookkeeping is measured).
func BenchmarkAttemptSpan(b *testing.B) {
	ev := &scheduler.Event{App: "shop", ID: "order-1", Method: "POST", Attempts: 1,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	for _, bc := range []struct {
		name string
		w    *Worker
	}{
		{"off", &Worker{}},
		{"on", &Worker{tracer: newTracer(sdktrace.NewTracerProvider())}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, span := bc.w.startAttempt(ctx, ev)
				span.end(delivery.Result{StatusCode: 200}, "completed")
			}
		})
	}
}
