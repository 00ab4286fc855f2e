package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/store/redisstore"
)

// The fleet tests run Cassata as it is deployed: several `cassata server`
// and `cassata worker` processes on one Redis or on a Redis Cluster. A
// client schedules many events over HTTP through every server, all due in
// a short window, and a destination in the test process checks that each
// arrives exactly once and never early, and measures how late.

// fleetOptions configures startFleet.
type fleetOptions struct {
	// RedisURL is CASSATA_REDIS_URL: a redis:// URL, or the comma-separated
	// seeds of a cluster when Cluster is set.
	RedisURL string
	Cluster  bool
	// Namespace is CASSATA_NAMESPACE; unique per test.
	Namespace string
	Servers   int
	Workers   int
	// Env is added to every process's environment, after the defaults.
	Env []string
}

// fleetProc is one cassata process of a fleet.
type fleetProc struct {
	name string // "server-1", "worker-3"
	*testproc.Proc
	addr string // servers: the host:port it listens on
}

// fleet is a set of running cassata processes.
type fleet struct {
	opts    fleetOptions
	servers []*fleetProc
	workers []*fleetProc
	client  *http.Client
	bin     string   // the cassata binary
	env     []string // every process's environment, before opts.Env
	dir     string   // the workers' archives
}

// startFleet builds cmd/cassata (once) and starts opts.Servers servers (each
// on a free loopback port) and opts.Workers workers (each with its own
// SQLite archive), and waits until every server answers /readyz and every
// worker has started its claim loop. Every process is killed when the test
// ends; when the test failed, the tail of each one's output is logged.
func startFleet(t *testing.T, opts fleetOptions) *fleet {
	t.Helper()
	bin, err := testbin.Shared()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{opts: opts, client: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
	}}
	t.Cleanup(func() {
		for _, p := range f.all() {
			p.Kill()
		}
		if t.Failed() {
			for _, p := range f.all() {
				t.Logf("%s (pid %d, %s) output, tail:\n%s", p.name, p.Pid(), p.State(), p.Tail(40))
			}
		}
		f.client.CloseIdleConnections()
	})
	env := append(os.Environ(),
		"CASSATA_REDIS_URL="+opts.RedisURL,
		"CASSATA_REDIS_CLUSTER="+strconv.FormatBool(opts.Cluster),
		"CASSATA_NAMESPACE="+opts.Namespace,
		"CASSATA_AUTH=off",
		"CASSATA_BLOCK_PRIVATE=off",
		"CASSATA_LOG_LEVEL=info",
	)
	f.bin, f.env, f.dir = bin, env, t.TempDir()
	for i := range opts.Servers {
		f.servers = append(f.servers, f.startServer(t, bin, fmt.Sprintf("server-%d", i+1), env))
	}
	for range opts.Workers {
		f.startWorker(t)
	}

	for _, p := range f.servers {
		waitFor(t, 30*time.Second, func() string {
			if !p.Running() {
				t.Fatalf("%s exited (%s) before it was ready:\n%s", p.name, p.State(), p.Tail(40))
			}
			resp, err := f.client.Get("http://" + p.addr + "/readyz")
			if err != nil {
				return fmt.Sprintf("%s /readyz: %v", p.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Sprintf("%s /readyz: %d %s", p.name, resp.StatusCode, body)
			}
			return ""
		})
	}
	for _, p := range f.workers {
		f.waitWorker(t, p)
	}
	return f
}

// startWorker starts one more worker process, with its own SQLite archive.
func (f *fleet) startWorker(t *testing.T) *fleetProc {
	t.Helper()
	name := fmt.Sprintf("worker-%d", len(f.workers)+1)
	p := f.start(t, f.bin, name, append(slices.Clone(f.env),
		"CASSATA_ARCHIVE_DSN=sqlite://"+filepath.Join(f.dir, name+".db")), "worker", "--listen", "127.0.0.1:0")
	f.workers = append(f.workers, p)
	return p
}

