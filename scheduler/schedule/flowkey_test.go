package schedule_test

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestOccurrencesCarryTheFlowKey: every event a schedule makes (its head,
// the next one after an advance, a trigger) has the schedule's flow key; a
// put that changes or drops the key rewrites the pending head with it.
func TestOccurrencesCarryTheFlowKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sc := every10("s")
	sc.FlowKey = "tenant:7"
	st, _, err := b.s.Create(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := t0.Add(10*time.Second), t0.Add(20*time.Second)
	if ev := b.event(t, occ("s", t1)); ev.FlowKey != "tenant:7" {
		t.Errorf("first occurrence flow key %q, want tenant:7", ev.FlowKey)
	}

	b.clock.Set(t1)
	if _, err := b.s.Advance(ctx, app, occ("s", t1)); err != nil {
		t.Fatal(err)
	}
	if ev := b.event(t, occ("s", t2)); ev.FlowKey != "tenant:7" {
		t.Errorf("next occurrence flow key %q, want tenant:7", ev.FlowKey)
	}

	b.clock.Advance(3 * time.Millisecond) // not the occurrence at t1
	_, trig, err := b.s.Trigger(ctx, app, "s")
	if err != nil {
		t.Fatal(err)
	}
	if ev := b.event(t, trig.ID); ev.FlowKey != "tenant:7" || ev.Kind != scheduler.KindRequest {
		t.Errorf("triggered event flow key %q kind %q, want tenant:7, a request", ev.FlowKey, ev.Kind)
	}

	// The same next time with another key, then none: the head follows.
	for _, key := range []string{"tenant:8", ""} {
		b.clock.Advance(time.Second)
		put := every10("s")
		put.StartAt, put.FlowKey = st.StartAt, key
		if _, err := b.s.Put(ctx, put); err != nil {
			t.Fatal(err)
		}
		if ev := b.event(t, occ("s", t2)); ev.FlowKey != key || ev.Status != scheduler.StatusPending {
			t.Errorf("head after a put with flow key %q: %q %s", key, ev.FlowKey, ev.Status)
		}
	}
}
