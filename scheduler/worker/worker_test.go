package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// faultStore is the real store (on miniredis) with faults injected into
// some calls, as a flaky network or a stalled process would cause them.
type faultStore struct {
	*redisstore.Store
	failHeartbeats atomic.Bool
	claims         atomic.Int64 // ClaimShards calls (claim rounds)
	asked          atomic.Int64 // shards asked by those calls (claim scripts run)
	// stallClaim, when set, holds the next claim that took events this long
	// before its reply reaches the worker (a process stopped right after
	// Redis ran the claim).
	stallClaim atomic.Int64
}

func (f *faultStore) Heartbeat(ctx context.Context, w scheduler.WorkerInfo, now time.Time) error {
	if f.failHeartbeats.Load() {
		return fmt.Errorf("heartbeat: %w: injected fault", scheduler.ErrUnavailable)
	}
	return f.Store.Heartbeat(ctx, w, now)
}

func (f *faultStore) ClaimShards(ctx context.Context, reqs []scheduler.ClaimRequest, worker string, vis time.Duration, now time.Time) ([]scheduler.Claim, []error) {
	f.claims.Add(1)
	f.asked.Add(int64(len(reqs)))
	cs, errs := f.Store.ClaimShards(ctx, reqs, worker, vis, now)
	for _, c := range cs {
		if len(c.Events) > 0 {
			if d := f.stallClaim.Swap(0); d > 0 {
				time.Sleep(time.Duration(d))
			}
			break
		}
	}
	return cs, errs
}

// arrivals records the requests a destination received.
type arrivals struct {
	mu   sync.Mutex
	list []arrivalRec
}

type arrivalRec struct {
	id      string
	attempt int
	at      time.Time
}

func (a *arrivals) add(r *http.Request) {
	n, _ := strconv.Atoi(r.Header.Get("Cassata-Attempt"))
	a.mu.Lock()
	a.list = append(a.list, arrivalRec{id: r.Header.Get("Cassata-Event-Id"), attempt: n, at: time.Now()})
	a.mu.Unlock()
}

func (a *arrivals) of(id string) []arrivalRec {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []arrivalRec
	for _, r := range a.list {
		if r.id == id {
			out = append(out, r)
		}
	}
	return out
}

// workerBundle is a worker on a faultStore over miniredis, delivering to a
// destination that records every request and answers with handle (nil: 200).
type workerBundle struct {
	mr    *miniredis.Miniredis
	st    *faultStore
	sched *scheduler.Scheduler
	dest  *httptest.Server
	got   *arrivals
	logs  *testproc.Buffer
	w     *worker.Worker
}

func setupWorker(t *testing.T, handle http.HandlerFunc, cfg worker.Config) *workerBundle {
	t.Helper()
	return setupWorkerOn(t, redisstore.Config{Namespace: "wk", Shards: 2}, handle, cfg)
}

// setupWorkerOn is setupWorker with a store of config stc.
func setupWorkerOn(t *testing.T, stc redisstore.Config, handle http.HandlerFunc, cfg worker.Config) *workerBundle {
	t.Helper()
	b := &workerBundle{got: &arrivals{}, logs: &testproc.Buffer{}}
	b.dest = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.got.add(r)
		if handle != nil {
			handle(w, r)
		}
	}))
	t.Cleanup(b.dest.Close)
	st, mr := storetest.Miniredis(t, stc)
	b.st, b.mr = &faultStore{Store: st}, mr
	b.sched = scheduler.New(st, scheduler.Config{})
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = 50 * time.Millisecond
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = time.Second
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, nil))
	b.w = worker.New(b.st, delivery.New(delivery.Config{}), cfg)
	return b
}

// run starts the worker; it stops when the test ends.
func (b *workerBundle) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// schedule creates an event to the destination due at due.
func (b *workerBundle) schedule(t *testing.T, id string, due time.Time, mod ...func(*scheduler.Event)) {
	t.Helper()
	ev := &scheduler.Event{App: "a", ID: id, URL: b.dest.URL + "/hook/" + id, DueAt: due}
	for _, m := range mod {
		m(ev)
	}
	if _, created, err := b.sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil || !created {
		t.Fatalf("create %s: created %v, %v", id, created, err)
	}
}