// waitWorker waits until a worker process has started its claim loop.
func (f *fleet) waitWorker(t *testing.T, p *fleetProc) {
	t.Helper()
	waitFor(t, 30*time.Second, func() string {
		if !p.Running() {
			t.Fatalf("%s exited (%s) before it started:\n%s", p.name, p.State(), p.Tail(40))
		}
		if !strings.Contains(p.Output(), `"msg":"worker started"`) {
			return p.name + " has not started its worker yet"
		}
		return ""
	})
}

func (f *fleet) all() []*fleetProc { return append(slices.Clone(f.servers), f.workers...) }

// startServer starts a server on a free port given as CASSATA_LISTEN,
// picking another port when the chosen one was taken in between.
func (f *fleet) startServer(t *testing.T, bin, name string, env []string) *fleetProc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port, err := testproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := testproc.LoopbackAddr(port)
		p := f.start(t, bin, name, append(slices.Clone(env), "CASSATA_LISTEN="+addr), "server")
		p.addr = addr
		// The server logs "listening" once it holds the port, or exits.
		deadline := time.Now().Add(30 * time.Second)
		for p.Running() && !strings.Contains(p.Output(), `"msg":"listening"`) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Running() || attempt == 2 || !strings.Contains(p.Output(), "address already in use") {
			return p
		}
	}
}

func (f *fleet) start(t *testing.T, bin, name string, env []string, args ...string) *fleetProc {
	t.Helper()
	// Not StartT: the fleet's own cleanup kills every process first and
	// then logs only the tail of each one's output.
	proc, err := testproc.Start(testproc.Config{Name: name, Path: bin, Args: args, Env: append(env, f.opts.Env...)})
	if err != nil {
		t.Fatal(err)
	}
	return &fleetProc{name: name, Proc: proc}
}

// fleetEvent is one event to schedule through the v1 API.
type fleetEvent struct {
	App string `json:"app"`
	ID  string `json:"id"`
	URL string `json:"url"`
	At  string `json:"at,omitempty"`
}

// scheduleBatches sends events to POST /v1/events/batch in batches of
// batch, from senders goroutines, batch i through server i mod servers, and
// returns an error unless every event was created (201).
func (f *fleet) scheduleBatches(ctx context.Context, evs []fleetEvent, batch, senders int) error {
	type job struct {
		n    int
		part []fleetEvent
	}
	jobs := make(chan job)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for j := range jobs {
				srv := f.servers[j.n%len(f.servers)]
				if err := f.postBatch(ctx, srv, j.part); err != nil {
					errc <- fmt.Errorf("batch %d through %s: %w", j.n, srv.name, err)
					return
				}
			}
		})
	}
	var err error
