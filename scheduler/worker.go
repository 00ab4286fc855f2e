package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Worker defaults.
const (
	DefaultConcurrency       = 100
	DefaultVisibility        = 60 * time.Second
	DefaultPollInterval      = time.Second
	DefaultReapInterval      = time.Second
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultBatch             = 100
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// ID names the worker in leases and heartbeats. Defaults to host-pid-random.
	ID string
	// Concurrency bounds deliveries in flight. Defaults to 100.
	Concurrency int
	// Batch bounds events claimed per shard and round trip. Defaults to 100.
	Batch int
	// Visibility is the lease: an event not finished or extended this long
	// after its claim is recovered by any worker's reaper. Defaults to 60s.
	Visibility time.Duration
	// PollInterval caps how long the worker sleeps without looking for due
	// events. Defaults to 1s.
	PollInterval time.Duration
	// ReapInterval is how often expired leases are recovered. Defaults to 1s.
	ReapInterval time.Duration
	// HeartbeatInterval is how often the worker reports itself. Defaults to 5s.
	HeartbeatInterval time.Duration
	// DeadAfter is how long a worker may go without a heartbeat before
	// other workers end its leases and give its events back, sooner than
	// the visibility timeout would. Defaults to 3 heartbeat intervals (15s).
	DeadAfter time.Duration
	// ShutdownTimeout bounds how long in-flight deliveries may finish after
	// the worker is stopped; the rest are handed back. Defaults to 30s.
	ShutdownTimeout time.Duration
	// Policy is the default retry policy.
	Policy Policy
	// Clock, when set, replaces the store's server clock for due and lease
	// times (tests). Nil: the Redis server's clock decides, so clock skew
	// between workers cannot make a delivery early.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
}

