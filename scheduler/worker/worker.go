package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/topic"
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
	DefaultOrphanInterval    = time.Second
)

// Worker limits that Validate enforces.
const (
	// MaxConcurrency bounds Config.Concurrency.
	MaxConcurrency = 100_000
	// MaxBatch bounds Config.Batch: one claim script must stay short.
	MaxBatch = 10_000
	// MinVisibility is the shortest lease: a lease must outlast a round trip.
	MinVisibility = 100 * time.Millisecond
)

// Config configures a Worker.
type Config struct {
	// ID names the worker in leases and heartbeats. Defaults to host-pid-random.
	ID string
	// Concurrency bounds deliveries in flight. Defaults to 100.
	Concurrency int
	// Batch bounds events claimed per shard and round trip. Defaults to 100.
	Batch int
	// Visibility is the lease: an event not finished or extended this long
	// after its claim is recovered by any worker's reaper. The worker itself
	// starts and continues no request past it, less a margin of
	// min(Visibility/10, 1s), timed on its own clock from when it sent the
	// claim or the last extension. Defaults to 60s.
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
	// the visibility timeout would. A worker whose own heartbeats fail
	// stops claiming DeadAfter/2 after its last successful one, until one
	// succeeds again. Defaults to 3 heartbeat intervals (15s).
	DeadAfter time.Duration
	// ShutdownTimeout bounds how long in-flight deliveries may finish after
	// the worker is stopped; the rest are handed back. Defaults to 30s.
	ShutdownTimeout time.Duration
	// OrphanInterval is how often the worker looks in its own processing
	// lists for claims it does not know of (a claim whose reply was lost)
	// and gives them back. Defaults to 1s.
	OrphanInterval time.Duration
	// LogFailedRequests logs every failed attempt as one structured line
	// (failurelog.go). Defaults to off.
	LogFailedRequests bool
	// Policy is the default retry policy.
	Policy scheduler.Policy
	// Clock tells the worker's own time: when its leases end, when it may
	// judge others dead, when it is backlogged, and the times attempts
	// record. When set (tests, simulations) it also replaces the Redis
	// server's clock for due and lease times. Defaults to nil: the system
	// clock for the worker's own time and the Redis server's clock for due
	// and lease times, so clock skew between workers cannot make a delivery
	// early.
	Clock scheduler.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *scheduler.Metrics
	// Fanout fans topic messages out (fanout.go). Defaults to nil: the
	// worker then leaves claimed messages to their lease, for a worker that
	// has one.
	Fanout *Fanout
	// Recurrence chains schedules' occurrences (occurrence.go). Defaults to
	// nil: a worker without it delivers an occurrence but makes no next one,
	// so every worker of a deployment with schedules needs it.
	Recurrence Recurrence
	// Flows applies flow keys' limits (flow.go). Defaults to nil: events
	// are delivered whatever their flow key says (pauses still hold: the
	// claim applies them).
	Flows FlowGate
	// TracerProvider, when set and not a no-op (internal/tracing), gives
	// every delivery attempt a span (tracing.go). Defaults to none.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns the config with zero fields set to their defaults.
// Clock stays nil when unset (see Clock).
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + itoa(os.Getpid()) + "-" + scheduler.NewID(time.Now())[24:]
	}
	c.Concurrency = defaults.Positive(c.Concurrency, DefaultConcurrency)
	c.Batch = defaults.Positive(c.Batch, DefaultBatch)
	c.Visibility = defaults.Positive(c.Visibility, DefaultVisibility)
	c.PollInterval = defaults.Positive(c.PollInterval, DefaultPollInterval)
	c.ReapInterval = defaults.Positive(c.ReapInterval, DefaultReapInterval)
	c.HeartbeatInterval = defaults.Positive(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.DeadAfter = defaults.Positive(c.DeadAfter, 3*c.HeartbeatInterval)
	c.ShutdownTimeout = defaults.Positive(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.OrphanInterval = defaults.Positive(c.OrphanInterval, DefaultOrphanInterval)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Policy = c.Policy.WithDefaults()
	if c.Fanout != nil && c.Fanout.Filters == nil {
		f := *c.Fanout
		f.Filters = topic.NewFilterCache(DefaultFilterCache)
		c.Fanout = &f
	}
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("worker: %s "+format, append([]any{field}, args...)...))
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		bad("Concurrency", "must be between 1 and %d, not %d", MaxConcurrency, c.Concurrency)
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		bad("Batch", "must be between 1 and %d, not %d", MaxBatch, c.Batch)
	}
	if c.Visibility < MinVisibility {
		bad("Visibility", "must be at least %s, not %s", MinVisibility, c.Visibility)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"PollInterval", c.PollInterval}, {"ReapInterval", c.ReapInterval}, {"HeartbeatInterval", c.HeartbeatInterval},
		{"ShutdownTimeout", c.ShutdownTimeout}, {"OrphanInterval", c.OrphanInterval}} {
		if d.v <= 0 {
			bad(d.field, "must be positive, not %s", d.v)
		}
	}
	if c.DeadAfter < 2*c.HeartbeatInterval {
		bad("DeadAfter", "must be at least twice HeartbeatInterval (%s), not %s", c.HeartbeatInterval, c.DeadAfter)
	}
	if err := c.Policy.Validate(); err != nil {
		bad("Policy", "is invalid: %w", err)
	}
	if f := c.Fanout; f != nil && (f.Store == nil || f.Subscribers == nil) {
		bad("Fanout", "needs a Store and Subscribers")
	}
	return errors.Join(errs...)
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
	deliver *delivery.Deliverer
	cfg     Config
	log     *slog.Logger
	clock   scheduler.Clock // cfg.Clock or the system clock
	// gatherLinger replaces claimLinger when set (tests: gatherSlots on a
	// machine too busy to free slots within 2 ms).
	gatherLinger time.Duration

	inflight atomic.Int64
	// beatingSince is when this worker's heartbeats last started to
	// succeed without a failure in between (Unix ns; 0 while failing).
	beatingSince atomic.Int64
	// lastBeat is 1 + when the last successful heartbeat was sent (w.mono,
	// ns); 0 before the first. The worker claims only while it is recent
	// (heartbeatFresh).
	lastBeat atomic.Int64
	// beat is signalled after every successful heartbeat.
	beat chan struct{}
	// claims are the worker's claims by member (see claimRec).
	claimsMu sync.Mutex
	claims   map[string]*claimRec
	fin      *finisher                                         // records outcomes, many per round trip; set by Run
	runners  *runners                                          // run the deliveries; set by Run
	adv      *batcher[scheduler.Ident, schedule.AdvanceResult] // chains occurrences, many per few round trips; set by Run with Recurrence
	flows    *flowGate                                         // flow keys' permits; set by Run with Flows
	// lastFull is when a claim last left due events behind (Unix ns): the
	// worker is behind.
	lastFull atomic.Int64
	freed    chan struct{}
	started  time.Time
	rnd      *rand.Rand
	rndMu    sync.Mutex
	tracer   trace.Tracer // nil when tracing is off
}

