package worker_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/cassata/cassata/scheduler/topic"
)

// TestFanoutDeliveriesCarryTheFlowKey: each delivery has its
// subscription's flow key (none for a subscription without one), and so
// does the compensation of a keyed subscription's delivery.
func TestFanoutDeliveriesCarryTheFlowKey(t *testing.T) {
	t.Parallel()
	b := setupTopics(t, func(path string, n int) int {
		if path == "/bad" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	b.subscribe(t, topic.Subscription{ID: "keyed", FlowKey: "tenant:7", RollbackURL: b.dest.URL + "/keyed-undo"})
	b.subscribe(t, topic.Subscription{ID: "plain"})
	b.subscribe(t, topic.Subscription{ID: "bad", FlowKey: "tenant:8"})
	if _, _, err := b.msgs.Publish(context.Background(), topic.Publish{App: "shop", ID: "m4", Topic: "orders",
		Mode: topic.ModeAllOrNothing, Body: []byte(`{"order":7}`)}); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, "w4")
	m := b.waitStatus(t, "m4", topic.MessageRolledBack)
	if len(m.Deliveries) != 3 || len(m.Rollbacks) != 1 {
		t.Fatalf("deliveries %+v, rollbacks %+v; want 3 and the compensation of keyed", m.Deliveries, m.Rollbacks)
	}
	want := map[string]string{"m4~keyed": "tenant:7", "m4~plain": "", "m4~bad": "tenant:8", m.Rollbacks[0].EventID: "tenant:7"}
	for id, key := range want {
		ev, err := b.sched.Get(context.Background(), "shop", id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if ev.FlowKey != key {
			t.Errorf("%s: flow key %q, want %q", id, ev.FlowKey, key)
		}
	}
}
