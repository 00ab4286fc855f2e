package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler/worker"

	"github.com/cassata/cassata/scheduler"
)

// TestWorkerClaimsOnlyWhileHeartbeating: a worker whose heartbeats fail
// stops claiming before its peers may judge it dead (DeadAfter) and take
// its events away, and claims again once a heartbeat succeeds.
func TestWorkerClaimsOnlyWhileHeartbeating(t *testing.T) {
	b := setupWorker(t, nil, worker.Config{
		HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 300 * time.Millisecond})
	b.run(t)
	b.schedule(t, "before", time.Now())
	waitUntil(t, 5*time.Second, "the first event was not delivered", func() bool {
		return b.get(t, "before").Status == scheduler.StatusCompleted
	})

	b.st.failHeartbeats.Store(true)
	time.Sleep(300 * time.Millisecond) // DeadAfter: the worker stops claiming after DeadAfter/2
	claims := b.st.claims.Load()
	b.schedule(t, "during", time.Now())
	time.Sleep(500 * time.Millisecond) // well over DeadAfter
	if n := b.st.claims.Load() - claims; n != 0 {
		t.Errorf("%d claims while heartbeats failed, want none", n)
	}
	if ev := b.get(t, "during"); ev.Status != scheduler.StatusPending || len(b.got.of("during")) != 0 {
		t.Fatalf("while heartbeats fail: %s with %d arrivals, want PENDING and not delivered", ev.Status, len(b.got.of("during")))
	}

	b.st.failHeartbeats.Store(false)
	back := time.Now()
	waitUntil(t, 5*time.Second, "not delivered once heartbeats came back", func() bool {
		return b.get(t, "during").Status == scheduler.StatusCompleted
	})
	t.Logf("delivered %s after heartbeats came back", time.Since(back).Round(time.Millisecond))
	for _, line := range []string{"heartbeats failing: not claiming", "heartbeat succeeded: claiming again"} {
		if !strings.Contains(b.logs.String(), line) {
			t.Errorf("no log line %q", line)
		}
	}
}
