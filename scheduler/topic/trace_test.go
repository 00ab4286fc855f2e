package topic_test

import (
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// TestDeliveriesCarryTheMessageTrace: a message's deliveries and
// compensations keep the traceparent of its publish request, so their
// attempts join that trace; an untraced message's deliveries stay untraced.
func TestDeliveriesCarryTheMessageTrace(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	now := time.UnixMilli(1_700_000_000_000)
	p := topic.Planned{Subscription: "s1", URL: "https://example.com/hook", Method: "POST", RollbackURL: "https://example.com/undo"}
	for _, want := range []string{tp, ""} {
		carrier := &scheduler.Event{App: "shop", ID: topic.CarrierID("m1"), Kind: scheduler.KindMessage, Topic: "orders", TraceParent: want}
		if got := topic.DeliveryEvent(carrier, "m1", p, now).TraceParent; got != want {
			t.Errorf("delivery traceparent %q, want %q", got, want)
		}
		if got := topic.CompensationEvent(carrier, "m1", p, now).TraceParent; got != want {
			t.Errorf("compensation traceparent %q, want %q", got, want)
		}
	}
}
