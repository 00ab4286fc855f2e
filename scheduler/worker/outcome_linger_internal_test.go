package worker

import (
	"context"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// An outcome recorded while most slots are busy does not linger: a
// delivery keeps its slot until its outcome is recorded. With the linger
// an hour long, a topic message's carrier finished with every slot busy
// must be recorded at once.
func TestCarrierOutcomeDoesNotLingerWhenSlotsAreScarce(t *testing.T) {
	t.Parallel()
	do := func(_ context.Context, in []scheduler.FinishItem) []scheduler.FinishResult {
		return make([]scheduler.FinishResult, len(in))
	}
	w := &Worker{cfg: Config{ID: "w1", Concurrency: 1}}
	w.fin = &finisher{b: newBatcher(maxFinishBatch, finishParallel, time.Hour, finishTimeout, do)}
	defer w.fin.close()
	w.inflight.Store(1) // the carrier's own delivery: every slot busy
	ev := &scheduler.Event{App: "a", ID: "m1", Attempts: 1, Kind: scheduler.KindMessage}
	done := make(chan error, 1)
	go func() {
		done <- w.finishCarrier(context.Background(), ev, scheduler.Lease{App: "a", ID: "m1", Worker: "w1", Attempt: 1},
			time.Time{}, time.Now(), "fanned out: 2 deliveries")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the carrier's outcome lingered with every slot busy")
	}
}