// WithDefaults fills zero fields with the defaults.
func (c WorkerConfig) WithDefaults() WorkerConfig {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + itoa(os.Getpid()) + "-" + NewID(time.Now())[24:]
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.Visibility <= 0 {
		c.Visibility = DefaultVisibility
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = DefaultReapInterval
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.HeartbeatInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Policy = c.Policy.WithDefaults()
	return c
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Worker claims due events, delivers them, recovers expired leases and
// reports heartbeats. See doc.go for the claim loop.
type Worker struct {
	store   Store
	deliver *Deliverer
	cfg     WorkerConfig
	log     *slog.Logger

	inflight atomic.Int64
	// beatingSince is when this worker's heartbeats last started to
	// succeed without a failure in between (Unix ns; 0 while failing).
	beatingSince atomic.Int64
	fin          *finisher // records outcomes, many per round trip; set by Run
	// lastFull is when a claim last left due events behind (Unix ns): the
	// worker is behind.
	lastFull atomic.Int64
	freed    chan struct{}
	started  time.Time
	rnd      *rand.Rand
	rndMu    sync.Mutex
}

// NewWorker returns a worker.
func NewWorker(store Store, d *Deliverer, cfg WorkerConfig) *Worker {
	cfg = cfg.WithDefaults()
	return &Worker{
		store: store, deliver: d, cfg: cfg, log: cfg.Logger.With("worker", cfg.ID),
		freed: make(chan struct{}, 1), started: time.Now(),
		rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// backloggedFor is how recently a full claim makes the worker Backlogged.
const backloggedFor = 250 * time.Millisecond

// Backlogged reports whether due events are waiting for this worker: a
// claim within the last 250ms left due events behind (a burst is being
// drained).
func (w *Worker) Backlogged() bool {
	t := w.lastFull.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < backloggedFor
}

// InFlight returns the number of deliveries in flight.
func (w *Worker) InFlight() int { return int(w.inflight.Load()) }

func (w *Worker) now() time.Time {
	if w.cfg.Clock == nil {
		return time.Time{}
	}
	return w.cfg.Clock.Now()
}

// Run claims and delivers until ctx ends, then stops claiming, lets in-flight
// deliveries finish within ShutdownTimeout and hands back the rest.
func (w *Worker) Run(ctx context.Context) error {
	// Deliveries and their bookkeeping outlive ctx by up to ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup

	w.fin = newFinisher(w.store)
	// Heartbeats and reaping go on until every outcome, hand-backs
	// included, is recorded: not cancelled with the deliveries at the
	// shutdown deadline, or peers could take this worker for dead meanwhile.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() { defer bgWG.Done(); w.reapLoop(bg) }()
	go func() { defer bgWG.Done(); w.heartbeatLoop(bg) }()

	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "shards", w.store.Shards(), "visibility", w.cfg.Visibility)
	w.claimLoop(ctx, workCtx, &wg)

	w.log.Info("worker stopping: waiting for in-flight deliveries", "in_flight", w.InFlight(), "deadline", w.cfg.ShutdownTimeout)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn("shutdown deadline passed: handing back unfinished deliveries", "in_flight", w.InFlight())
		cancelWork()
		<-done
	}
	w.fin.close() // every delivery has recorded its outcome
	stopBG()
	bgWG.Wait()
	if rs, ok := w.store.(interface {
		RemoveWorker(context.Context, string) error
	}); ok {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = rs.RemoveWorker(rctx, w.cfg.ID)
		cancel()
	}
	w.log.Info("worker stopped")
	return nil
}

// claimLoop is the heart of the worker; see doc.go.
func (w *Worker) claimLoop(ctx, workCtx context.Context, wg *sync.WaitGroup) {
	wake := w.store.Wakeups(ctx)
	shards := w.store.Shards()
	start := rand.IntN(shards)
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		free := w.cfg.Concurrency - w.InFlight()
		if free <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.freed:
			}
			continue
		}
		var next time.Time
		var serverNow time.Time
		more := false
		failed := false
		for i := 0; i < shards && free > 0; i++ {
			sh := (start + i) % shards
			batch := min(free, w.cfg.Batch)
			c, err := w.store.Claim(ctx, sh, w.cfg.ID, batch, w.cfg.Visibility, w.now())
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("claim failed", "shard", sh, "err", err)
				}
				failed = true
				break
			}
			serverNow = c.Now
			for _, ev := range c.Events {
				w.inflight.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.process(workCtx, ev, c.Now)
				}()
			}
			free -= len(c.Events)
			if len(c.Events) == batch && free > 0 {
				more = true
			}
			if len(c.Events) > 0 && !c.NextDue.IsZero() && !c.NextDue.After(c.Now) {
				w.lastFull.Store(time.Now().UnixNano()) // more due events are waiting for this worker
			}
			if !c.NextDue.IsZero() && (next.IsZero() || c.NextDue.Before(next)) {
				next = c.NextDue
			}
		}
		start = (start + 1) % shards
		if failed {
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		if more {
			continue
		}
		if free <= 0 {
			continue // wait for a slot at the top of the loop
		}
		d := w.cfg.PollInterval
		if !next.IsZero() {
			d = min(d, next.Sub(serverNow))
		}
		if d <= 0 {
			continue
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-wake:
			if !timer.Stop() {
				<-timer.C
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// process delivers one claimed event and records the outcome.
func (w *Worker) process(ctx context.Context, ev *Event, claimedAt time.Time) {
	defer func() {
		w.inflight.Add(-1)
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}()
	lease := Lease{App: ev.App, ID: ev.ID, Worker: w.cfg.ID, Attempt: ev.Attempts}
	policy := w.cfg.Policy.For(ev)
	if m := w.cfg.Metrics; m != nil && ev.Attempts == 1 {
		m.Lateness.Observe(max(0, claimedAt.Sub(ev.DueAt).Seconds()))
	}

	dctx, abandon := context.WithCancelCause(ctx)
	stopKeeper := w.keepLease(ctx, lease, abandon)
	res := w.deliver.Deliver(dctx, ev, policy.Timeout)
	stopKeeper()
	abandon(nil)

	next := Classify(res)
	out := Outcome{Status: next, Attempt: Attempt{
		Attempt: ev.Attempts, StatusCode: res.StatusCode, DurationMS: res.Duration.Milliseconds(),
		Worker: w.cfg.ID, Response: res.Response,
	}}
	if res.Err != nil {
		out.Attempt.Error = res.Err.Error()
	}
	interrupted := ctx.Err() != nil && res.Err != nil
	switch {
	case interrupted:
		// Shutdown deadline: hand the event back, due now.
		out.Status = StatusPending
		out.Attempt.Error = "interrupted: worker shutting down"
	case next == StatusPending && ev.Attempts >= policy.MaxAttempts:
		out.Status = StatusServiceUnavailable
	case next == StatusPending:
		w.rndMu.Lock()
		out.Backoff = policy.Backoff(ev.Attempts, res.RetryAfter, w.rnd)
		w.rndMu.Unlock()
	}
	now := w.now()
	if !now.IsZero() {
		out.Attempt.At = now.UnixMilli()
	} else {
		out.Attempt.At = time.Now().UnixMilli()
	}

	// Recording the outcome must survive the shutdown: use a fresh context.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var held bool
	var err error
	for try := 0; try < 5; try++ {
		held, err = w.fin.finish(fctx, FinishItem{Lease: lease, Outcome: out, Now: now})
		if err == nil || !errors.Is(err, ErrUnavailable) {
			break
		}
		sleep(fctx, time.Duration(100*(try+1))*time.Millisecond)
	}
	if err != nil {
		// The lease will expire and the reaper will deliver it again.
		w.log.Error("record outcome failed; the event will be recovered after its lease", "app", ev.App, "id", ev.ID, "err", err)
		return
	}
	if m := w.cfg.Metrics; m != nil {
		m.Latency.Observe(res.Duration.Seconds())
		label := map[Status]string{StatusCompleted: "completed", StatusFailed: "failed",
			StatusServiceUnavailable: "service_unavailable", StatusPending: "retry"}[out.Status]
		if !held {
			label = "stale"
		}
		m.Deliveries.WithLabelValues(label).Inc()
	}
	if !held {
		w.log.Warn("lease lost before the outcome was recorded: another worker owns the event", "app", ev.App, "id", ev.ID, "attempt", ev.Attempts)
	}
}

// errLeaseLost abandons a delivery whose lease another worker now holds.
var errLeaseLost = errors.New("lease lost: another worker owns the event")

// keepLease extends the lease while a slow delivery runs. When the lease
// turns out lost, the delivery is abandoned: another worker owns the event
// and delivers it, so finishing ours would only add a duplicate.
func (w *Worker) keepLease(ctx context.Context, l Lease, abandon context.CancelCauseFunc) (stop func()) {
	every := w.cfg.Visibility / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		ectx, cancel := context.WithTimeout(ctx, every)
		held, err := w.store.Extend(ectx, l, w.cfg.Visibility, w.now())
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err != nil {
			w.log.Warn("lease extension failed", "app", l.App, "id", l.ID, "err", err)
		} else if !held {
			w.log.Warn("lease lost during delivery: abandoning it", "app", l.App, "id", l.ID)
			abandon(errLeaseLost)
			return
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}
