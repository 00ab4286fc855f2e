package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// testApp is the application every test schedules under.
const testApp = "it"

// arrival is one request the destination received.
type arrival struct {
	At      time.Time // wall clock when the handler started
	App     string
	ID      string
	Attempt int
	Method  string
	Path    string
	Host    string
	Header  http.Header
	Body    []byte
}

// handlerFunc answers one request; the arrival is already recorded.
type handlerFunc func(w http.ResponseWriter, r *http.Request, a arrival)

// ok answers 200.
func ok(w http.ResponseWriter, _ *http.Request, _ arrival) {
	_, _ = io.WriteString(w, "ok")
}

// destination is an HTTP server on 127.0.0.1 that records every arrival.
type destination struct {
	srv    *httptest.Server
	handle handlerFunc

	mu       sync.Mutex
	arrivals []arrival
	changed  chan struct{} // closed and replaced on every arrival
}

func newDestination(t testing.TB, handle handlerFunc) *destination {
	t.Helper()
	if handle == nil {
		handle = ok
	}
	d := &destination{handle: handle, changed: make(chan struct{})}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *destination) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	n, _ := strconv.Atoi(r.Header.Get("Cassata-Attempt"))
	a := arrival{
		At: at, App: r.Header.Get("Cassata-Application-Id"), ID: r.Header.Get("Cassata-Event-Id"), Attempt: n,
		Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body,
	}
	d.mu.Lock()
	d.arrivals = append(d.arrivals, a)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	d.handle(w, r, a)
}

// URL returns the destination's base URL plus path.
func (d *destination) URL(path string) string { return d.srv.URL + path }

// all returns a copy of every arrival so far.
func (d *destination) all() []arrival {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]arrival(nil), d.arrivals...)
}

// of returns the arrivals of one event id.
func (d *destination) of(id string) []arrival {
	var out []arrival
	for _, a := range d.all() {
		if a.ID == id {
			out = append(out, a)
		}
	}
	return out
}

// byID groups every arrival by event id.
func (d *destination) byID() map[string][]arrival {
	out := map[string][]arrival{}
	for _, a := range d.all() {
		out[a.ID] = append(out[a.ID], a)
	}
	return out
}

// waitArrivals waits until the event has at least n arrivals and returns them.
func (d *destination) waitArrivals(t testing.TB, id string, n int, timeout time.Duration) []arrival {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		if got := d.of(id); len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("event %s: %d arrivals after %s, want %d", id, len(d.of(id)), timeout, n)
		}
	}
}

// env is one test's world: its own redis-server, store, scheduler and destination.
type env struct {
	t     testing.TB
	redis *redistest.Server
	store *redisstore.Store
	sched *scheduler.Scheduler
	dest  *destination
	log   *slog.Logger
	ns    string
}

// setup starts a redis-server (with opts) and a destination answering with
// handle (nil: 200).
func setup(t testing.TB, handle handlerFunc, opts ...redistest.Option) *env {
	t.Helper()
	e := &env{t: t, log: testLogger(t), ns: "it"}
	e.redis = redistest.Start(t, opts...)
	e.dest = newDestination(t, handle)
	e.store = e.newStore()
	e.sched = scheduler.New(e.store, scheduler.Config{})
	return e
}

// newStore returns a store on its own client, as another process would have.
func (e *env) newStore() *redisstore.Store {
	e.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr(), PoolSize: 64})
	e.t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: e.ns})
	if err != nil {
		e.t.Fatalf("redisstore.New: %v", err)
	}
	return st
}

// runningWorker is a worker running in a goroutine.
type runningWorker struct {
	*worker.Worker
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	took   time.Duration
}

// stop cancels the worker and waits for Run to return; it reports how long that took.
func (r *runningWorker) stop() time.Duration {
	r.once.Do(func() {
		start := time.Now()
		r.cancel()
		<-r.done
		r.took = time.Since(start)
	})
	return r.took
}