// Store is what a worker needs from the live store (store/redisstore
// implements it): each of its components declares its part.
type Store interface {
	ClaimStore
	FinishStore
	ReapStore
	HeartbeatStore
}

// ClaimStore is what the claim loop needs: claim due events, keep leases,
// give back claims whose reply was lost, and hear of new due events.
type ClaimStore interface {
	// Shards is the number of shards.
	Shards() int
	// ClaimShards takes due events of several shards for a worker in one
	// round trip: up to each request's Batch from its shard. Each result is
	// that shard's claim or its error.
	ClaimShards(ctx context.Context, reqs []scheduler.ClaimRequest, worker string, visibility time.Duration, now time.Time) ([]scheduler.Claim, []error)
	// Extend pushes a held lease out by visibility; false when it was lost.
	Extend(ctx context.Context, l scheduler.Lease, visibility time.Duration, now time.Time) (bool, error)
	// GiveBackOrphans returns to due, without counting an attempt, the
	// events of worker's claims whose reply it never had (the store's claim
	// records), claimed at least grace ago, that it does not hold (holding lists, per shard, the members it does).
	GiveBackOrphans(ctx context.Context, worker string, holding [][]string, grace time.Duration, now time.Time) (int, error)
	// Wakeups subscribes to the wake-ups: a value whenever an event may
	// have become due earlier than the workers planned, with the shards it
	// concerns. Its channel closes when ctx ends.
	Wakeups(ctx context.Context) *scheduler.Wakeups
}

// New returns a worker. Run validates its config.
func New(store Store, d *delivery.Deliverer, cfg Config) *Worker {
	cfg = cfg.WithDefaults()
	var clock scheduler.Clock = scheduler.SystemClock{}
	if cfg.Clock != nil {
		clock = cfg.Clock
	}
	return &Worker{
		store: store, deliver: d, cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), clock: clock,
		freed: make(chan struct{}, 1), started: clock.Now(),
		beat: make(chan struct{}, 1), claims: map[string]*claimRec{},
		rnd:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		tracer: newTracer(cfg.TracerProvider),
	}
}

