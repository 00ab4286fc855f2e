package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/internal/testproc"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// judgeStore is the real store (on miniredis) that records what the
// reaper did and can fail heartbeats or list a worker among the dead.
type judgeStore struct {
	*redisstore.Store
	failHeartbeats atomic.Bool
	beats          atomic.Int64 // successful heartbeats
	// alsoDead, when set, is listed among the dead workers whatever its
	// heartbeat says (a worker whose own heartbeat lags in Redis).
	alsoDead atomic.Pointer[string]

	mu        sync.Mutex
	reaps     []reapCall // each successful Reap call, in order
	deadLists [][]string // each DeadWorkers answer
	recovered []string   // RecoverWorker's ids, in order
}

func (j *judgeStore) Heartbeat(ctx context.Context, w scheduler.WorkerInfo, now time.Time) error {
	if j.failHeartbeats.Load() {
		return fmt.Errorf("heartbeat: %w: injected fault", scheduler.ErrUnavailable)
	}
	err := j.Store.Heartbeat(ctx, w, now)
	if err == nil {
		j.beats.Add(1)
	}
	return err
}

func (j *judgeStore) Reap(ctx context.Context, shard, limit, maxAttempts int, now time.Time) (int, error) {
	n, err := j.Store.Reap(ctx, shard, limit, maxAttempts, now)
	if err == nil {
		j.mu.Lock()
		j.reaps = append(j.reaps, reapCall{shard, n})
		j.mu.Unlock()
	}
	return n, err
}

func (j *judgeStore) DeadWorkers(ctx context.Context, deadAfter time.Duration, now time.Time) ([]string, error) {
	ids, err := j.Store.DeadWorkers(ctx, deadAfter, now)
	if err != nil {
		return ids, err
	}
	if id := j.alsoDead.Load(); id != nil && !slices.Contains(ids, *id) {
		ids = append([]string{*id}, ids...)
	}
	j.mu.Lock()
	j.deadLists = append(j.deadLists, ids)
	j.mu.Unlock()
	return ids, nil
}

func (j *judgeStore) RecoverWorker(ctx context.Context, id string, deadAfter time.Duration, now time.Time) (int, error) {
	j.mu.Lock()
	j.recovered = append(j.recovered, id)
	j.mu.Unlock()
	return j.Store.RecoverWorker(ctx, id, deadAfter, now)
}

// reapCall is what one Reap call recovered in a shard.
type reapCall struct{ shard, n int }

func (j *judgeStore) reapCalls() []reapCall {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.reaps)
}

func (j *judgeStore) judged() (deadLists [][]string, recovered []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.deadLists), slices.Clone(j.recovered)
}

// reapBundle is a store on miniredis whose time, and the worker's, is a
// manual clock, and a destination that answers 200.
type reapBundle struct {
	st    *judgeStore
	clock *scheduler.ManualClock
	dest  *httptest.Server
	logs  *testproc.Buffer
}

// setupReap's destination answers with handle (nil: 200).
func setupReap(t *testing.T, shards int, handle http.HandlerFunc) *reapBundle {
	t.Helper()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "rp", Shards: shards})
	if handle == nil {
		handle = func(http.ResponseWriter, *http.Request) {}
	}
	dest := httptest.NewServer(handle)
	t.Cleanup(dest.Close)
	return &reapBundle{st: &judgeStore{Store: st}, clock: scheduler.NewManualClock(time.UnixMilli(1_700_000_000_000)),
		dest: dest, logs: &testproc.Buffer{}}
}

// create stores events due now, delivered to the destination.
func (b *reapBundle) create(t *testing.T, ids ...string) {
	t.Helper()
	now := b.clock.Now()
	evs := make([]*scheduler.Event, len(ids))
	for i, id := range ids {
		evs[i] = &scheduler.Event{App: "a", ID: id, URL: b.dest.URL + "/hook/" + id, Method: "POST",
			Status: scheduler.StatusPending, DueAt: now, CreatedAt: now, UpdatedAt: now}
	}
	// In pipelines of 200: miniredis runs each script in an interpreter,
	// and thousands in one pipeline can outlast the client's read timeout
	// on a loaded machine (-race, a parallel test suite).
	for from := 0; from < len(evs); from += 200 {
		to := min(from+200, len(evs))
		res, err := b.st.CreateMany(context.Background(), evs[from:to], now)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("create %s: %v", ids[from+i], r.Err)
			}
		}
	}
}

