package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// flowDest is a destination that counts requests in flight per flow key
// (the Cassata-Event-Id says which event; the test knows its key) and
// answers after hold.
type flowDest struct {
	srv  *httptest.Server
	hold time.Duration

	mu       sync.Mutex
	inFlight map[string]int // by key ("" for none)
	maxIn    map[string]int
	starts   map[string][]time.Time
	arrived  map[string]time.Time // by event id
	attempts map[string]int
}

func newFlowDest(t *testing.T, hold time.Duration) *flowDest {
	d := &flowDest{hold: hold, inFlight: map[string]int{}, maxIn: map[string]int{}, starts: map[string][]time.Time{},
		arrived: map[string]time.Time{}, attempts: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		id := r.Header.Get("Cassata-Event-Id")
		d.mu.Lock()
		d.inFlight[key]++
		d.maxIn[key] = max(d.maxIn[key], d.inFlight[key])
		d.starts[key] = append(d.starts[key], time.Now())
		d.arrived[id] = time.Now()
		d.attempts[id], _ = strconv.Atoi(r.Header.Get("Cassata-Attempt"))
		d.mu.Unlock()
		time.Sleep(d.hold)
		d.mu.Lock()
		d.inFlight[key]--
		d.mu.Unlock()
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *flowDest) count(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.starts[key])
}

// flowSystem is a store on miniredis with two workers that apply flow
// control, and the scheduler to create events with.
type flowSystem struct {
	st    *redisstore.Store
	sched *scheduler.Scheduler
	flows *flow.Flows
	dest  *flowDest
}

func setupFlows(t *testing.T, hold time.Duration) *flowSystem {
	t.Helper()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "fl", Shards: 4})
	s := &flowSystem{st: st, sched: scheduler.New(st, scheduler.Config{}), flows: flow.New(st), dest: newFlowDest(t, hold)}
	for i := range 2 {
		w := worker.New(st, delivery.New(delivery.Config{}), worker.Config{
			ID: "fw" + strconv.Itoa(i), Concurrency: 50, PollInterval: 20 * time.Millisecond, ReapInterval: 50 * time.Millisecond,
			ShutdownTimeout: time.Second, Flows: st, Logger: slog.New(slog.NewJSONHandler(&testproc.Buffer{}, nil)),
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return s
}

// create makes n events of key due at due, ids <prefix>0...
func (s *flowSystem) create(t *testing.T, prefix, key string, n int, due time.Time) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s%03d", prefix, i)
		ev := &scheduler.Event{App: "a", ID: ids[i], URL: s.dest.srv.URL + "/?key=" + key, DueAt: due, FlowKey: key,
			MaxAttempts: 1}
		if _, created, err := s.sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil || !created {
			t.Fatalf("create %s: %v %v", ids[i], created, err)
		}
	}
	return ids
}

func (s *flowSystem) put(t *testing.T, key string, l flow.Limits) {
	t.Helper()
	if _, err := s.flows.Put(context.Background(), "a", key, l); err != nil {
		t.Fatalf("put flow %s: %v", key, err)
	}
}

// TestFlowParallelismAcrossWorkers: two workers together never have more
// than the key's parallelism in flight; held events use no attempt; events
// without a key and of another key are not held up behind them.
func TestFlowParallelismAcrossWorkers(t *testing.T) {
	t.Parallel()
	s := setupFlows(t, 100*time.Millisecond)
	s.put(t, "slow", flow.Limits{Parallelism: 2})
	due := time.Now().Add(500 * time.Millisecond)
	limited := s.create(t, "lim", "slow", 30, due)
	free := s.create(t, "free", "", 10, due)
	other := s.create(t, "oth", "other", 10, due)

	waitUntil(t, 15*time.Second, "the limited events were not all delivered", func() bool {
		return s.dest.count("slow") == len(limited)
	})
	s.dest.mu.Lock()
	defer s.dest.mu.Unlock()
	if m := s.dest.maxIn["slow"]; m > 2 {
		t.Errorf("%d requests of the key in flight at once, parallelism 2", m)
	} else if m < 2 {
		t.Errorf("at most %d in flight: the parallelism of 2 was not used", m)
	}
	for _, id := range limited {
		if a := s.dest.attempts[id]; a != 1 {
			t.Errorf("%s arrived as attempt %d: being held used an attempt", id, a)
		}
	}
	// 30 requests of 100 ms two at a time take 1.5 s; the others are due at
	// the same instant and must not wait for them. The measure is the
	// limited key's own pace, which its parallelism fixes whatever the load:
	// its 20th request starts at least 900 ms after its first, and an event
	// held up behind the key would arrive after its 30th. (A wall-clock bound
	// of 600 ms after the due time failed once under a loaded CI: a keyed
	// event's permit takes a Lua round trip on miniredis, 25-50 ms each under
	// -race, and more when the machine is busy, while the key's pace does not
	// change.)
	slow := s.dest.starts["slow"]
	bound := slow[19]
	for _, id := range slices.Concat(free, other) {
		at, ok := s.dest.arrived[id]
		if !ok {
			t.Errorf("%s had not arrived when the limited key was done", id)
			continue
		}
		if at.After(bound) {
			t.Errorf("%s arrived %v after the limited key's first request, after its 20th: held up behind the key",
				id, at.Sub(slow[0]))
		}
	}
}