// slotsScarce reports whether more than half the delivery slots are
// taken: an outcome then does not linger (finishLinger), since a delivery
// keeps its slot until its outcome is recorded and a burst would lose
// deliveries to lingering (measured: 11,000 → 9,000 deliveries/s with
// every outcome lingering).
func (w *Worker) slotsScarce() bool { return w.InFlight() > w.cfg.Concurrency/2 }

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// backloggedFor is how recently a full claim makes the worker Backlogged.
const backloggedFor = 250 * time.Millisecond

// Backlogged reports whether due events are waiting for this worker: a
// claim within the last 250ms left due events behind (a burst is being
// drained).
func (w *Worker) Backlogged() bool {
	t := w.lastFull.Load()
	return t != 0 && w.clock.Now().Sub(time.Unix(0, t)) < backloggedFor
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
	if err := w.cfg.Validate(); err != nil {
		return err
	}
	// Deliveries and their bookkeeping outlive ctx by up to ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup

	w.fin = newFinisher(w.store)
	w.runners = newRunners()
	defer w.runners.close()
	if r := w.cfg.Recurrence; r != nil {
		w.adv = newBatcher(maxAdvanceBatch, advanceParallel, 0, advanceTimeout, r.AdvanceMany)
	}
	if g := w.cfg.Flows; g != nil {
		w.flows = newFlowGate(w, g)
	}
	// Heartbeats and reaping go on until every outcome, hand-backs
	// included, is recorded: not cancelled with the deliveries at the
	// shutdown deadline, or peers could take this worker for dead meanwhile.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() { defer bgWG.Done(); w.reapLoop(bg) }()
	go func() { defer bgWG.Done(); w.heartbeatLoop(bg) }()
	if w.flows != nil {
		bgWG.Go(func() { w.flows.loop(bg) })
	}

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
	if w.adv != nil {
		w.adv.close()
	}
	if w.flows != nil {
		w.flows.close()
	}
	// A claim cut off by the shutdown may have been run by Redis: with no
	// claim on its way any more, whatever is left in this worker's lists
	// without a delivery goes back now, not after its lease.
	octx, cancelOrphans := context.WithTimeout(context.WithoutCancel(ctx), orphanCheckTimeout)
	w.giveBackOrphans(octx, 0)
	cancelOrphans()
	stopBG()
	bgWG.Wait()
	w.leave()
	w.log.Info("worker stopped")
	return nil
}

// claimLoop is the heart of the worker; see doc.go. It also gives back the
// orphans of its lost claim replies (giveBackOrphans): running that here,
// between claims, means no claim of this worker is on its way meanwhile.
func (w *Worker) claimLoop(ctx, workCtx context.Context, wg *sync.WaitGroup) {
	wakeups := w.store.Wakeups(ctx)
	wake := wakeups.C()
	shards := w.store.Shards()
	start := rand.IntN(shards)
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := 10 * time.Millisecond
	hot := make([]bool, shards)       // shards whose last claim filled its share
	var nextOrphanCheck time.Duration // w.mono: at once, then every OrphanInterval
	gated := false
	backlog := false // the last round took every free slot and left due events behind
	plan := newShardPlan(shards)
	for ctx.Err() == nil {
		if w.mono() >= nextOrphanCheck {
			w.giveBackOrphans(ctx, min(time.Second, w.cfg.Visibility/4))
			nextOrphanCheck = w.mono() + w.cfg.OrphanInterval
		}
		untilCheck := nextOrphanCheck - w.mono()
		if !w.heartbeatFresh() {
			// Peers judge a worker dead by its heartbeats: one that cannot
			// beat claims nothing that they may take away from it.
			if !gated && w.lastBeat.Load() != 0 {
				w.log.Warn("heartbeats failing: not claiming until one succeeds", "dead_after", w.cfg.DeadAfter)
			}
			gated = true
			waitFor(ctx, timer, untilCheck, w.beat)
			continue
		}
		if gated && w.lastBeat.Load() != 0 {
			gated = false
			w.log.Info("heartbeat succeeded: claiming again")
		}
		free := w.cfg.Concurrency - w.InFlight()
		if free <= 0 {
			waitFor(ctx, timer, untilCheck, w.freed)
			continue
		}
		if backlog {
			free = w.gatherSlots(ctx, timer, free)
		}
		wakeups.Take(plan.woken)
		order := plan.order(start, w.mono(), w.cfg.PollInterval, hot)
		more := false
		failed := false
		dueLeft := false
		// One pipeline covers every shard to ask when there are at least
		// as many free slots as shards; with fewer, the next shards are
		// asked until the slots are taken or every shard was looked at.
		for visited := 0; visited < len(order) && free > 0 && !failed; {
			reqs := w.claimShares(free, order[visited:], hot, backlog)
			if visited == 0 {
				clear(hot) // this round's claims tell which shards are hot next
			}
			visited += len(reqs)
			for _, r := range reqs {
				plan.asking(r.Shard)
			}
			sent := w.mono()
			claims, errs := w.store.ClaimShards(ctx, reqs, w.cfg.ID, w.cfg.Visibility, w.now())
			for i, c := range claims {
				sh := reqs[i].Shard
				if err := errs[i]; err != nil {
					if ctx.Err() == nil {
						w.log.Warn("claim failed", "shard", sh, "err", err)
					}
					plan.claimFailed(sh)
					failed = true
					continue
				}
				plan.answered(sh, c, w.mono())
				if len(c.Events) > 0 {
					recs := w.track(sh, c.Events, sent)
					for i, ev := range c.Events {
						w.inflight.Add(1)
						wg.Add(1)
						w.runners.run(func() {
							defer wg.Done()
							w.process(workCtx, ev, c.Now, recs[i])
						})
					}
				}
				if len(c.Events) == reqs[i].Batch {
					hot[sh] = true // there may be more: a bigger share next round
					more = true
				}
				if len(c.Events) > 0 && !c.NextDue.IsZero() && !c.NextDue.After(c.Now) {
					w.lastFull.Store(w.clock.Now().UnixNano()) // more due events are waiting for this worker
				}
				dueLeft = dueLeft || (!c.NextDue.IsZero() && !c.NextDue.After(c.Now))
				free -= len(c.Events)
			}
		}
		start = (start + 1) % shards
		backlog = backlogged(failed, free, more, dueLeft)
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
		d := min(w.cfg.PollInterval, max(untilCheck, 0), plan.untilNext(w.mono()))
		if d <= 0 {
			continue
		}
		waitFor(ctx, timer, d, wake)
	}
}

