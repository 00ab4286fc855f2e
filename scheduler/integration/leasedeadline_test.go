package integration

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/redisstore"
)

// TestStoppedWorkerSendsNothingAfterItsLease stops a `cassata worker`
// process (SIGSTOP) between Redis running its claim and the worker reading
// the reply, keeps it stopped past the lease, and resumes it (SIGCONT): the
// worker must not send the request whose lease ended while it was stopped
// (another worker may have taken the event over meanwhile). The event is
// recovered as any expired lease is and delivered under a new claim.
//
// To stop the worker at that point, Redis is paused (CLIENT PAUSE) as the
// event comes due, so the claim the worker sends waits in Redis; the worker
// is stopped during the pause, and Redis runs the claim when the pause ends.
func TestStoppedWorkerSendsNothingAfterItsLease(t *testing.T) {
	const visibility = 2 * time.Second
	e := setup(t, nil)
	// One shard: the claim the worker has on its way when Redis pauses is
	// the one that takes the event.
	e.ns = "lease1"
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: e.ns, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.sched = st, scheduler.New(st, scheduler.Config{})

	// A long read timeout: the claim's reply is read after the stop, and
	// must not be given up on (that is another fault: a lost claim reply).
	w := startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT="+visibility.String(),
		"CASSATA_REDIS_URL="+e.redis.URL()+"?read_timeout=60s")
	wID := w.workerID(t)

	// The worker's claim loop also checks its processing list for lost
	// claims once a second; when that check, not the claim, is what waits
	// in the paused Redis, the stopped worker has sent no claim and the
	// fault is not played. The play is then repeated with another event.
	var (
		id                   string
		due, paused, stopped time.Time
		claimed              *scheduler.Event
	)
	for try := 1; claimed == nil; try++ {
		if try > 4 {
			t.Fatalf("in %d tries the worker never had its claim waiting in the paused Redis when it was stopped", try-1)
		}
		id = fmt.Sprintf("stopped-%d", try)
		due = time.Now().Add(1500 * time.Millisecond)
		ev := e.event(id)
		ev.DueAt = due
		e.schedule(ev)
		time.Sleep(time.Until(due.Add(-300 * time.Millisecond)))
		pause := 1500 * time.Millisecond
		if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		paused = time.Now()
		time.Sleep(time.Until(due.Add(300 * time.Millisecond)))
		if err := w.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() string {
			if s := procState(w.Pid()); s != "T" {
				return fmt.Sprintf("worker (pid %d) in state %q after SIGSTOP, want T", w.Pid(), s)
			}
			return ""
		})
		stopped = time.Now()
		if stopped.After(paused.Add(pause)) {
			t.Fatalf("the worker stopped %s after Redis paused, after the pause's end: the fault was not played", stopped.Sub(paused))
		}
		// The pause ends; Redis runs the claim the stopped worker sent.
		claimed = e.claimedWithin(id, 3*time.Second)
		if claimed == nil {
			t.Logf("try %d: no claim of %s was waiting in Redis when the worker stopped; playing again", try, id)
			if err := w.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			e.waitStatus(id, scheduler.StatusCompleted, 15*time.Second)
		}
	}
	if claimed.Worker != wID || claimed.Attempts != 1 {
		t.Fatalf("claimed by %q at attempt %d, want %q at 1", claimed.Worker, claimed.Attempts, wID)
	}
	leaseEnd := e.leaseDeadline(id)
	time.Sleep(time.Until(leaseEnd.Add(time.Second)))
	if err := w.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()

	got := e.waitStatus(id, scheduler.StatusCompleted, 15*time.Second)
	for _, a := range e.dest.of(id) {
		if a.Attempt == 1 {
			t.Errorf("attempt 1 arrived %s after its lease ended (the worker resumed %s after it): sent under an ended lease",
				a.At.Sub(leaseEnd).Round(time.Millisecond), resumed.Sub(leaseEnd).Round(time.Millisecond))
		}
	}
	if n := len(e.dest.of(id)); n != 1 {
		t.Errorf("%d arrivals, want 1 (attempt 2)", n)
	}
	h := got.History
	if got.Attempts != 2 || len(h) != 2 || h[0].Error != "lease expired" || h[1].StatusCode != 200 || h[1].Stale {
		t.Errorf("attempts %d, history %+v; want attempt 1 lease expired, attempt 2 delivered", got.Attempts, h)
	}
	if w.logField("lease ended before the request was sent: not sending it; the event is recovered after its lease", "id") != id {
		t.Errorf("the worker did not log that it dropped the claim whose lease ended:\n%s", w.Output())
	}
	if !w.Running() {
		t.Errorf("the worker process exited:\n%s", w.Output())
	}
	e.assertNothingInFlight()
	if arr := e.dest.of(id); len(arr) > 0 {
		t.Logf("Redis paused %s before the due time; worker stopped %s after the due time; lease ended %s after the stop; resumed %s after the lease; delivered (attempt %d) %s after resuming",
			due.Sub(paused).Round(time.Millisecond), stopped.Sub(due).Round(time.Millisecond), leaseEnd.Sub(stopped).Round(time.Millisecond),
			resumed.Sub(leaseEnd).Round(time.Millisecond), arr[len(arr)-1].Attempt, arr[len(arr)-1].At.Sub(resumed).Round(time.Millisecond))
	}
}

// claimedWithin waits up to timeout for the event to be PROCESSING and
// returns it, or nil if it is still PENDING then.
func (e *env) claimedWithin(id string, timeout time.Duration) *scheduler.Event {
	e.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		ev := e.get(id)
		if ev.Status == scheduler.StatusProcessing {
			return ev
		}
		if ev.Status != scheduler.StatusPending {
			e.t.Fatalf("event %s is %s (attempts %d), want PROCESSING", id, ev.Status, ev.Attempts)
		}
		if time.Now().After(deadline) {
			return nil
		}
	}
}