func (b *workerBundle) get(t *testing.T, id string) *scheduler.Event {
	t.Helper()
	ev, err := b.st.Get(context.Background(), "a", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return ev
}

// waitUntil polls cond every 10ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWorkerSendsNothingAfterItsLease: a claim whose reply reaches the
// worker only after the lease ended (the process was stopped in between, or
// starved) is not sent: the event is recovered as any expired lease is,
// and delivered under a new claim. Measured on the worker's own clock from
// when it sent the claim, whatever Redis' clock says.
func TestWorkerSendsNothingAfterItsLease(t *testing.T) {
	const visibility = 400 * time.Millisecond
	b := setupWorker(t, nil, worker.Config{Visibility: visibility})
	b.st.stallClaim.Store(int64(visibility + 200*time.Millisecond))
	b.run(t)
	b.schedule(t, "late", time.Now())

	waitUntil(t, 5*time.Second, "the event was not delivered", func() bool {
		return b.get(t, "late").Status == scheduler.StatusCompleted
	})
	got := b.got.of("late")
	if len(got) != 1 || got[0].attempt != 2 {
		t.Fatalf("arrivals %+v: want only attempt 2 (attempt 1's lease ended before its claim reached the worker)", got)
	}
	ev := b.get(t, "late")
	if len(ev.History) != 2 || ev.History[0].Error != "lease expired" || ev.History[1].StatusCode != 200 || ev.History[1].Stale {
		t.Errorf("history %+v: want attempt 1 lease expired, attempt 2 200", ev.History)
	}
}

// TestWorkerCutsDeliveryAtItsLease: a request that outlives the lease,
// because the lease cannot be extended (Redis answers every extension with
// an error), is abandoned at the lease's end instead of running on while
// another worker may deliver the event again.
func TestWorkerCutsDeliveryAtItsLease(t *testing.T) {
	const visibility = 600 * time.Millisecond
	released := make(chan struct{})
	var once sync.Once
	b := setupWorker(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cassata-Attempt") == "1" {
			select {
			case <-r.Context().Done(): // the worker gave up
				once.Do(func() { close(released) })
				return
			case <-time.After(5 * time.Second):
			}
		}
	}, worker.Config{Visibility: visibility})
	b.w = worker.New(&noExtend{b.st}, delivery.New(delivery.Config{}),
		worker.Config{Visibility: visibility, PollInterval: 20 * time.Millisecond, ReapInterval: 50 * time.Millisecond,
			Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	b.run(t)
	start := time.Now()
	b.schedule(t, "cut", time.Now(), func(ev *scheduler.Event) { ev.Timeout = 10 * time.Second })
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request was not abandoned at the lease's end")
	}
	if took := time.Since(start); took > visibility+500*time.Millisecond {
		t.Errorf("abandoned %s after the claim, want by the lease's end (%s)", took, visibility)
	}
	waitUntil(t, 5*time.Second, "not delivered again", func() bool {
		return b.get(t, "cut").Status == scheduler.StatusCompleted
	})
}

// noExtend refuses every lease extension with a connection error.
type noExtend struct{ *faultStore }

func (n *noExtend) Extend(context.Context, scheduler.Lease, time.Duration, time.Time) (bool, error) {
	return false, fmt.Errorf("extend: %w: injected fault", scheduler.ErrUnavailable)
}