// shardPlan is what a worker's claim loop knows of each shard between its
// claim rounds, so that a round asks only the shards where an event may be
// due rather than every shard (a claim script per shard: a 16-shard round
// that finds nothing costs Redis ~190 µs, BenchmarkEmptyClaimRound, which a
// worker under a steady load paid for about every delivery). A shard is
// asked
//   - when its earliest due time, as its last claim reported it, has come:
//     kept on the worker's monotonic clock as the reply's next due time less
//     its server time (each shard's own master's clock, on a Cluster whose
//     masters' clocks differ) after the reply came, which errs late by the
//     reply's way back, never early;
//   - when its last claim filled its share (hot: more may be waiting);
//   - once it is woken: by a wake-up that named it (an event due earlier
//     than planned: a create, a retry, an event given back), by its claim
//     failing, and every fullRoundEvery all shards (at the start too), as
//     every shard was asked at least that often before, for what no wake-up
//     announces (an event created due beyond the wake horizon, which is at
//     least fullRoundEvery; a wake-up lost with a broken subscription). A
//     shard stays woken until a round asks it: a saturated worker whose free
//     slots ran out before every woken shard was asked asks the rest next.
//
// Another worker's claims only make a round find less than planned; an
// earlier due time than planned always comes with a wake-up or within
// fullRoundEvery, so no event waits longer than it did when every round
// asked every shard.
type shardPlan struct {
	woken  []bool          // by shard: to be asked once (wake-up, failure, full round)
	next   []time.Duration // by shard: when (Worker.mono) its earliest due time comes; < 0: none
	fullAt time.Duration   // when every shard is woken next (Worker.mono)
}

// fullRoundEvery bounds how long a worker goes without asking every shard
// (shardPlan): its PollInterval, or this when shorter. The stores' wake
// horizon is at least this (redisstore.DefaultWakeHorizon; internal/config
// sets it to the larger of the poll interval and that), so an event that
// publishes no wake-up is planned by a full round before it is due, however
// the processes' poll intervals differ.
const fullRoundEvery = time.Second

func newShardPlan(shards int) *shardPlan {
	p := &shardPlan{woken: make([]bool, shards), next: make([]time.Duration, shards)}
	for sh := range p.next {
		p.next[sh] = -1
	}
	return p
}

// order returns the shards to ask at mono, from start on; when the full
// round is due (poll: how often), it wakes them all.
func (p *shardPlan) order(start int, mono, poll time.Duration, hot []bool) []int {
	shards := len(p.next)
	if mono >= p.fullAt {
		p.fullAt = mono + min(poll, fullRoundEvery)
		for sh := range p.woken {
			p.woken[sh] = true
		}
	}
	order := make([]int, 0, shards)
	for i := range shards {
		sh := (start + i) % shards
		if p.woken[sh] || hot[sh] || (p.next[sh] >= 0 && p.next[sh] <= mono) {
			order = append(order, sh)
		}
	}
	return order
}

// asking notes that shard sh is being asked: a wake-up from now on is one
// its claim may not have seen.
func (p *shardPlan) asking(sh int) { p.woken[sh] = false }