// claimAll claims every due event as worker (a peer of the worker under
// test) under a lease of visibility, and returns how many it took.
func (b *reapBundle) claimAll(t *testing.T, worker string, visibility time.Duration) int {
	t.Helper()
	n := 0
	for _, c := range b.claimShards(t, worker, visibility) {
		n += c
	}
	return n
}

// claimShards is claimAll by shard.
func (b *reapBundle) claimShards(t *testing.T, worker string, visibility time.Duration) []int {
	t.Helper()
	n := make([]int, b.st.Shards())
	for sh := range n {
		c, err := b.st.Store.Claim(context.Background(), sh, worker, maxClaim, visibility, b.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		n[sh] = len(c.Events)
	}
	return n
}

// maxClaim is the most events one claim takes.
const maxClaim = worker.MaxBatch

// beat records a heartbeat of a peer at the clock's time.
func (b *reapBundle) beat(t *testing.T, id string, deadAfter time.Duration) {
	t.Helper()
	if err := b.st.Store.Heartbeat(context.Background(), scheduler.WorkerInfo{ID: id, DeadAfterMS: deadAfter.Milliseconds()}, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

// run starts a worker on the bundle's store and clock; it stops when the
// test ends.
func (b *reapBundle) run(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	cfg.Clock = b.clock
	cfg.PollInterval = cmpOr(cfg.PollInterval, 20*time.Millisecond)
	cfg.ReapInterval = cmpOr(cfg.ReapInterval, 20*time.Millisecond)
	cfg.ShutdownTimeout = cmpOr(cfg.ShutdownTimeout, time.Second)
	cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, nil))
	w := worker.New(b.st, delivery.New(delivery.Config{}), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (b *reapBundle) get(t *testing.T, id string) *scheduler.Event {
	t.Helper()
	ev, err := b.st.Get(context.Background(), "a", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return ev
}

// waitReapCalls waits until the worker has made n more reap calls.
func (b *reapBundle) waitReapCalls(t *testing.T, n int) {
	t.Helper()
	from := len(b.st.reapCalls())
	waitUntil(t, 10*time.Second, "the reaper does not run", func() bool { return len(b.st.reapCalls()) >= from+n })
}

// waitBeats waits until the worker's heartbeat has succeeded n more
// times. Heartbeats are sequential: once the second of two has succeeded,
// the worker has recorded the first (its heartbeats succeed since then).
func (b *reapBundle) waitBeats(t *testing.T, n int64) {
	t.Helper()
	from := b.st.beats.Load()
	waitUntil(t, 10*time.Second, "the worker's heartbeats do not succeed", func() bool { return b.st.beats.Load() >= from+n })
}

// recoveredByReaper reports whether the event's first attempt was ended
// by the reaper (its lease expired) with the peer named as its worker.
func recoveredByReaper(ev *scheduler.Event, peer string) bool {
	return len(ev.History) > 0 && ev.History[0].Error == "lease expired" && ev.History[0].Worker == peer && ev.Worker != peer
}

// TestReaperReturnsExpiredLeases: an event claimed by a peer that never
// finishes it stays PROCESSING while its lease lasts, and comes back
// PENDING, due at once, with its attempt recorded as "lease expired", once
// the lease has expired and any worker's reaper has run.
func TestReaperReturnsExpiredLeases(t *testing.T) {
	t.Parallel()
	b := setupReap(t, 2, nil)
	b.create(t, "e1", "e2", "e3")
	if n := b.claimAll(t, "gone", 30*time.Second); n != 3 {
		t.Fatalf("the peer claimed %d events, want 3", n)
	}
	b.st.failHeartbeats.Store(true) // the worker under test reaps but claims nothing
	b.run(t, worker.Config{ID: "reaper"})

	b.clock.Advance(29 * time.Second)
	b.waitReapCalls(t, 6)
	for _, id := range []string{"e1", "e2", "e3"} {
		if ev := b.get(t, id); ev.Status != scheduler.StatusProcessing || ev.Worker != "gone" {
			t.Fatalf("%s within its lease: %s by %q, want PROCESSING by the peer", id, ev.Status, ev.Worker)
		}
	}

	expired := b.clock.Advance(2 * time.Second)
	for _, id := range []string{"e1", "e2", "e3"} {
		waitUntil(t, 10*time.Second, id+" did not come back after its lease expired", func() bool {
			return b.get(t, id).Status == scheduler.StatusPending
		})
		ev := b.get(t, id)
		if !recoveredByReaper(ev, "gone") || ev.Attempts != 1 || len(ev.History) != 1 || ev.DueAt.After(expired) {
			t.Errorf("%s: worker %q, attempts %d, due %s, history %+v; want 1 attempt recorded as lease expired, due by %s",
				id, ev.Worker, ev.Attempts, ev.DueAt, ev.History, expired)
		}
	}
}

// TestReaperRecoversMoreThanItsLimitInOneRound: when more leases expired
// in a shard than one reap call takes (a worker holding thousands of
// events died), one round of the reaper recovers all of them, call after
// call, instead of one call's worth per ReapInterval.
func TestReaperRecoversMoreThanItsLimitInOneRound(t *testing.T) {
	t.Parallel()
	n := 3 * worker.ReapLimit
	b := setupReap(t, 2, nil)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("e%04d", i)
	}
	b.create(t, ids...)
	perShard := b.claimShards(t, "gone", 30*time.Second)
	for sh, c := range perShard {
		if c <= worker.ReapLimit {
			t.Fatalf("shard %d holds %d events, want more than %d (events by shard: %v)", sh, c, worker.ReapLimit, perShard)
		}
	}
	b.clock.Advance(31 * time.Second)
	b.st.failHeartbeats.Store(true) // the worker under test reaps but claims nothing
	b.run(t, worker.Config{ID: "reaper"})

	// A round reaps the shards in order: it ends where the next one
	// starts again from a lower shard.
	var round []reapCall
	waitUntil(t, 30*time.Second, "the reaper's first round did not end", func() bool {
		calls := b.st.reapCalls()
		for i := 1; i < len(calls); i++ {
			if calls[i].shard < calls[i-1].shard {
				round = calls[:i]
				return true
			}
		}
		return false
	})
	got := make([]int, len(perShard))
	for _, c := range round {
		got[c.shard] += c.n
	}
	if !slices.Equal(got, perShard) {
		t.Errorf("the first reap round recovered %v expired leases by shard (calls %v), want all: %v", got, round, perShard)
	}
	live, err := b.st.Live(context.Background(), b.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if live.Pending != int64(n) || live.Processing != 0 {
		t.Errorf("after the round: %d pending, %d processing; want %d pending, none processing", live.Pending, live.Processing, n)
	}
}

// TestReaperEndsDeadWorkersLeases: a peer whose heartbeats stopped for
// longer than DeadAfter has its events delivered again long before their
// visibility timeout: its leases are ended and the reaper gives the
// events back, with the attempt recorded as "lease expired".
func TestReaperEndsDeadWorkersLeases(t *testing.T) {
	t.Parallel()
	b := setupReap(t, 2, nil)
	b.create(t, "held")
	if n := b.claimAll(t, "crashed", time.Hour); n != 1 {
		t.Fatalf("the peer claimed %d events, want 1", n)
	}
	b.beat(t, "crashed", 0)
	b.run(t, worker.Config{ID: "judge", HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 500 * time.Millisecond})
	b.waitBeats(t, 2)

	b.clock.Advance(2 * time.Second) // the peer silent 4 DeadAfters; its lease has an hour left
	waitUntil(t, 10*time.Second, "the dead peer's event was not delivered again", func() bool {
		return b.get(t, "held").Status == scheduler.StatusCompleted
	})
	ev := b.get(t, "held")
	if !recoveredByReaper(ev, "crashed") || len(ev.History) != 2 || ev.History[1].StatusCode != 200 || ev.History[1].Worker != "judge" {
		t.Errorf("history %+v: want attempt 1 lease expired (crashed), attempt 2 200 by judge", ev.History)
	}
	if ws, _ := b.st.Workers(context.Background(), time.Time{}); slices.ContainsFunc(ws, func(w scheduler.WorkerInfo) bool { return w.ID == "crashed" }) {
		t.Errorf("the dead peer is still listed among the workers")
	}
	if !strings.Contains(b.logs.String(), "worker stopped heartbeating") {
		t.Errorf("no log line about the dead peer")
	}
}

// TestReaperJudgesOnlyAfterBeatingForDeadAfter: a worker whose own
// heartbeats fail, or have succeeded for less than DeadAfter, judges no
// peer dead: after a Redis outage every heartbeat in Redis is old, and the
// peers must get the chance to beat again first.
func TestReaperJudgesOnlyAfterBeatingForDeadAfter(t *testing.T) {
	t.Parallel()
	const deadAfter = 500 * time.Millisecond
	b := setupReap(t, 1, nil)
	b.create(t, "held")
	if n := b.claimAll(t, "peer", time.Hour); n != 1 {
		t.Fatalf("the peer claimed %d events, want 1", n)
	}
	b.beat(t, "peer", 0)
	b.clock.Advance(2 * time.Second) // the peer looks dead by any DeadAfter here
	b.st.failHeartbeats.Store(true)
	b.run(t, worker.Config{ID: "judge", HeartbeatInterval: 50 * time.Millisecond, DeadAfter: deadAfter})
	stillHeld := func(when string) {
		t.Helper()
		if ev := b.get(t, "held"); ev.Status != scheduler.StatusProcessing || ev.Worker != "peer" {
			t.Fatalf("%s: the peer's event is %s by %q, want PROCESSING by the peer", when, ev.Status, ev.Worker)
		}
		if dead, recovered := b.st.judged(); len(dead) != 0 || len(recovered) != 0 {
			t.Fatalf("%s: dead worker checks %v, recovered %v; want none", when, dead, recovered)
		}
	}

	// A dead-worker check runs at most once a HeartbeatInterval of the
	// worker's clock, before that tick's reaping: each advance below is
	// followed by two reap calls, so a check ran after it.
	b.clock.Advance(time.Second)
	b.waitReapCalls(t, 2)
	stillHeld("while the judge's heartbeats fail")

	b.st.failHeartbeats.Store(false)
	b.waitBeats(t, 2)
	b.clock.Advance(deadAfter - 100*time.Millisecond)
	b.waitReapCalls(t, 2)
	stillHeld("before the judge has beaten for DeadAfter")

	b.clock.Advance(deadAfter)
	waitUntil(t, 10*time.Second, "the dead peer's event was not recovered once the judge had beaten for DeadAfter", func() bool {
		return recoveredByReaper(b.get(t, "held"), "peer")
	})
}

// TestReaperNeverJudgesItself: a worker listed among the dead (its own
// heartbeat lags in Redis, say after a pause) does not end its own
// leases: the delivery it has in flight completes as one attempt, while a
// dead peer listed with it is recovered.
func TestReaperNeverJudgesItself(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	release := make(chan struct{})
	b := setupReap(t, 1, func(_ http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/mine") {
			close(arrived)
			<-release
		}
	})
	b.create(t, "theirs")
	if n := b.claimAll(t, "peer", time.Hour); n != 1 {
		t.Fatalf("the peer claimed %d events, want 1", n)
	}
	b.beat(t, "peer", 0)
	b.create(t, "mine")
	b.run(t, worker.Config{ID: "judge", HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 500 * time.Millisecond})
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not deliver its own event")
	}

	judge := "judge"
	b.st.alsoDead.Store(&judge)
	b.clock.Advance(time.Second)
	waitUntil(t, 10*time.Second, "the dead peer was not recovered", func() bool {
		_, recovered := b.st.judged()
		return slices.Contains(recovered, "peer")
	})
	dead, recovered := b.st.judged()
	if !slices.ContainsFunc(dead, func(ids []string) bool { return slices.Contains(ids, "judge") }) {
		t.Fatalf("dead worker lists %v never named the judge", dead)
	}
	if slices.Contains(recovered, "judge") {
		t.Errorf("the worker ended its own leases (recovered %v)", recovered)
	}
	close(release)
	waitUntil(t, 10*time.Second, "the worker's own delivery did not complete", func() bool {
		return b.get(t, "mine").Status == scheduler.StatusCompleted
	})
	if ev := b.get(t, "mine"); len(ev.History) != 1 || ev.History[0].StatusCode != 200 || ev.History[0].Stale {
		t.Errorf("the worker's own event: history %+v, want one attempt, 200, not stale", ev.History)
	}
	waitUntil(t, 10*time.Second, "the dead peer's event was not delivered again", func() bool {
		return recoveredByReaper(b.get(t, "theirs"), "peer")
	})
}
