package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.StopShared()
	testbin.RemoveShared()
	os.Exit(code)
}

// workerProcess is a `cassata worker` subprocess.
type workerProcess = cassataProcess

// startWorkerProcess builds cmd/cassata (once) and starts `cassata worker`
// on the env's Redis and namespace, with extra environment settings. It is
// killed when the test ends. Call it after setup, so that a run without
// redis-server skips before building.
func startWorkerProcess(t *testing.T, e *env, extraEnv ...string) *workerProcess {
	t.Helper()
	return startCassata(t, e, "worker", extraEnv...)
}

// TestKilledWorkerProcessEventRedelivered kills -9 a `cassata worker`
// process while it delivers: the event's lease expires and another worker
// delivers it again (attempt 2), at least once.
func TestKilledWorkerProcessEventRedelivered(t *testing.T) {
	const visibility = 2 * time.Second
	firstArrived := make(chan struct{})
	var once sync.Once
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.Attempt == 1 {
			once.Do(func() { close(firstArrived) })
			<-r.Context().Done() // block until the worker dies
			return
		}
		ok(w, r, a)
	})
	p := startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT="+visibility.String())

	e.schedule(e.event("crash-1"))
	select {
	case <-firstArrived:
	case <-p.Exited():
		t.Fatalf("worker process exited before delivering:\n%s", p.Output())
	case <-time.After(15 * time.Second):
		t.Fatalf("first attempt never arrived; worker output:\n%s", p.Output())
	}
	if ev := e.get("crash-1"); ev.Status != scheduler.StatusProcessing || ev.Attempts != 1 {
		t.Fatalf("before the kill: status %s, attempts %d; want PROCESSING, 1", ev.Status, ev.Attempts)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	killed := time.Now()

	e.startWorker(nil, worker.Config{Visibility: visibility})
	arr := e.dest.waitArrivals(t, "crash-1", 2, 15*time.Second)
	recovery := arr[1].At.Sub(killed)
	t.Logf("recovery: redelivered %s after SIGKILL (visibility timeout %s, reap interval 100ms)", recovery, visibility)
	if arr[1].Attempt != 2 {
		t.Errorf("redelivery carries Cassata-Attempt %d, want 2", arr[1].Attempt)
	}
	if lease := arr[1].At.Sub(arr[0].At); lease < visibility-time.Millisecond {
		t.Errorf("redelivered %s after the first attempt started, before its %s lease could expire", lease, visibility)
	}

	got := e.waitStatus("crash-1", scheduler.StatusCompleted, 5*time.Second)
	if got.Attempts != 2 || len(got.History) != 2 {
		t.Fatalf("attempts %d, history %+v; want 2", got.Attempts, got.History)
	}
	if h := got.History[0]; h.Attempt != 1 || h.Error != "lease expired" {
		t.Errorf("first attempt %+v, want lease expired", h)
	}
	if h := got.History[1]; h.Attempt != 2 || h.StatusCode != 200 {
		t.Errorf("second attempt %+v", h)
	}
	if n := len(e.dest.of("crash-1")); n != 2 {
		t.Errorf("%d arrivals, want 2", n)
	}
	e.assertNothingInFlight()
}

