package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// TestSteadyLoadAsksOnlyShardsWithDueEvents: under a steady trickle of
// events a claim round asks the shard a wake-up named or whose next due
// time came, not all 16 (a claim script each: ~190 µs of Redis for a round
// that finds nothing, about one per delivery before).
func TestSteadyLoadAsksOnlyShardsWithDueEvents(t *testing.T) {
	t.Parallel()
	b := setupWorkerOn(t, redisstore.Config{Namespace: "plan", Shards: 16},
		nil, worker.Config{PollInterval: time.Minute})
	b.run(t)
	waitUntil(t, 5*time.Second, "the first (full) claim round", func() bool { return b.st.asked.Load() >= 16 })
	time.Sleep(50 * time.Millisecond)
	asked0 := b.st.asked.Load()

	const n = 20
	start := time.Now().Add(100 * time.Millisecond)
	for i := range n {
		b.schedule(t, fmt.Sprintf("plan-%d", i), start.Add(time.Duration(i)*25*time.Millisecond))
	}
	waitUntil(t, 10*time.Second, "every event delivered", func() bool {
		for i := range n {
			if len(b.got.of(fmt.Sprintf("plan-%d", i))) == 0 {
				return false
			}
		}
		return true
	})
	for i := range n {
		id := fmt.Sprintf("plan-%d", i)
		due := start.Add(time.Duration(i) * 25 * time.Millisecond).Truncate(time.Millisecond)
		if at := b.got.of(id)[0].at; at.Before(due) {
			t.Errorf("%s delivered %v before its due time", id, due.Sub(at))
		}
	}
	// Each event: the wake-up of its create (when it became its shard's
	// earliest) and the claim at its due time, a shard each; every round
	// asking all 16 shards made it 16 times that or more.
	if asked := b.st.asked.Load() - asked0; asked > 4*n {
		t.Errorf("%d shards asked for %d events, want at most %d (a round asks the shards where an event may be due)", asked, n, 4*n)
	}
}

// TestEventBeyondWakeHorizonIsClaimedOnTime: a create due further out than
// the wake horizon publishes no wake-up, so only the worker's look at every
// shard each PollInterval finds it: before it is due, since the horizon is
// the poll interval.
func TestEventBeyondWakeHorizonIsClaimedOnTime(t *testing.T) {
	t.Parallel()
	const poll = 400 * time.Millisecond
	b := setupWorkerOn(t, redisstore.Config{Namespace: "far", Shards: 16, WakeHorizon: poll},
		nil, worker.Config{PollInterval: poll})
	b.run(t)
	waitUntil(t, 5*time.Second, "the first claim round", func() bool { return b.st.asked.Load() >= 16 })
	due := time.Now().Add(3 * poll).Truncate(time.Millisecond)
	b.schedule(t, "far-1", due)
	waitUntil(t, 5*time.Second, "far-1 delivered", func() bool { return len(b.got.of("far-1")) > 0 })
	late := b.got.of("far-1")[0].at.Sub(due)
	if late < 0 {
		t.Fatalf("delivered %v early", -late)
	}
	// Planned from a full round before its due time: a few milliseconds
	// late, and not more than a poll interval on a busy machine. (Without
	// the full rounds no round would ever ask its shard.)
	if late > poll {
		t.Errorf("delivered %v after its due time, want within the poll interval (%v)", late, poll)
	}
}
