package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
	"github.com/cassata/cassata/web"
)

// adminPassword is the UI password of every system under test.
const adminPassword = "s3cret-pass"

// system is the whole of Cassata in one process, as `cassata dev` wires it
// but on a real redis-server: API and UI on one engine, a worker delivering
// to a local destination, an archiver writing to SQLite.
type system struct {
	t       testing.TB
	sched   *scheduler.Scheduler
	subs    *topic.Subscriptions
	msgs    *topic.Messages
	store   *redisstore.Store
	archive *archive.Store
	// dest answers 200 on /ok, 500 on /fail (retryable: the event ends
	// SERVICE_UNAVAILABLE) and 400 on /reject (not retryable: FAILED).
	dest *httptest.Server
	// srv serves the API and the UI on 127.0.0.1.
	srv *httptest.Server
	// timings records how long the server took for each UI request.
	timings *timings

	stopWorker func()
	// schedules keeps recurring events; the worker chains their occurrences.
	schedules *schedule.Schedules
	// flows keeps flow keys' limits and applications' pauses.
	flows *flow.Flows
}

// archiveEnv=mysql puts the archive on a MariaDB that the tests start
// (internal/mysqltest) instead of a SQLite file, e.g. for the load
// times of BenchmarkEventsPage on the production database.
const archiveEnv = "CASSATA_E2E_ARCHIVE"

// setup starts a system for one test. Everything stops when the test ends.
func setup(t testing.TB) *system {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	rs := redistest.Start(t)
	store, err := redisstore.New(ctx, rs.Client(), redisstore.Config{Shards: 4, WakeHorizon: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "archive.db")
	if os.Getenv(archiveEnv) == "mysql" {
		dsn = mysqltest.NewDatabase(t)
	}
	arch, err := archive.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	t.Cleanup(func() { _ = arch.Close() })
	if err := arch.Migrate(ctx); err != nil {
		t.Fatalf("archive.Migrate: %v", err)
	}
	sched := scheduler.New(store, scheduler.Config{Archive: arch})
	subs := topic.NewSubscriptions(store, topic.SubscriptionsConfig{
		CompileFilter: func(src string) error { _, err := topic.CompileFilter(src); return err }})
	msgs, err := topic.NewMessages(store, sched, topic.MessagesConfig{})
	if err != nil {
		t.Fatalf("topic.NewMessages: %v", err)
	}

	schedules := schedule.New(store, store, schedule.Config{Events: sched, Log: log})
	flows := flow.New(store)

	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "ok")
		case "/fail":
			http.Error(w, "destination is broken", http.StatusInternalServerError)
		case "/reject":
			http.Error(w, "destination rejects this", http.StatusBadRequest)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(dest.Close)

	s := &system{t: t, sched: sched, subs: subs, msgs: msgs, schedules: schedules, flows: flows, store: store, archive: arch, dest: dest, timings: &timings{}}

	// Worker and archiver, each stoppable on its own: tests that must see a
	// status stay put after a click stop the worker first.
	w := worker.New(store, delivery.New(delivery.Config{}), worker.Config{
		ID: "e2e-worker", Concurrency: 8, PollInterval: 50 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: log, Recurrence: schedules, Flows: store,
		Fanout: &worker.Fanout{Store: store, Subscribers: subs, Events: sched},
	})
	s.stopWorker = s.run(func(ctx context.Context) { _ = w.Run(ctx) })
	archiver := worker.NewArchiver(store, arch, worker.ArchiverConfig{
		Consumer: w.ID(), PollInterval: 20 * time.Millisecond, Logger: log,
	})
	s.run(func(ctx context.Context) { _ = archiver.Run(ctx) })

	engine := api.New(api.Config{Scheduler: sched, Logger: log, Messages: msgs, Subscriptions: subs, Schedules: schedules, Flows: flows}).Engine(nil)
	ui, err := web.New(web.Config{Backend: sched, Password: adminPassword, Logger: log,
		Topics: &web.Topics{Subscriptions: subs, Messages: msgs}, Schedules: schedules, Flows: flows})
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	ui.Mount(engine)
	s.srv = httptest.NewServer(s.timings.wrap(engine))
	t.Cleanup(s.srv.Close)
	return s
}

// run runs fn until the test ends or the returned func is called.
func (s *system) run(fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	s.t.Cleanup(stop)
	return stop
}

// create schedules an event for app/id to the destination's path.
func (s *system) create(app, id, path string, due time.Time, maxAttempts int) *scheduler.Event {
	s.t.Helper()
	ev, _, err := s.sched.Create(context.Background(), &scheduler.Event{
		App: app, ID: id, URL: s.dest.URL + path, Method: http.MethodPost,
		Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"order":4711}`),
		DueAt: due, MaxAttempts: maxAttempts,
	}, scheduler.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create %s/%s: %v", app, id, err)
	}
	return ev
}

// status returns an event's status as the scheduler sees it.
func (s *system) status(app, id string) scheduler.Status {
	s.t.Helper()
	ev, err := s.sched.Get(context.Background(), app, id)
	if err != nil {
		s.t.Fatalf("get %s/%s: %v", app, id, err)
	}
	return ev.Status
}

// waitFor polls cond until it returns "" (done) or the timeout passes.
func (s *system) waitFor(timeout time.Duration, cond func() string) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStatus waits until the scheduler reports the event in status.
func (s *system) waitStatus(app, id string, want scheduler.Status) {
	s.t.Helper()
	s.waitFor(10*time.Second, func() string {
		if got := s.status(app, id); got != want {
			return fmt.Sprintf("%s/%s is %s, want %s", app, id, got, want)
		}
		return ""
	})
}

// waitSearchable waits until a search (which reads the archive) finds
// exactly n events: the UI lists only what the archiver has written.
func (s *system) waitSearchable(q scheduler.SearchQuery, n int) {
	s.t.Helper()
	s.waitFor(10*time.Second, func() string {
		page, err := s.sched.Search(context.Background(), q)
		if err != nil {
			return err.Error()
		}
		if len(page.Events) != n {
			return fmt.Sprintf("search %+v finds %d events, want %d", q, len(page.Events), n)
		}
		return ""
	})
}

// timings records server-side durations of requests by path.
type timings struct {
	mu   sync.Mutex
	last map[string]time.Duration
}

func (tm *timings) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		tm.mu.Lock()
		defer tm.mu.Unlock()
		if tm.last == nil {
			tm.last = map[string]time.Duration{}
		}
		tm.last[r.URL.Path] = d
	})
}

// lastFor returns the duration of the latest request for path.
func (tm *timings) lastFor(path string) time.Duration {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.last[path]
}