// TestWorkerProcessSIGTERMHandsBack stops a `cassata worker` process with
// SIGTERM while a delivery hangs: the process exits cleanly after its
// shutdown timeout and hands the event back as PENDING, so nothing waits for
// a lease to expire.
func TestWorkerProcessSIGTERMHandsBack(t *testing.T) {
	firstArrived := make(chan struct{})
	var once sync.Once
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.Attempt == 1 {
			once.Do(func() { close(firstArrived) })
			<-r.Context().Done()
			return
		}
		ok(w, r, a)
	})
	p := startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT=30s", "CASSATA_SHUTDOWN_TIMEOUT=500ms")

	e.schedule(e.event("term-1"))
	select {
	case <-firstArrived:
	case <-p.Exited():
		t.Fatalf("worker process exited before delivering:\n%s", p.Output())
	case <-time.After(15 * time.Second):
		t.Fatalf("first attempt never arrived; worker output:\n%s", p.Output())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termed := time.Now()
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("worker process still running 15s after SIGTERM; output:\n%s", p.Output())
	}
	t.Logf("worker process exited %s after SIGTERM (shutdown timeout 500ms)", time.Since(termed))
	if code := p.State().ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}

	got := e.get("term-1")
	if got.Status != scheduler.StatusPending || got.Attempts != 1 || !strings.Contains(got.LastError, "shutting down") {
		t.Fatalf("after SIGTERM: status %s, attempts %d, last error %q; want PENDING, handed back", got.Status, got.Attempts, got.LastError)
	}
	e.assertNothingInFlight()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ws, err := e.store.Workers(ctx, time.Time{}); err != nil || len(ws) != 0 {
		t.Errorf("workers still registered after a clean exit: %+v (err %v)", ws, err)
	}

	// Handed back due now: the next worker delivers it without waiting for the 30s lease.
	e.startWorker(nil, worker.Config{})
	if got := e.waitStatus("term-1", scheduler.StatusCompleted, 10*time.Second); got.Attempts != 2 {
		t.Errorf("completed after %d attempts, want 2", got.Attempts)
	}
}

// TestWorkerSurvivesRedisRestart restarts redis-server (AOF on) under a
// running worker: events scheduled before the restart and due after it, and
// events scheduled after it, are all delivered, once each.
func TestWorkerSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	e := setup(t, nil, redistest.WithAOF())
	e.startWorker(nil, worker.Config{})

	e.schedule(e.event("pre-now"))
	e.waitStatus("pre-now", scheduler.StatusCompleted, 10*time.Second)
	later := e.event("pre-later")
	later.DueAt = time.Now().Add(1500 * time.Millisecond)
	e.schedule(later)

	e.redis.Restart(t) // SIGTERM: the AOF is flushed, the script cache is not kept
	restarted := time.Now()

	var after []*scheduler.Event
	for i := range 10 {
		after = append(after, e.event(fmt.Sprintf("post-%d", i)))
	}
	// The store's client reconnects by itself; the first commands may still
	// meet a dead connection, so retry creating for a moment.
	for _, ev := range after {
		waitFor(t, 10*time.Second, func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, _, err := e.sched.Create(ctx, ev, scheduler.CreateOptions{}); err != nil {
				return fmt.Sprintf("create %s: %v", ev.ID, err)
			}
			return ""
		})
	}
	for _, ev := range append(after, later) {
		e.waitStatus(ev.ID, scheduler.StatusCompleted, 15*time.Second)
	}
	t.Logf("all delivered %s after the restart", time.Since(restarted))
	for id, arr := range e.dest.byID() {
		if len(arr) != 1 {
			t.Errorf("%s delivered %d times", id, len(arr))
		}
	}
	if a := e.dest.of("pre-later"); len(a) == 1 && a[0].At.Before(later.DueAt) {
		t.Errorf("pre-later arrived %s early", later.DueAt.Sub(a[0].At))
	}
	e.assertNothingInFlight()
}

// TestScriptFlushMidRun flushes the script cache while a worker runs: the
// store falls back to EVAL on NOSCRIPT and nothing is lost.
func TestScriptFlushMidRun(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.startWorker(nil, worker.Config{})

	var first []*scheduler.Event
	for i := range 20 {
		first = append(first, e.event(fmt.Sprintf("before-%02d", i)))
	}
	e.scheduleAll(first)
	for _, ev := range first {
		e.waitStatus(ev.ID, scheduler.StatusCompleted, 10*time.Second)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.redis.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}

	var second []*scheduler.Event
	for i := range 20 {
		ev := e.event(fmt.Sprintf("after-%02d", i))
		ev.DueAt = time.Now().Add(time.Duration(i*20) * time.Millisecond)
		second = append(second, ev)
	}
	e.scheduleAll(second)
	for _, ev := range second {
		e.waitStatus(ev.ID, scheduler.StatusCompleted, 10*time.Second)
	}
	for id, arr := range e.dest.byID() {
		if len(arr) != 1 {
			t.Errorf("%s delivered %d times", id, len(arr))
		}
	}
	if n := len(e.dest.byID()); n != 40 {
		t.Errorf("%d events delivered, want 40", n)
	}
	e.assertNothingInFlight()
}