// claimFailed notes a failed claim of sh: it is asked again.
func (p *shardPlan) claimFailed(sh int) { p.woken[sh] = true }

// answered notes shard sh's claim c, whose reply came at mono.
func (p *shardPlan) answered(sh int, c scheduler.Claim, mono time.Duration) {
	p.next[sh] = -1 // none, or a reply without the server's time: the full rounds find it
	if !c.NextDue.IsZero() && !c.Now.IsZero() {
		p.next[sh] = mono + max(c.NextDue.Sub(c.Now), 0)
	}
}

// untilNext is how long from mono until the earliest planned due time of
// any shard or the next full round, whichever is first.
func (p *shardPlan) untilNext(mono time.Duration) time.Duration {
	d := p.fullAt - mono
	for _, t := range p.next {
		if t >= 0 {
			d = min(d, t-mono)
		}
	}
	return d
}

// claimShares splits a claim round's free slots over the shards of order
// (those the round asks, from the round's start on: shardPlan), which are
// all claimed in one round trip (ClaimShards), never asking for more than
// free events in total nor more than Batch from one shard. With fewer free
// slots than shards to ask (a saturated worker, slots freeing one by one),
// the first shard is asked for them all, and the claim loop goes on to the
// next shards while slots remain (start moves on every round, so every
// shard has its turn): one claim script per few events would cost Redis
// more than the round trips it saves. With a backlog (the last round took
// every free slot and left due events behind) the slots go to one shard per
// claimShareMin of them, in order. Otherwise every shard gets one and the
// rest is split among the shards that filled their share last round (hot:
// more is waiting there), or among all when none did.
func (w *Worker) claimShares(free int, order []int, hot []bool, backlog bool) []scheduler.ClaimRequest {
	shards := len(order)
	if free < shards {
		return []scheduler.ClaimRequest{{Shard: order[0], Batch: free}}
	}
	if backlog {
		// Due events are waiting: the slots go to as few shards as take
		// claimShareMin each, from start on, rather than a few to every
		// shard (most of a claim script's cost is per call).
		k := min(shards, max(1, free/claimShareMin))
		reqs := make([]scheduler.ClaimRequest, k)
		for i := range reqs {
			n := free / k
			if i < free%k {
				n++
			}
			reqs[i] = scheduler.ClaimRequest{Shard: order[i], Batch: min(n, w.cfg.Batch)}
		}
		return reqs
	}
	reqs := make([]scheduler.ClaimRequest, shards)
	var more []int // indexes of reqs that share the rest
	for i, sh := range order {
		reqs[i] = scheduler.ClaimRequest{Shard: sh, Batch: 1}
		if hot[sh] {
			more = append(more, i)
		}
	}
	if len(more) == 0 {
		more = make([]int, shards)
		for i := range more {
			more[i] = i
		}
	}
	rest := free - shards
	base, extra := rest/len(more), rest%len(more)
	for j, i := range more {
		n := base
		if j < extra {
			n++
		}
		reqs[i].Batch = min(reqs[i].Batch+n, w.cfg.Batch)
	}
	return reqs
}

// backlogged tells whether a claim round that ended with free slots left
// over (and, failed, more or dueLeft as the loop tracks them) leaves a
// backlog: it took every free slot and left due events behind. A worker
// with slots to spare (steady load) keeps asking every shard in one round
// trip.
func backlogged(failed bool, free int, more, dueLeft bool) bool {
	return !failed && free <= 0 && (more || dueLeft)
}

// claimShareMin is the fewest events a backlogged claim round asks one
// shard for (claimShares).
const claimShareMin = 16

// claimLinger bounds how long a worker with due events waiting lets free
// slots gather before it claims (gatherSlots).
const claimLinger = 2 * time.Millisecond

// gatherSlots waits, while more events are due than the worker has slots
// for, until a quarter of its slots are free or claimLinger has passed, and
// returns the free slots. A saturated worker otherwise claims every time a
// delivery ends, one or two events a time: measured in a 20,000-event burst,
// 3.5 events per claim script and 22 per round trip, where each script call
// costs Redis about what claiming a dozen events does. The events waiting
// are late already; a claim of several is not later than it would be one
// by one (the slots free at the same pace) but for at most claimLinger.
func (w *Worker) gatherSlots(ctx context.Context, timer *time.Timer, free int) int {
	target := w.cfg.Concurrency / 4
	if free >= target {
		return free
	}
	linger := claimLinger
	if w.gatherLinger > 0 {
		linger = w.gatherLinger
	}
	deadline := w.mono() + linger
	for free < target && ctx.Err() == nil {
		left := deadline - w.mono()
		if left <= 0 {
			break
		}
		waitFor(ctx, timer, left, w.freed)
		free = w.cfg.Concurrency - w.InFlight()
	}
	return free
}