// TestFlowRateSpreads: rate 10/s spreads 12 events over about 1.1 s, never
// more than 10 starts in one second, none early.
func TestFlowRateSpreads(t *testing.T) {
	t.Parallel()
	s := setupFlows(t, 0)
	s.put(t, "r", flow.Limits{Rate: 10})
	due := time.Now().Add(200 * time.Millisecond)
	ids := s.create(t, "r", "r", 12, due)
	waitUntil(t, 10*time.Second, "the rate-limited events were not all delivered", func() bool {
		return s.dest.count("r") == len(ids)
	})
	s.dest.mu.Lock()
	starts := slices.Clone(s.dest.starts["r"])
	s.dest.mu.Unlock()
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	if starts[0].Before(due) {
		t.Errorf("first start %v before the due time", due.Sub(starts[0]))
	}
	if span := starts[len(starts)-1].Sub(starts[0]); span < 1000*time.Millisecond {
		t.Errorf("12 starts at 10/s spread over %v, want about 1.1 s", span)
	}
	for i := range starts {
		n := 0
		for j := i; j < len(starts) && starts[j].Sub(starts[i]) < time.Second; j++ {
			n++
		}
		// Starts are granted 100 ms apart on Redis's clock; the requests'
		// own travel may bunch two a few ms closer at the destination.
		if n > 11 {
			t.Errorf("%d starts within one second from start %d, rate 10/s", n, i)
		}
	}
}

// TestFlowPausedKeyWaits: a paused key's events stay PENDING with no
// attempt while others go; after resume they go.
func TestFlowPausedKeyWaits(t *testing.T) {
	t.Parallel()
	s := setupFlows(t, 0)
	ctx := context.Background()
	s.put(t, "p", flow.Limits{Paused: true})
	now := time.Now()
	var held []string
	for i := range 5 {
		held = append(held, s.create(t, "p"+strconv.Itoa(i)+"-", "p", 1, now.Add(time.Duration(5-i)*10*time.Millisecond))...)
	}
	s.create(t, "f", "", 1, now)
	waitUntil(t, 5*time.Second, "the unpaused event was not delivered", func() bool { return s.dest.count("") == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := s.dest.count("p"); n != 0 {
		t.Fatalf("%d events of the paused key delivered", n)
	}
	for _, id := range held {
		ev, err := s.st.Get(ctx, "a", id)
		if err != nil || ev.Status != scheduler.StatusPending || ev.Attempts != 0 {
			t.Fatalf("%s while paused: %+v %v; want PENDING with no attempt", id, ev, err)
		}
	}
	if st, _ := s.flows.Get(ctx, "a", "p"); st.Held != 5 {
		t.Errorf("paused key holds %d, want 5", st.Held)
	}
	s.put(t, "p", flow.Limits{})
	waitUntil(t, 5*time.Second, "the resumed key's events were not delivered", func() bool { return s.dest.count("p") == 5 })
	// Every one at its first attempt: being paused used none. (Due order
	// after a resume is per shard, as claims go: the store's tests check it.)
	s.dest.mu.Lock()
	defer s.dest.mu.Unlock()
	for _, id := range held {
		if s.dest.attempts[id] != 1 {
			t.Errorf("%s arrived as attempt %d", id, s.dest.attempts[id])
		}
	}
}

// stuckReleases is a flow gate whose permit releases wait until open is
// closed (a slow round trip); everything else is the store's.
type stuckReleases struct {
	*redisstore.Store
	open chan struct{}
}

func (g stuckReleases) PumpFlows(ctx context.Context, reqs []flow.Pump, now time.Time) []flow.Pumped {
	if slices.ContainsFunc(reqs, func(r flow.Pump) bool { return r.Release != "" }) {
		select {
		case <-g.open:
		case <-ctx.Done():
		}
	}
	return g.Store.PumpFlows(ctx, reqs, now)
}

// TestFlowReleaseFreesSlotFirst: a worker with one slot delivers the next
// event while the previous one's permit is still being released: the
// release's round trip does not hold the delivery slot.
func TestFlowReleaseFreesSlotFirst(t *testing.T) {
	t.Parallel()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "fr", Shards: 2})
	sched := scheduler.New(st, scheduler.Config{})
	if _, err := flow.New(st).Put(context.Background(), "a", "k", flow.Limits{Parallelism: 10}); err != nil {
		t.Fatal(err)
	}
	dest := newFlowDest(t, 0)
	gate := stuckReleases{Store: st, open: make(chan struct{})}
	w := worker.New(st, delivery.New(delivery.Config{}), worker.Config{
		ID: "fr", Concurrency: 1, PollInterval: 20 * time.Millisecond, ReapInterval: 50 * time.Millisecond,
		ShutdownTimeout: time.Second, Flows: gate, Logger: slog.New(slog.NewJSONHandler(&testproc.Buffer{}, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var once sync.Once
	unstick := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(unstick) // runs first: the stuck releases end before the worker stops

	due := time.Now()
	for i := range 3 {
		ev := &scheduler.Event{App: "a", ID: "e" + strconv.Itoa(i), URL: dest.srv.URL + "/?key=k", DueAt: due,
			FlowKey: "k", MaxAttempts: 1}
		if _, created, err := sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil || !created {
			t.Fatalf("create %s: %v %v", ev.ID, created, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); dest.count("k") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of 3 with every permit release stuck: the release holds the worker's one slot",
				dest.count("k"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The permits are still out until the releases go through.
	if fs, err := flow.New(st).Get(context.Background(), "a", "k"); err != nil || fs.InFlight != 3 {
		t.Errorf("in flight while the releases are stuck = %+v, %v; want 3", fs, err)
	}
	unstick()
	for deadline := time.Now().Add(5 * time.Second); ; {
		fs, err := flow.New(st).Get(context.Background(), "a", "k")
		if err == nil && fs.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("permits not released: %+v, %v", fs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