send:
	for n := 0; n*batch < len(evs); n++ {
		select {
		case jobs <- job{n: n, part: evs[n*batch : min(len(evs), (n+1)*batch)]}:
		case err = <-errc:
			break send
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	return errors.Join(err, <-errc)
}

func (f *fleet) postBatch(ctx context.Context, srv *fleetProc, evs []fleetEvent) error {
	body, err := json.Marshal(map[string]any{"events": evs})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.addr+"/v1/events/batch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, raw)
	}
	var out struct {
		Results []struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	if len(out.Results) != len(evs) {
		return fmt.Errorf("%d results for %d events", len(out.Results), len(evs))
	}
	for i, r := range out.Results {
		if r.Status != http.StatusCreated {
			return fmt.Errorf("event %s: %d %s", evs[i].ID, r.Status, r.Error)
		}
	}
	return nil
}

// checkRunning fails the test for every process that exited.
func (f *fleet) checkRunning(t *testing.T) {
	t.Helper()
	for _, p := range f.all() {
		if !p.Running() {
			t.Errorf("%s exited during the test (%s)", p.name, p.State())
		}
	}
}

// fleetSink is the destination of a fleet test. Event ids are
// "<prefix><index>"; it counts arrivals per index and keeps the first
// arrival's time, lock-free, so that it keeps up with the workers.
type fleetSink struct {
	srv    *httptest.Server
	prefix string
	app    string
	count  []atomic.Int32
	first  []atomic.Int64 // Unix ns of the first arrival
	unique atomic.Int64   // indexes that arrived at least once
	total  atomic.Int64
	last   atomic.Int64 // Unix ns of the latest arrival
	other  atomic.Int64 // arrivals of other ids (warm-up)
	bad    atomic.Int64 // arrivals without the expected headers
	done   chan struct{}
}

func newFleetSink(t *testing.T, app, prefix string, n int) *fleetSink {
	s := &fleetSink{prefix: prefix, app: app, count: make([]atomic.Int32, n), first: make([]atomic.Int64, n),
		done: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fleetSink) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now().UnixNano()
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
	id := r.Header.Get("Cassata-Event-Id")
	rest, ok := strings.CutPrefix(id, s.prefix)
	if !ok {
		s.other.Add(1)
		return
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= len(s.count) || r.Header.Get("Cassata-Application-Id") != s.app {
		s.bad.Add(1)
		return
	}
	s.total.Add(1)
	for {
		l := s.last.Load()
		if at <= l || s.last.CompareAndSwap(l, at) {
			break
		}
	}
	if s.count[i].Add(1) == 1 {
		s.first[i].Store(at)
		if s.unique.Add(1) == int64(len(s.count)) {
			close(s.done)
		}
	}
}

// fleetRun is what runFleet measured.
type fleetRun struct {
	Events     int
	Schedule   time.Duration // creating every event over HTTP
	Slack      time.Duration // from the end of scheduling to the first due time
	Span       time.Duration // from the first due time to the last arrival
	PerSecond  float64       // Events / Span
	P50, P99   time.Duration // lateness: first arrival minus due time
	Max        time.Duration
	Duplicates int
	Early      int
	Missing    int
	Total      time.Duration // from the start of the fleet to the last arrival
}

// fleetRedis is the Redis a fleet runs on.
type fleetRedis struct {
	URL     string // CASSATA_REDIS_URL
	Cluster bool
	Client  redis.UniversalClient // for the test's own checks
	Started time.Time             // when the test began starting it
}

// runFleet starts a fleet of 2 servers and 3 workers on the given Redis,
// schedules n events due within window through both servers, waits for
// them and checks each arrived exactly once and not before its due time.
func runFleet(t *testing.T, r fleetRedis, n int, window time.Duration) fleetRun {
	t.Helper()
	redisURL, cluster, rdb := r.URL, r.Cluster, r.Client
	const (
		app     = "fleet"
		batch   = 500
		senders = 6
		warmN   = 8000 // measured warm-up round
	)
	ns := "fleet-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	sink := newFleetSink(t, app, "ev-", n)
	f := startFleet(t, fleetOptions{RedisURL: redisURL, Cluster: cluster, Namespace: ns, Servers: 2, Workers: 3})
	ready := time.Since(r.Started)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Warm-up in two rounds: the first, due at once, shows the whole fleet
	// works and opens the connections; the second, due shortly after, so
	// its deliveries do not compete with its creation, measures how fast
	// this machine creates events right now (under the race detector or
	// beside other test packages it is several times slower), to choose how
	// far ahead the measured events must be due.
	warmed := 0
	warmUp := func(round, count int, delay time.Duration) time.Duration {
		t.Helper()
		evs := make([]fleetEvent, count)
		at := apiTime(time.Now().Add(delay))
		for i := range evs {
			evs[i] = fleetEvent{App: app, ID: fmt.Sprintf("warm-%d-%d", round, i), URL: sink.srv.URL + "/hook", At: at}
		}
		start := time.Now()
		if err := f.scheduleBatches(ctx, evs, batch, senders); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		took := time.Since(start)
		warmed += count
		waitFor(t, 60*time.Second, func() string {
			if got := sink.other.Load(); got < int64(warmed) {
				return fmt.Sprintf("warm-up round %d: %d of %d delivered", round, got, warmed)
			}
			return ""
		})
		return took
	}
	warmUp(1, warmN/4, 0)
	warmTook := warmUp(2, warmN, 1500*time.Millisecond)

	// Due times: uniformly random within the window, which starts once the
	// creation should be over at the warm-up's rate, with a margin: the
	// rate of a few batches varies by half either way from run to run.
	perEvent := warmTook / warmN
	lead := max(3*time.Second, time.Second+2*perEvent*time.Duration(n))
	firstDue := time.Now().Add(lead).Truncate(time.Millisecond)
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	due := make([]int64, n) // Unix ms
	evs := make([]fleetEvent, n)
	for i := range evs {
		d := firstDue.Add(time.Duration(rng.Int64N(int64(window/time.Millisecond))) * time.Millisecond)
		due[i] = d.UnixMilli()
		evs[i] = fleetEvent{App: app, ID: "ev-" + strconv.Itoa(i), URL: sink.srv.URL + "/hook", At: apiTime(d)}
	}
	minDue := slices.Min(due)
	cpuBefore := f.cpu(ctx, rdb)
	start := time.Now()
	if err := f.scheduleBatches(ctx, evs, batch, senders); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	scheduled := time.Now()
	run := fleetRun{Events: n, Schedule: scheduled.Sub(start), Slack: time.UnixMilli(minDue).Sub(scheduled)}
	t.Logf("warm-up: %d events created in %s (%.0f/s); measured run: %d events created in %s (%.0f/s) through %d servers, lead %s, first due %s after scheduling ended",
		warmN, warmTook.Round(time.Millisecond), float64(warmN)/warmTook.Seconds(), n, run.Schedule.Round(time.Millisecond),
		float64(n)/run.Schedule.Seconds(), len(f.servers), lead.Round(time.Millisecond), run.Slack.Round(time.Millisecond))
	if run.Slack < 0 {
		t.Logf("note: scheduling overran the first due time by %s; the first deliveries overlapped the creates", -run.Slack)
	}

	lastDue := time.UnixMilli(slices.Max(due))
	deadline := time.After(time.Until(lastDue) + 60*time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-sink.done:
			break wait
		case <-tick.C:
			// A process that died would only show as a timeout a minute later.
			for _, p := range f.all() {
				if !p.Running() {
					t.Fatalf("%s exited (%s) with %d of %d events delivered", p.name, p.State(), sink.unique.Load(), n)
				}
			}
		case <-deadline:
			t.Fatalf("%d of %d events delivered %s after the last due time", sink.unique.Load(), n, time.Since(lastDue).Round(time.Millisecond))
		}
	}
	// Give a duplicate a moment to show, then check Redis holds nothing live.
	time.Sleep(500 * time.Millisecond)
	st, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		live, err := st.Live(ctx, time.Now().Add(time.Hour))
		if err != nil {
			return err.Error()
		}
		if live.Pending != 0 || live.Processing != 0 {
			return fmt.Sprintf("after every delivery Redis still has %+v", live)
		}
		return ""
	})
	f.checkRunning(t)
	t.Logf("CPU time of the measured run (scheduling to the end): %s", f.cpu(ctx, rdb).since(cpuBefore))

	lateness := make([]time.Duration, 0, n)
	for i := range n {
		c := int(sink.count[i].Load())
		if c == 0 {
			run.Missing++
			continue
		}
		run.Duplicates += c - 1
		late := time.Duration(sink.first[i].Load() - due[i]*int64(time.Millisecond))
		if late < 0 {
			run.Early++
			if run.Early <= 5 {
				t.Errorf("ev-%d arrived %s before its due time", i, -late)
			}
		}
		lateness = append(lateness, late)
	}
	slices.Sort(lateness)
	last := time.Unix(0, sink.last.Load())
	run.Span = last.Sub(time.UnixMilli(minDue))
	run.PerSecond = float64(n) / run.Span.Seconds()
	run.P50 = lateness[len(lateness)*50/100]
	run.P99 = lateness[len(lateness)*99/100]
	run.Max = lateness[len(lateness)-1]
	run.Total = last.Sub(r.Started)
	t.Logf("fleet of %d servers and %d workers on %s: %d events due within %s delivered at %.0f/s (first due to last arrival %s); lateness p50 %s, p99 %s, max %s; duplicates %d, early %d, missing %d; Redis and fleet ready in %s, total %s",
		len(f.servers), len(f.workers), map[bool]string{false: "one Redis", true: "a Redis Cluster"}[cluster], n, window,
		run.PerSecond, run.Span.Round(time.Millisecond), run.P50.Round(time.Millisecond), run.P99.Round(time.Millisecond),
		run.Max.Round(time.Millisecond), run.Duplicates, run.Early, run.Missing, ready.Round(time.Millisecond), run.Total.Round(time.Millisecond))

	if run.Missing != 0 {
		t.Errorf("%d events never arrived", run.Missing)
	}
	if run.Duplicates != 0 {
		t.Errorf("%d duplicate deliveries without any fault", run.Duplicates)
	}
	if run.Early != 0 {
		t.Errorf("%d events arrived before their due time", run.Early)
	}
	if b := sink.bad.Load(); b != 0 {
		t.Errorf("%d arrivals without the expected Cassata-Application-Id / Cassata-Event-Id", b)
	}
	if got := sink.total.Load(); got != int64(n)+int64(run.Duplicates) {
		t.Errorf("%d arrivals counted, want %d", got, n)
	}
	return run
}