// startWorker runs a worker on st (nil: the env's store) with short test
// intervals for every zero field. It stops when the test ends.
func (e *env) startWorker(st *redisstore.Store, cfg worker.Config) *runningWorker {
	e.t.Helper()
	if st == nil {
		st = e.store
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = 100 * time.Millisecond
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = e.log
	}
	w := worker.New(st, delivery.New(delivery.Config{}), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWorker{Worker: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("worker %s: Run: %v", w.ID(), err)
		}
	}()
	e.t.Cleanup(func() { r.stop() })
	return r
}

// event returns a new event for the destination, due now, under testApp.
func (e *env) event(id string) *scheduler.Event {
	return &scheduler.Event{App: testApp, ID: id, URL: e.dest.URL("/hook/" + id), DueAt: time.Now()}
}

// schedule creates an event and fails the test when it is not created.
func (e *env) schedule(ev *scheduler.Event) *scheduler.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, created, err := e.sched.Create(ctx, ev, scheduler.CreateOptions{})
	if err != nil || !created {
		e.t.Fatalf("create %s: created=%v err=%v", ev.ID, created, err)
	}
	return got
}

// scheduleAll creates events from several goroutines at once.
func (e *env) scheduleAll(evs []*scheduler.Event) {
	e.t.Helper()
	const parallel = 16
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	next := make(chan *scheduler.Event)
	for range parallel {
		wg.Go(func() {
			for ev := range next {
				if _, created, err := e.sched.Create(ctx, ev, scheduler.CreateOptions{}); err != nil || !created {
					errs <- fmt.Errorf("create %s: created=%v err=%v", ev.ID, created, err)
				}
			}
		})
	}
	for _, ev := range evs {
		next <- ev
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
}

// get returns the live event.
func (e *env) get(id string) *scheduler.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := e.store.Get(ctx, testApp, id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return ev
}

// waitStatus waits until the event is in status and returns it.
func (e *env) waitStatus(id string, status scheduler.Status, timeout time.Duration) *scheduler.Event {
	e.t.Helper()
	var ev *scheduler.Event
	waitFor(e.t, timeout, func() string {
		ev = e.get(id)
		if ev.Status == status {
			return ""
		}
		return fmt.Sprintf("event %s is %s (attempts %d, last error %q), want %s", id, ev.Status, ev.Attempts, ev.LastError, status)
	})
	return ev
}

// waitFinal waits until the event reaches a final status and returns it.
func (e *env) waitFinal(id string, timeout time.Duration) *scheduler.Event {
	e.t.Helper()
	var ev *scheduler.Event
	waitFor(e.t, timeout, func() string {
		ev = e.get(id)
		if ev.Status.Final() {
			return ""
		}
		return fmt.Sprintf("event %s is still %s (attempts %d)", id, ev.Status, ev.Attempts)
	})
	return ev
}

// assertNothingInFlight checks that no shard holds a lease and that no
// event says PROCESSING.
func (e *env) assertNothingInFlight() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := e.redis.Client()
	for sh := range e.store.Shards() {
		prefix := fmt.Sprintf("%s:{%s:%d}", e.ns, e.ns, sh)
		if n, err := rdb.ZCard(ctx, prefix+":lease").Result(); err != nil || n != 0 {
			e.t.Errorf("shard %d: %d leases left (err %v)", sh, n, err)
		}
	}
	evs, err := rdb.Keys(ctx, e.ns+":{*}:ev:*").Result()
	if err != nil {
		e.t.Fatalf("keys: %v", err)
	}
	for _, k := range evs {
		_, m, _ := strings.Cut(k, ":ev:")
		app, id, _ := strings.Cut(m, "/")
		ev, err := e.store.Get(ctx, app, id)
		if err != nil {
			e.t.Errorf("read %s: %v", k, err)
			continue
		}
		if ev.Status == scheduler.StatusProcessing {
			e.t.Errorf("%s is still PROCESSING", k)
		}
	}
}

// waitFor polls cond until it returns "" or timeout passes; then it fails
// with cond's last explanation.
func waitFor(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger sends warnings and errors to the test log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first: runs after everything else
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// blockUntil waits for the request's end (the client gave up) or release.
func blockUntil(r *http.Request, release <-chan struct{}) error {
	select {
	case <-r.Context().Done():
		return errors.New("client went away")
	case <-release:
		return nil
	}
}