// waitFor waits until ctx ends, ch delivers (or is closed) or d passes,
// using timer, which it leaves stopped.
func waitFor(ctx context.Context, timer *time.Timer, d time.Duration, ch <-chan struct{}) {
	timer.Reset(max(d, 0))
	defer timer.Stop() // Go 1.23 timers: no stale tick is received after Stop or Reset
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-ch:
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

// mono is the worker's monotonic clock: the time since it was created.
// Leases are timed with it, not with Redis' clock, which may differ from
// the local one.
func (w *Worker) mono() time.Duration { return w.clock.Now().Sub(w.started) }

// heartbeatFresh reports whether the last successful heartbeat was sent
// less than DeadAfter/2 ago: by then no peer can have judged this worker
// dead (they wait DeadAfter after the heartbeat reached Redis, which was
// after it was sent), and a claim made now has at least DeadAfter/2 before
// they could.
func (w *Worker) heartbeatFresh() bool {
	last := w.lastBeat.Load()
	return last != 0 && w.mono()-time.Duration(last-1) < w.cfg.DeadAfter/2
}

// claimRec is what the worker knows of one of its claims, on its own
// monotonic clock (w.mono). The lease Redis started for a claim began after
// the worker sent the claim, so measuring it from then errs on the safe
// side however Redis' clock and the local one differ, and however long the
// reply took (even across a SIGSTOP of the worker).
type claimRec struct {
	shard  int
	member string
	// deadline (ns): no request is started or continued after it, since
	// the lease may have ended: sent + Visibility - leaseMargin, moved on
	// by every extension.
	deadline atomic.Int64
	// confirmed (ns) is when a reply last confirmed the lease (claim or
	// extension): it surely ends by confirmed + Visibility.
	confirmed atomic.Int64
	// forgetAt (under Worker.claimsMu) is zero while the delivery runs or
	// its outcome is being recorded. A delivery that ends without recording
	// its outcome sets it to when Redis has surely ended the lease: until
	// then the event is left to the reaper, not given back as an orphan,
	// since its attempt may have been made.
	forgetAt time.Duration
	// permit is the flow key whose permit the delivery holds (nil: none),
	// extended with the lease.
	permit *flow.ID
}

// leaseMargin is how long before the lease's end (as the worker measures it)
// a delivery stops: the request must not reach the destination after
// another worker may have taken the event over.
func (w *Worker) leaseMargin() time.Duration { return min(w.cfg.Visibility/10, time.Second) }

// leaseLeft is how long the claim's delivery may still run.
func (w *Worker) leaseLeft(r *claimRec) time.Duration {
	return time.Duration(r.deadline.Load()) - w.mono()
}

// track records the events of one claim, sent at sent (w.mono).
func (w *Worker) track(shard int, evs []*scheduler.Event, sent time.Duration) []*claimRec {
	deadline := int64(sent + w.cfg.Visibility - w.leaseMargin())
	got := int64(w.mono())
	recs := make([]*claimRec, len(evs))
	w.claimsMu.Lock()
	for i, ev := range evs {
		r := &claimRec{shard: shard, member: ev.Member()}
		r.deadline.Store(deadline)
		r.confirmed.Store(got)
		w.claims[r.member] = r
		recs[i] = r
	}
	w.claimsMu.Unlock()
	return recs
}

// forgetSlack is added to a lease's latest possible end before the worker
// forgets a claim whose outcome it could not record.
const forgetSlack = time.Second

// untrack ends the worker's record of a claim: at once when its outcome is
// recorded (its lease ended with it), else once Redis
// has surely ended the lease (see claimRec.forgetAt).
func (w *Worker) untrack(r *claimRec, recorded bool) {
	w.claimsMu.Lock()
	defer w.claimsMu.Unlock()
	if w.claims[r.member] != r {
		return // claimed again since: that claim's record stays
	}
	if recorded {
		delete(w.claims, r.member)
		return
	}
	r.forgetAt = time.Duration(r.confirmed.Load()) + w.cfg.Visibility + forgetSlack
}

// orphanCheckTimeout bounds one look for orphans.
const orphanCheckTimeout = 5 * time.Second

// giveBackOrphans gives back to due, without counting an attempt, the
// members of this worker's claims it holds no claim record for: claims
// Redis ran whose reply never reached the worker (go-redis retried
// the command after the connection broke, or gave up). Members claimed
// within the last grace are left alone. It runs in the claim loop (grace
// min(1s, Visibility/4)) and once more at shutdown (no grace), so no claim
// of this worker is on its way while it does.
func (w *Worker) giveBackOrphans(ctx context.Context, grace time.Duration) {
	now := w.mono()
	holding := make([][]string, w.store.Shards())
	w.claimsMu.Lock()
	for m, r := range w.claims {
		if r.forgetAt != 0 && now > r.forgetAt {
			delete(w.claims, m)
			continue
		}
		holding[r.shard] = append(holding[r.shard], m)
	}
	w.claimsMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, orphanCheckTimeout)
	n, err := w.store.GiveBackOrphans(cctx, w.cfg.ID, holding, grace, w.now())
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("looking for lost claims failed", "err", err)
		}
		return
	}
	if n > 0 {
		w.log.Warn("gave back claims whose reply was lost (not counted as attempts)", "count", n)
	}
}