// fleetCPU is the CPU time (user + system) used so far by each process of
// a fleet, by Redis (every master) and by the test process.
type fleetCPU struct {
	procs map[string]time.Duration
	redis time.Duration
	test  time.Duration
}

func (f *fleet) cpu(ctx context.Context, rdb redis.UniversalClient) fleetCPU {
	c := fleetCPU{procs: map[string]time.Duration{}}
	for _, p := range f.all() {
		c.procs[p.name] = procCPU(p.Pid())
	}
	var mu sync.Mutex
	add := func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		for line := range strings.Lines(info) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_cpu_user" || k == "used_cpu_sys" {
				sec, _ := strconv.ParseFloat(v, 64)
				mu.Lock()
				c.redis += time.Duration(sec * float64(time.Second))
				mu.Unlock()
			}
		}
		return nil
	}
	switch r := rdb.(type) {
	case *redis.ClusterClient:
		_ = r.ForEachMaster(ctx, add)
	case *redis.Client:
		_ = add(ctx, r)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.test = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return c
}

// since formats the CPU used between before and c.
func (c fleetCPU) since(before fleetCPU) string {
	var parts []string
	var servers, workers time.Duration
	for name, d := range c.procs {
		d -= before.procs[name]
		if strings.HasPrefix(name, "server") {
			servers += d
		} else {
			workers += d
		}
	}
	parts = append(parts, fmt.Sprintf("servers %.1fs", servers.Seconds()), fmt.Sprintf("workers %.1fs", workers.Seconds()),
		fmt.Sprintf("redis %.1fs", (c.redis-before.redis).Seconds()),
		fmt.Sprintf("test process (client and destination) %.1fs", (c.test-before.test).Seconds()))
	return strings.Join(parts, ", ")
}

// procCPU reads a process's user + system time from /proc (Linux; zero
// elsewhere), in clock ticks of 10ms.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces, so split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// apiTime formats t as the v1 API's RFC 3339 with milliseconds, UTC.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

const (
	fleetEvents = 50_000
	fleetWindow = 5 * time.Second
)

// TestFleetSingleRedis: 2 servers and 3 workers on one redis-server
// deliver 50,000 events due within 5 s, each once and never early.
func TestFleetSingleRedis(t *testing.T) {
	started := time.Now()
	srv := redistest.Start(t)
	runFleet(t, fleetRedis{URL: srv.URL(), Client: srv.Client(), Started: started}, fleetEvents, fleetWindow)
}

// TestFleetCluster: the same on a 3-master Redis Cluster, the processes
// connected through the seeds of every master.
func TestFleetCluster(t *testing.T) {
	started := time.Now()
	c := redistest.StartCluster(t, 3)
	runFleet(t, fleetRedis{URL: c.Seeds(), Cluster: true, Client: c.Client(), Started: started}, fleetEvents, fleetWindow)
}