// TestGracefulShutdown stops a worker with slow deliveries in flight: those
// that finish within ShutdownTimeout are recorded, the others are handed
// back as PENDING, and nothing stays PROCESSING.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = time.Second
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.Attempt == 1 {
			d := 300 * time.Millisecond // finishes within the shutdown timeout
			if strings.HasPrefix(a.ID, "stuck-") {
				d = 20 * time.Second // does not
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(d):
			}
		}
		ok(w, r, a)
	})
	w := e.startWorker(nil, worker.Config{ShutdownTimeout: shutdownTimeout, Visibility: 3 * time.Second})

	var evs []*scheduler.Event
	for i := range 5 {
		evs = append(evs, e.event(fmt.Sprintf("slow-%d", i)), e.event(fmt.Sprintf("stuck-%d", i)))
	}
	e.scheduleAll(evs)
	waitFor(t, 10*time.Second, func() string {
		if n := len(e.dest.all()); n < len(evs) {
			return fmt.Sprintf("%d of %d deliveries started", n, len(evs))
		}
		return ""
	})

	took := w.stop()
	t.Logf("worker stopped %s after cancel (shutdown timeout %s)", took, shutdownTimeout)
	if took > shutdownTimeout+5*time.Second {
		t.Errorf("worker took %s to stop, far beyond its %s shutdown timeout", took, shutdownTimeout)
	}
	if w.InFlight() != 0 {
		t.Errorf("%d deliveries still in flight after Run returned", w.InFlight())
	}
	for _, ev := range evs {
		got := e.get(ev.ID)
		switch {
		case strings.HasPrefix(ev.ID, "slow-"):
			if got.Status != scheduler.StatusCompleted {
				t.Errorf("%s: %s, want COMPLETED (it finished within the shutdown timeout)", ev.ID, got.Status)
			}
		default:
			if got.Status != scheduler.StatusPending || got.Attempts != 1 {
				t.Errorf("%s: %s after %d attempts, want handed back as PENDING", ev.ID, got.Status, got.Attempts)
			} else if !strings.Contains(got.LastError, "shutting down") {
				t.Errorf("%s: last error %q", ev.ID, got.LastError)
			}
			if got.DueAt.After(time.Now()) {
				t.Errorf("%s handed back due at %s, in the future", ev.ID, got.DueAt)
			}
		}
	}
	e.assertNothingInFlight()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ws, err := e.store.Workers(ctx, time.Time{}); err != nil || len(ws) != 0 {
		t.Errorf("workers still registered after a clean stop: %+v (err %v)", ws, err)
	}

	// The handed-back events go out with the next worker.
	e.startWorker(nil, worker.Config{})
	for _, ev := range evs {
		if strings.HasPrefix(ev.ID, "stuck-") {
			if got := e.waitStatus(ev.ID, scheduler.StatusCompleted, 10*time.Second); got.Attempts != 2 {
				t.Errorf("%s completed after %d attempts, want 2", ev.ID, got.Attempts)
			}
		}
	}
}

// TestSlowDeliveryKeepsItsLease runs a delivery for over twice the
// visibility timeout: the worker extends its lease, so no reaper (its own or
// another worker's) recovers the event and it is delivered once.
func TestSlowDeliveryKeepsItsLease(t *testing.T) {
	t.Parallel()
	const visibility = time.Second
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(2500 * time.Millisecond):
		}
		ok(w, r, a)
	})
	e.startWorker(nil, worker.Config{Visibility: visibility})
	e.startWorker(e.newStore(), worker.Config{Visibility: visibility}) // a second reaper
	ev := e.event("slow-lease")
	ev.Timeout = 10 * time.Second
	e.schedule(ev)

	got := e.waitFinal("slow-lease", 15*time.Second)
	if got.Status != scheduler.StatusCompleted || got.Attempts != 1 || len(got.History) != 1 {
		t.Fatalf("status %s, attempts %d, history %+v; want COMPLETED after 1 attempt", got.Status, got.Attempts, got.History)
	}
	if n := len(e.dest.of("slow-lease")); n != 1 {
		t.Errorf("%d arrivals, want 1", n)
	}
	e.assertNothingInFlight()
}