// errLeaseExpired stops a delivery whose lease has ended, as far as the
// worker can tell: another worker may have taken the event over.
var errLeaseExpired = errors.New("lease expired: another worker may own the event")

// process delivers one claimed event and records the outcome.
func (w *Worker) process(ctx context.Context, ev *scheduler.Event, claimedAt time.Time, rec *claimRec) {
	var permit *flow.ID // the flow key whose permit the delivery holds, released last
	defer func() {
		// The slot is free once the outcome is recorded: releasing the
		// permit is one more round trip, which need not keep the next
		// claim waiting (the permit stays out until it is done, so the
		// key's limits hold; Run waits for it like for the delivery).
		w.inflight.Add(-1)
		select {
		case w.freed <- struct{}{}:
		default:
		}
		if permit != nil {
			w.flows.release(ctx, *permit, ev.ID)
		}
	}()
	lease := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: w.cfg.ID, Attempt: ev.Attempts}
	policy := w.cfg.Policy.For(ev)
	if w.leaseLeft(rec) <= 0 {
		w.dropUnsent(ev, rec)
		return
	}
	if ev.FlowKey != "" && w.flows != nil && ev.Kind != scheduler.KindMessage {
		p, ok := w.flows.admit(ctx, ev, lease, rec)
		if !ok {
			return // held back by its flow key: PENDING again, no attempt used
		}
		permit, rec.permit = p, p
	}
	if m := w.cfg.Metrics; m != nil && ev.Attempts == 1 && len(ev.Plan) == 0 && rec.permit == nil {
		// A message being followed (it has a plan) is not late: it was
		// handed back to be looked at again; an event its flow key held
		// back waited on purpose.
		m.Lateness.Observe(max(0, claimedAt.Sub(ev.DueAt).Seconds()))
	}
	if ev.Kind == scheduler.KindMessage {
		w.processMessage(ctx, ev, lease, rec)
		return
	}

	chained := w.chain(ctx, ev, rec)
	dctx, abandon := context.WithCancelCause(ctx)
	stopKeeper := w.keepLease(ctx, lease, rec, abandon)
	// The last look at the lease, right before the request goes out (after
	// signing, which may wait for Redis).
	dctx = delivery.WithSendCheck(dctx, func() error {
		if w.leaseLeft(rec) <= 0 {
			return errLeaseExpired
		}
		return nil
	})
	dctx, span := w.startAttempt(dctx, ev)
	res := w.deliver.Deliver(dctx, ev, policy.Timeout)
	stopKeeper()
	abandon(nil)
	if chained != nil {
		if err := chained(); err != nil {
			span.end(res, "not_recorded")
			// Not recorded: the claim is repeated after the lease, which
			// makes the next occurrence then (the request may go twice).
			w.untrack(rec, false)
			w.log.Error("making the schedule's next occurrence failed; the occurrence is recovered after its lease",
				"app", ev.App, "id", ev.ID, "err", err)
			return
		}
	}
	if res.Unsent && errors.Is(res.Err, errLeaseExpired) {
		span.end(res, "unsent")
		w.dropUnsent(ev, rec)
		return
	}

	next := delivery.Classify(res)
	out := scheduler.Outcome{Status: next, Attempt: scheduler.Attempt{
		Attempt: ev.Attempts, StatusCode: res.StatusCode, DurationMS: res.Duration.Milliseconds(),
		Worker: w.cfg.ID, Response: res.Response,
	}}
	if res.Err != nil {
		out.Attempt.Error = res.Err.Error()
	} else if res.NoRetry && next != scheduler.StatusCompleted {
		// Classify made it FAILED: the history says it was the
		// destination's wish, not its status code (API.md §9).
		out.Attempt.Error = delivery.NoRetryReason
	}
	interrupted := ctx.Err() != nil && res.Err != nil
	switch {
	case interrupted:
		// Shutdown deadline: hand the event back, due now.
		out.Status = scheduler.StatusPending
		out.Attempt.Error = "interrupted: worker shutting down"
	case next == scheduler.StatusPending && ev.Attempts >= policy.MaxAttempts:
		out.Status = scheduler.StatusServiceUnavailable
	case next == scheduler.StatusPending:
		w.rndMu.Lock()
		out.Backoff = policy.Backoff(ev.Attempts, res.RetryAfter, w.rnd)
		w.rndMu.Unlock()
	}
	if w.cfg.LogFailedRequests && out.Status != scheduler.StatusCompleted {
		logFailedAttempt(ctx, w.log, ev, res, out)
	}
	now := w.now()
	if !now.IsZero() {
		out.Attempt.At = now.UnixMilli()
	} else {
		out.Attempt.At = w.clock.Now().UnixMilli()
	}

	// Recording the outcome must survive the shutdown: use a fresh context.
	// Sending it again after an error is safe: finishing is idempotent per
	// attempt (finish_attempt in luascripts/prelude.lua).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// The outcome may linger for others to share its round trip
	// (finishLinger), unless the next event of its flow key waits for its
	// permit or slots are scarce.
	urgent := permit != nil || w.slotsScarce()
	var held bool
	var err error
	for try := 0; try < 5; try++ {
		held, err = w.fin.finish(fctx, scheduler.FinishItem{Lease: lease, Outcome: out, Now: now}, urgent)
		if err == nil || !errors.Is(err, scheduler.ErrUnavailable) {
			break
		}
		sleep(fctx, time.Duration(100*(try+1))*time.Millisecond)
	}
	w.untrack(rec, err == nil)
	if err != nil {
		span.end(res, "not_recorded")
		// The lease will expire and the reaper will deliver it again.
		w.log.Error("record outcome failed; the event will be recovered after its lease", "app", ev.App, "id", ev.ID, "err", err)
		return
	}
	label := outcomeLabel(out.Status, held)
	span.end(res, label)
	if m := w.cfg.Metrics; m != nil {
		m.Latency.Observe(res.Duration.Seconds())
		m.Deliveries.WithLabelValues(label).Inc()
	}
	if !held {
		w.log.Warn("lease lost before the outcome was recorded: another worker owns the event", "app", ev.App, "id", ev.ID, "attempt", ev.Attempts)
		return
	}
	if out.Status.Final() {
		w.nudgeParent(fctx, ev, now)
	}
}

