package integration

import (
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
)

// TestDeadWorkerRecoveredBeforeItsLeaseExpires kills -9 a `cassata worker`
// process that holds an event under a long (60s) lease: its heartbeats
// stop, and another worker gives the event back after DeadAfter instead of
// waiting out the visibility timeout.
func TestDeadWorkerRecoveredBeforeItsLeaseExpires(t *testing.T) {
	const (
		visibility = time.Minute
		heartbeat  = 200 * time.Millisecond
		deadAfter  = time.Second
	)
	firstArrived := make(chan struct{})
	var once sync.Once
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.Attempt == 1 {
			once.Do(func() { close(firstArrived) })
			<-r.Context().Done() // hold the request until the worker dies
			return
		}
		ok(w, r, a)
	})
	p := startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT="+visibility.String(),
		"CASSATA_HEARTBEAT_INTERVAL="+heartbeat.String(), "CASSATA_DEAD_AFTER="+deadAfter.String())

	e.schedule(e.event("dead-1"))
	select {
	case <-firstArrived:
	case <-p.Exited():
		t.Fatalf("worker process exited before delivering:\n%s", p.Output())
	case <-time.After(15 * time.Second):
		t.Fatalf("first attempt never arrived; worker output:\n%s", p.Output())
	}
	ev := e.get("dead-1")
	if ev.Status != scheduler.StatusProcessing {
		t.Fatalf("before the kill: status %s, want PROCESSING", ev.Status)
	}
	// The survivor starts now; it judges others once it has itself been
	// beating for DeadAfter.
	survivor := e.startWorker(nil, worker.Config{
		Visibility: visibility, HeartbeatInterval: heartbeat, DeadAfter: deadAfter,
	})
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	killed := time.Now()

	arr := e.dest.waitArrivals(t, "dead-1", 2, 20*time.Second)
	recovery := arr[1].At.Sub(killed)
	t.Logf("recovery: redelivered %s after SIGKILL (heartbeat %s, dead after %s, visibility timeout %s)",
		recovery, heartbeat, deadAfter, visibility)
	if recovery > visibility/2 {
		t.Errorf("redelivered %s after the kill: the dead worker's lease was waited out", recovery)
	}
	got := e.waitStatus("dead-1", scheduler.StatusCompleted, 5*time.Second)
	if got.Attempts != 2 || len(got.History) != 2 || got.History[0].Error != "lease expired" {
		t.Errorf("attempts %d, history %+v; want the first attempt ended as lease expired", got.Attempts, got.History)
	}
	workers, err := e.store.Workers(t.Context(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if w.ID != survivor.ID() {
			t.Errorf("the dead worker %s is still listed", w.ID)
		}
	}
	e.assertNothingInFlight()
}
