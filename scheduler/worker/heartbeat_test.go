package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
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

// listedWorker returns the worker's entry in the store's workers list.
func (b *workerBundle) listedWorker(t *testing.T, id string) (scheduler.WorkerInfo, bool) {
	t.Helper()
	ws, err := b.st.Workers(context.Background(), time.Time{})
	if err != nil {
		t.Fatalf("workers: %v", err)
	}
	i := slices.IndexFunc(ws, func(w scheduler.WorkerInfo) bool { return w.ID == id })
	if i < 0 {
		return scheduler.WorkerInfo{}, false
	}
	return ws[i], true
}

// TestHeartbeatReportsTheWorker: the workers list shows each worker with
// its id, host, pid, the deliveries it has in flight and the DeadAfter its
// peers must judge it by.
func TestHeartbeatReportsTheWorker(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setupWorker(t, func(http.ResponseWriter, *http.Request) { <-release }, worker.Config{
		ID: "hb-report", HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 400 * time.Millisecond})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // should the test fail first: before the destination closes
	b.run(t)
	b.schedule(t, "slow-1", time.Now())
	b.schedule(t, "slow-2", time.Now())

	var info scheduler.WorkerInfo
	waitUntil(t, 10*time.Second, "no heartbeat reported 2 deliveries in flight", func() bool {
		var ok bool
		info, ok = b.listedWorker(t, "hb-report")
		return ok && info.InFlight == 2
	})
	host, _ := os.Hostname()
	if info.DeadAfterMS != 400 || info.Host != host || info.PID != os.Getpid() {
		t.Errorf("listed as %+v, want DeadAfterMS 400, host %q, pid %d", info, host, os.Getpid())
	}
	unblock()
	waitUntil(t, 10*time.Second, "no heartbeat reported the deliveries done", func() bool {
		info, ok := b.listedWorker(t, "hb-report")
		return ok && info.InFlight == 0
	})
}

// flakyBeats fails the first fails heartbeats and records when each was
// made.
type flakyBeats struct {
	*faultStore
	fails atomic.Int64
	mu    sync.Mutex
	at    []time.Time
}

func (f *flakyBeats) Heartbeat(ctx context.Context, w scheduler.WorkerInfo, now time.Time) error {
	f.mu.Lock()
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	if f.fails.Add(-1) >= 0 {
		return fmt.Errorf("heartbeat: %w: injected fault", scheduler.ErrUnavailable)
	}
	return f.faultStore.Heartbeat(ctx, w, now)
}

func (f *flakyBeats) calls() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at)
}

// TestHeartbeatRetriesSoonAfterAFailure: a failed heartbeat is tried again
// within about a second, not a HeartbeatInterval later, so a worker whose
// first heartbeat failed (Redis blipped as it started) starts delivering
// within seconds even with a one-minute HeartbeatInterval.
func TestHeartbeatRetriesSoonAfterAFailure(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, nil, worker.Config{})
	st := &flakyBeats{faultStore: b.st}
	st.fails.Store(2)
	b.w = worker.New(st, delivery.New(delivery.Config{}), worker.Config{
		ID: "hb-retry", HeartbeatInterval: time.Minute, PollInterval: 20 * time.Millisecond,
		ShutdownTimeout: time.Second, Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	b.run(t)
	b.schedule(t, "first", time.Now())

	// The interval is a minute: the deadline would only be met by retries.
	waitUntil(t, 20*time.Second, "the event was not delivered after the first heartbeats failed", func() bool {
		return b.get(t, "first").Status == scheduler.StatusCompleted
	})
	calls := st.calls()
	if len(calls) < 3 {
		t.Fatalf("%d heartbeats, want 2 failed ones and a success", len(calls))
	}
	if _, ok := b.listedWorker(t, "hb-retry"); !ok {
		t.Errorf("the worker is not listed after its heartbeat succeeded")
	}
	t.Logf("retries came %s and %s after the failures", calls[1].Sub(calls[0]).Round(time.Millisecond), calls[2].Sub(calls[1]).Round(time.Millisecond))
}

// TestHeartbeatWorkerLeavesTheListWhenStopped: once Run returns, the
// workers list no longer shows the worker, and no peer waits DeadAfter to
// judge it dead.
func TestHeartbeatWorkerLeavesTheListWhenStopped(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, nil, worker.Config{ID: "hb-leave", HeartbeatInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.w.Run(ctx) }()
	waitUntil(t, 10*time.Second, "the running worker is not listed", func() bool {
		_, ok := b.listedWorker(t, "hb-leave")
		return ok
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if info, ok := b.listedWorker(t, "hb-leave"); ok {
		t.Errorf("the stopped worker is still listed: %+v", info)
	}
	dead, err := b.st.DeadWorkers(context.Background(), time.Nanosecond, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(dead, "hb-leave") {
		t.Errorf("the stopped worker is left for its peers to judge dead")
	}
}
