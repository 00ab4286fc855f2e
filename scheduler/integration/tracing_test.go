package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
)

// The caller's span: the create request's traceparent.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
)

// postTraced creates an event through srv's /v1/events, with traceparent
// (none when "") and returns the status code.
func postTraced(t *testing.T, srv *httptest.Server, id, url, traceparent string) int {
	t.Helper()
	body := `{"app":"` + testApp + `","id":"` + id + `","url":"` + url + `","delay":"10ms"}`
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// spanContextOf parses a traceparent header.
func spanContextOf(traceparent string) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// TestTraceFromCreateToDestination: with tracing on, a create request's
// traceparent continues in the API's span, is stored with the event, the
// delivery attempt's span is a child of the API's span (same trace), and
// the destination receives a traceparent naming the attempt's span.
func TestTraceFromCreateToDestination(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond, TracerProvider: tp})
	srv := httptest.NewServer(api.New(api.Config{Scheduler: e.sched, Logger: e.log, TracerProvider: tp}).Engine(nil))
	t.Cleanup(srv.Close)

	if code := postTraced(t, srv, "traced", e.dest.URL("/hook/traced"), "00-"+callerTraceID+"-"+callerSpanID+"-01"); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	stored := spanContextOf(e.get("traced").TraceParent)
	if stored.TraceID().String() != callerTraceID || stored.SpanID().String() == callerSpanID {
		t.Fatalf("stored traceparent %q: want the caller's trace and the API span", e.get("traced").TraceParent)
	}

	got := e.dest.waitArrivals(t, "traced", 1, 10*time.Second)[0].Header.Get("traceparent")
	sent := spanContextOf(got)
	if sent.TraceID().String() != callerTraceID {
		t.Fatalf("destination got traceparent %q, want trace %s", got, callerTraceID)
	}
	e.waitStatus("traced", scheduler.StatusCompleted, 10*time.Second)

	var apiSpan, attempt sdktrace.ReadOnlySpan
	waitFor(t, 5*time.Second, func() string {
		for _, s := range spans.Ended() {
			switch s.Name() {
			case "POST /v1/events":
				apiSpan = s
			case worker.DeliverySpanName:
				attempt = s
			}
		}
		if apiSpan == nil || attempt == nil {
			return "no API span and delivery span ended yet"
		}
		return ""
	})
	if apiSpan.SpanContext().TraceID().String() != callerTraceID || apiSpan.Parent().SpanID().String() != callerSpanID {
		t.Errorf("API span in trace %s with parent %s, want the caller's", apiSpan.SpanContext().TraceID(), apiSpan.Parent().SpanID())
	}
	if apiSpan.SpanContext().SpanID() != stored.SpanID() {
		t.Errorf("stored traceparent names span %s, the API span is %s", stored.SpanID(), apiSpan.SpanContext().SpanID())
	}
	if attempt.SpanContext().TraceID().String() != callerTraceID {
		t.Errorf("delivery span in trace %s, want %s", attempt.SpanContext().TraceID(), callerTraceID)
	}
	if attempt.Parent().SpanID() != apiSpan.SpanContext().SpanID() {
		t.Errorf("delivery span's parent %s, want the API span %s", attempt.Parent().SpanID(), apiSpan.SpanContext().SpanID())
	}
	if sent.SpanID() != attempt.SpanContext().SpanID() {
		t.Errorf("destination's traceparent names span %s, want the delivery span %s", sent.SpanID(), attempt.SpanContext().SpanID())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range attempt.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	for k, want := range map[attribute.Key]string{
		worker.AttrEventID: "traced", worker.AttrApp: testApp, worker.AttrAttempt: "1",
		worker.AttrHTTPCode: "200", worker.AttrOutcome: "completed",
	} {
		if got := attrs[k].Emit(); got != want {
			t.Errorf("delivery span %s = %q, want %q", k, got, want)
		}
	}
}

// TestNoTraceWhenTracingIsOff: without a tracer provider nothing is stored
// and nothing is sent, whatever traceparent the create carried (the
// destination sees the event's own headers only).
func TestNoTraceWhenTracingIsOff(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
	srv := httptest.NewServer(api.New(api.Config{Scheduler: e.sched, Logger: e.log}).Engine(nil))
	t.Cleanup(srv.Close)
	if code := postTraced(t, srv, "plain", e.dest.URL("/hook/plain"), "00-"+callerTraceID+"-"+callerSpanID+"-01"); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if tp := e.get("plain").TraceParent; tp != "" {
		t.Errorf("stored traceparent %q with tracing off", tp)
	}
	if got := e.dest.waitArrivals(t, "plain", 1, 10*time.Second)[0].Header.Get("traceparent"); got != "" {
		t.Errorf("destination got traceparent %q with tracing off", got)
	}
}
