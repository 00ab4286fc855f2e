package integration

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
)

// TestNeverEarly schedules events at many due times over about three seconds
// and checks that none reaches the destination before its due time. The
// destination and Redis share this machine's clock; due times are whole
// milliseconds, so an arrival may precede the requested due time by less
// than a millisecond but never its stored due time.
func TestNeverEarly(t *testing.T) {
	const n = 500
	e := setup(t, nil)
	e.startWorker(nil, worker.Config{})

	base := time.Now().Add(300 * time.Millisecond)
	evs := make([]*scheduler.Event, n)
	due := make(map[string]time.Time, n)
	for i := range evs {
		ev := e.event(fmt.Sprintf("early-%03d", i))
		ev.DueAt = base.Add(time.Duration(rand.IntN(3000))*time.Millisecond + time.Duration(rand.IntN(1000))*time.Microsecond)
		evs[i] = ev
		due[ev.ID] = ev.DueAt.Truncate(time.Millisecond)
	}
	e.scheduleAll(evs)

	waitFor(t, 20*time.Second, func() string {
		if got := len(e.dest.byID()); got < n {
			return fmt.Sprintf("%d of %d events delivered", got, n)
		}
		return ""
	})
	var lateness []time.Duration
	for id, arr := range e.dest.byID() {
		d, ok := due[id]
		if !ok {
			t.Errorf("unknown event %q delivered", id)
			continue
		}
		if len(arr) != 1 {
			t.Errorf("%s delivered %d times", id, len(arr))
		}
		if early := d.Sub(arr[0].At); early > 0 {
			t.Errorf("%s arrived %s before its due time %s", id, early, d.Format(time.RFC3339Nano))
		}
		lateness = append(lateness, arr[0].At.Sub(d))
	}
	slices.Sort(lateness)
	if len(lateness) > 0 {
		t.Logf("lateness over %d events: min %s, p50 %s, p99 %s, max %s", len(lateness), lateness[0],
			lateness[len(lateness)/2], lateness[len(lateness)*99/100], lateness[len(lateness)-1])
	}
}