// TestWorkerGivesBackLostClaimsAtShutdown: a claim of the worker it never
// heard of (a claim cut off by the shutdown that Redis ran anyway) does not
// stay PROCESSING after a graceful stop until its lease expires: the worker
// gives it back, uncounted, once its deliveries are done.
func TestWorkerGivesBackLostClaimsAtShutdown(t *testing.T) {
	b := setupWorker(t, nil, worker.Config{ID: "w-stop", Visibility: time.Minute})
	b.st.failHeartbeats.Store(true) // the worker claims nothing itself
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.w.Run(ctx) }()
	b.schedule(t, "cut-off", time.Now())
	claimed := 0
	for sh := range b.st.Shards() {
		c, err := b.st.Store.Claim(context.Background(), sh, "w-stop", 10, time.Minute, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		claimed += len(c.Events)
	}
	if claimed != 1 {
		t.Fatalf("claimed %d events as the worker, want 1", claimed)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev := b.get(t, "cut-off")
	if ev.Status != scheduler.StatusPending || ev.Attempts != 0 || len(ev.History) != 0 {
		t.Errorf("after the worker stopped: %s, attempts %d, history %+v; want PENDING, 0 attempts, no history",
			ev.Status, ev.Attempts, ev.History)
	}
	if n := len(b.got.of("cut-off")); n != 0 {
		t.Errorf("%d deliveries, want none", n)
	}
}

// TestWorkerLeavesNoClaimRecords: the claim records a worker's claims
// write (one per claim call, in Redis) are deleted by its next claim of the
// shard once their reply came: an idle worker keeps at most one per shard,
// and none once it stopped.
func TestWorkerLeavesNoClaimRecords(t *testing.T) {
	b := setupWorker(t, nil, worker.Config{ID: "w-rec", Visibility: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.w.Run(ctx) }()
	for i := range 40 {
		b.schedule(t, "r"+strconv.Itoa(i), time.Now())
	}
	waitUntil(t, 10*time.Second, "every event delivered and finished", func() bool {
		for i := range 40 {
			if b.get(t, "r"+strconv.Itoa(i)).Status != scheduler.StatusCompleted {
				return false
			}
		}
		return true
	})
	records := func() (keys, most int) {
		for _, k := range b.mr.Keys() {
			if strings.Contains(k, ":claims:") {
				keys++
				f, _ := b.mr.HKeys(k)
				most = max(most, len(f))
			}
		}
		return keys, most
	}
	time.Sleep(100 * time.Millisecond) // a few idle claim rounds
	if keys, most := records(); keys > b.st.Shards() || most > 1 {
		t.Errorf("an idle worker keeps %d claim record keys, one with %d records; want at most one record per shard", keys, most)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if keys, _ := records(); keys != 0 {
		t.Errorf("%d claim record keys left after the worker stopped: %q", keys, b.mr.Keys())
	}
}

// TestWorkerDeliversAtMostConcurrency: a worker never has more than
// Concurrency requests in flight, and claims no more than it can deliver:
// the rest stay PENDING in Redis, free for other workers, until a slot
// frees up.
func TestWorkerDeliversAtMostConcurrency(t *testing.T) {
	t.Parallel()
	const concurrency, events = 3, 10
	release := make(chan struct{})
	var inFlight, most atomic.Int64
	b := setupWorker(t, func(http.ResponseWriter, *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
	}, worker.Config{Concurrency: concurrency})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // should the test fail first: before the destination closes
	b.run(t)
	for i := range events {
		b.schedule(t, fmt.Sprint("c", i), time.Now())
	}

	waitUntil(t, 10*time.Second, "the worker did not fill its slots", func() bool { return inFlight.Load() == concurrency })
	time.Sleep(200 * time.Millisecond) // room for a wrong extra claim; never needed to pass
	live, err := b.st.Live(context.Background(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if live.Processing != concurrency || live.Pending != events-concurrency {
		t.Errorf("with every slot busy: %d processing, %d pending; want %d and %d",
			live.Processing, live.Pending, concurrency, events-concurrency)
	}
	unblock()
	waitUntil(t, 10*time.Second, "not every event was delivered", func() bool {
		for i := range events {
			if b.get(t, fmt.Sprint("c", i)).Status != scheduler.StatusCompleted {
				return false
			}
		}
		return true
	})
	if m := most.Load(); m > concurrency {
		t.Errorf("%d requests in flight at once, want at most %d", m, concurrency)
	}
}

// TestFewSlotsLookAtEveryShard: with fewer free slots than shards, a claim
// round asks the next shards when the first ones have nothing due, rather
// than sleeping until the next poll while another shard has due events.
func TestFewSlotsLookAtEveryShard(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, nil, worker.Config{Concurrency: 1, PollInterval: time.Minute})
	now := time.Now()
	const n = 8
	for i := range n {
		b.schedule(t, fmt.Sprintf("few-%d", i), now) // both shards get some
	}
	b.run(t)
	waitUntil(t, 5*time.Second, "every event delivered with one slot, two shards and a one-minute poll", func() bool {
		for i := range n {
			if len(b.got.of(fmt.Sprintf("few-%d", i))) == 0 {
				return false
			}
		}
		return true
	})
}