// dropUnsent gives up a delivery whose lease ended before its request was
// sent (the worker was stopped, starved of CPU, or the claim's reply took
// that long): sending it now could duplicate another worker's delivery.
// Nothing is recorded; the reaper recovers the event once Redis sees the
// lease expired, which counts the attempt ("lease expired").
func (w *Worker) dropUnsent(ev *scheduler.Event, rec *claimRec) {
	w.untrack(rec, false)
	w.log.Warn("lease ended before the request was sent: not sending it; the event is recovered after its lease",
		"app", ev.App, "id", ev.ID, "attempt", ev.Attempts, "late_by", -w.leaseLeft(rec))
}

// errLeaseLost abandons a delivery whose lease another worker now holds.
var errLeaseLost = scheduler.ErrLeaseLost

// keepLease extends the lease while a slow delivery runs, every
// Visibility/3, and abandons the delivery when the lease ends as the worker
// measures it (claimRec.deadline): a worker that was stopped (SIGSTOP),
// starved or cut off from Redis does not go on past it. When the lease
// turns out lost, the delivery is abandoned too: another worker owns the
// event and delivers it, so finishing ours would only add a duplicate.
func (w *Worker) keepLease(ctx context.Context, l scheduler.Lease, rec *claimRec, abandon context.CancelCauseFunc) (stop func()) {
	every := w.cfg.Visibility / 3
	var mu sync.Mutex
	stopped := false
	var expiry, extend *time.Timer
	mu.Lock()
	defer mu.Unlock()
	expiry = time.AfterFunc(w.leaseLeft(rec), func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if left := w.leaseLeft(rec); left > 0 {
			expiry.Reset(left) // extended meanwhile
			return
		}
		w.log.Warn("lease ended during the delivery: abandoning it", "app", l.App, "id", l.ID, "attempt", l.Attempt)
		abandon(errLeaseExpired)
	})
	extend = time.AfterFunc(every, func() {
		if w.leaseLeft(rec) <= 0 {
			return // too late to extend: the expiry timer abandons the delivery
		}
		sent := w.mono()
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
		} else {
			if rec.permit != nil && w.flows != nil {
				fctx, cancel := context.WithTimeout(ctx, every)
				w.flows.extend(fctx, *rec.permit, l.ID)
				cancel()
			}
			rec.confirmed.Store(int64(w.mono()))
			rec.deadline.Store(int64(sent + w.cfg.Visibility - w.leaseMargin()))
		}
		extend.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		expiry.Stop()
		extend.Stop()
	}
}
