package worker_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// The hold tests run the archiver on a manual clock: a held create is
// written only when the test moves the clock past its hold, or when a
// record of its run comes, so nothing here depends on timing.

// createDue creates one event of app "app" due at due.
func (e *archEnv) createDue(t *testing.T, id string, due time.Time) {
	t.Helper()
	now := time.Now()
	ev := &scheduler.Event{App: "app", ID: id, URL: "https://example.com/" + id, Method: "POST", DueAt: due,
		Status: scheduler.StatusPending, CreatedAt: now, UpdatedAt: now, Body: []byte("body " + id)}
	if existing, err := e.store.Create(context.Background(), ev, now); err != nil || existing != nil {
		t.Fatalf("Create %s = %v, %v", id, existing, err)
	}
}

// deliverDue claims every due event and finishes it with o (the attempt
// number and time are filled in), in stream order per shard. It returns
// how many it finished.
func (e *archEnv) deliverDue(t *testing.T, o scheduler.Outcome) int {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	n := 0
	for sh := range e.shards {
		c, err := e.store.Claim(ctx, sh, "w", 1000, time.Minute, now)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		for _, ev := range c.Events {
			l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: "w", Attempt: ev.Attempts}
			o := o
			o.Attempt.Attempt, o.Attempt.At, o.Attempt.Worker = ev.Attempts, now.UnixMilli(), "w"
			if ok, err := e.store.Finish(ctx, l, o, now); !ok || err != nil {
				t.Fatalf("Finish %s = %v, %v", ev.ID, ok, err)
			}
			n++
		}
	}
	return n
}

var (
	completed = scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{StatusCode: 200}}
	retryLate = scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Hour, Attempt: scheduler.Attempt{StatusCode: 503}}
)

// pendingEntries is the number of outbox entries read by an archiver and
// not yet acknowledged, over all shards.
func (e *archEnv) pendingEntries(t *testing.T) int64 {
	t.Helper()
	var n int64
	for sh := range e.shards {
		p, err := e.rdb.XPending(context.Background(), e.outKey(sh), redisstore.ArchiverGroup).Result()
		if err != nil {
			continue // no group yet: nothing read
		}
		n += p.Count
	}
	return n
}

// waitHeld waits until n entries are read and unacknowledged while nothing
// is written, then lets the archiver run a few more rounds and checks that
// they stay so: the creates are held, not slow.
func waitHeld(t *testing.T, e *archEnv, fake *fakeArchive, n int64) {
	t.Helper()
	writes := fake.numCalls()
	waitFor(t, "the creates to be read", func() bool { return e.pendingEntries(t) == n })
	time.Sleep(60 * time.Millisecond) // several rounds at the tests' 10ms poll interval
	if got := e.pendingEntries(t); got != n || fake.numCalls() != writes {
		t.Fatalf("%d entries pending and %d more writes, want %d held creates and no write", got, fake.numCalls()-writes, n)
	}
}

// spyWriter records the batches it passes on to an archive.
type spyWriter struct {
	next    worker.ArchiveWriter
	mu      sync.Mutex
	batches [][]scheduler.Record
}

func (s *spyWriter) Write(ctx context.Context, recs []scheduler.Record) error {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(recs))
	s.mu.Unlock()
	return s.next.Write(ctx, recs)
}

// kinds lists a batch's records as "kind:id", in order.
func kinds(b []scheduler.Record) []string {
	var out []string
	for _, r := range b {
		out = append(out, string(r.Kind)+":"+r.ID)
	}
	return out
}

// sameKinds compares batches as sets of "kind:id" (a batch is one
// transaction: the order of its records does not matter).
func sameKinds(got []scheduler.Record, want ...string) bool {
	g := kinds(got)
	slices.Sort(g)
	slices.Sort(want)
	return slices.Equal(g, want)
}

func holdConfig(clock scheduler.Clock) worker.ArchiverConfig {
	return worker.ArchiverConfig{Consumer: "a", Clock: clock, HoldCreates: time.Second}
}

// TestArchiverHoldMergesCreateAndFinal: a create due now is held until its
// final outcome comes and both are written in one batch (one archive row).
func TestArchiverHoldMergesCreateAndFinal(t *testing.T) {
	t.Parallel()
	e, _, fake := startHolding(t, 2)

	e.createDue(t, "m1", time.Now())
	e.createDue(t, "m2", time.Now())
	waitHeld(t, e, fake, 2)
	if n := e.deliverDue(t, completed); n != 2 {
		t.Fatalf("delivered %d events, want 2", n)
	}
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 && e.pendingEntries(t) == 0 })
	var got []scheduler.Record
	for _, b := range fake.committed() {
		got = append(got, b...)
		// Each run's create is in the batch of its final.
		for _, r := range b {
			if r.Kind == scheduler.RecordFinal && !slices.ContainsFunc(b, func(c scheduler.Record) bool {
				return c.Kind == scheduler.RecordCreate && c.ID == r.ID
			}) {
				t.Fatalf("batch %q: the final of %s without its create", kinds(b), r.ID)
			}
		}
	}
	if !sameKinds(got, "create:m1", "final:m1", "create:m2", "final:m2") {
		t.Fatalf("written %q, want each create and final once", kinds(got))
	}
}

// TestArchiverHoldRunsOut: a create whose run has no other record within
// the hold is written alone when the hold runs out.
func TestArchiverHoldRunsOut(t *testing.T) {
	t.Parallel()
	e, clock, fake := startHolding(t, 1)

	e.createDue(t, "r1", time.Now())
	waitHeld(t, e, fake, 1)
	clock.Advance(999 * time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	if fake.numCalls() != 0 {
		t.Fatalf("the create was written before its hold ran out")
	}
	clock.Advance(time.Millisecond)
	waitFor(t, "the create to be written", func() bool { return e.lag(t) == 0 })
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:r1") {
		t.Fatalf("batches %v, want one with the create", b)
	}
}

// TestArchiverHoldOnlyCreatesDueSoon: a create of an event due after the
// hold would run out, and the other kinds of records, are written at once.
func TestArchiverHoldOnlyCreatesDueSoon(t *testing.T) {
	t.Parallel()
	e, _, fake := startHolding(t, 1)

	e.createDue(t, "later", time.Now().Add(time.Hour))
	waitFor(t, "the create due later to be written", func() bool { return e.lag(t) == 0 })

	// A requeue (made due now) is not held either.
	if _, err := e.store.Requeue(context.Background(), "app", "later", []scheduler.Status{scheduler.StatusPending}, false, time.Now()); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	waitFor(t, "the requeue to be written", func() bool { return e.lag(t) == 0 })
	var got []scheduler.Record
	for _, b := range fake.committed() {
		got = append(got, b...)
	}
	if !sameKinds(got, "create:later", "requeue:later") {
		t.Fatalf("written %q", kinds(got))
	}
}

// TestArchiverHoldAttemptReleases: any later record of the run (here a
// failed attempt that retries in an hour) releases its held create.
func TestArchiverHoldAttemptReleases(t *testing.T) {
	t.Parallel()
	e, _, fake := startHolding(t, 1)

	e.createDue(t, "a1", time.Now())
	waitHeld(t, e, fake, 1)
	e.deliverDue(t, retryLate)
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:a1", "attempt:a1") {
		t.Fatalf("batches %v, want one with the create and the attempt", b)
	}
}

// TestArchiverHoldBatchBound: at most Batch creates are held (more are
// written at once), and a batch never exceeds Batch records: held creates
// whose finals fill a batch are written by the next round, without waiting
// for their hold to run out.
func TestArchiverHoldBatchBound(t *testing.T) {
	t.Parallel()
	e := newArchEnv(t, 1)
	clock := scheduler.NewManualClock(time.Now())
	fake := &fakeArchive{}
	cfg := holdConfig(clock)
	cfg.Batch = 2
	runArchiver(t, e.store, fake, cfg)

	for _, id := range []string{"b1", "b2", "b3"} {
		e.createDue(t, id, time.Now())
	}
	waitFor(t, "the third create to be written", func() bool { return fake.numCalls() == 1 })
	waitHeld(t, e, fake, 2)
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:b3") {
		t.Fatalf("batches %v, want one with the create the full hold could not take", b)
	}
	e.deliverDue(t, completed)
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 && e.pendingEntries(t) == 0 })
	var got []scheduler.Record
	for _, b := range fake.committed() {
		if len(b) > cfg.Batch {
			t.Fatalf("batch %q exceeds Batch %d", kinds(b), cfg.Batch)
		}
		got = append(got, b...)
	}
	want := []string{"create:b1", "create:b2", "create:b3", "final:b1", "final:b2", "final:b3"}
	if !sameKinds(got, want...) {
		t.Fatalf("written %q, want %q once each", kinds(got), want)
	}
}

// TestArchiverHoldFlushedAtShutdown: a stopping archiver writes what it
// holds.
func TestArchiverHoldFlushedAtShutdown(t *testing.T) {
	t.Parallel()
	e := newArchEnv(t, 2)
	fake := &fakeArchive{}
	stop := runArchiver(t, e.store, fake, holdConfig(scheduler.NewManualClock(time.Now())))
	e.createDue(t, "s1", time.Now())
	waitHeld(t, e, fake, 1)
	stop()
	if n := e.lag(t); n != 0 {
		t.Fatalf("outbox lag %d after shutdown, want the held create written and acknowledged", n)
	}
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:s1") {
		t.Fatalf("batches %v, want one with the held create", b)
	}
}

// TestArchiverHoldKeptPendingWhenFlushFails: when the archive is down at
// shutdown, the held create stays pending and the next life of the
// archiver (same consumer) writes it at once, without holding it again.
func TestArchiverHoldKeptPendingWhenFlushFails(t *testing.T) {
	t.Parallel()
	e := newArchEnv(t, 2)
	clock := scheduler.NewManualClock(time.Now())
	fake := &fakeArchive{}
	stop := runArchiver(t, e.store, fake, holdConfig(clock))
	e.createDue(t, "k1", time.Now())
	waitHeld(t, e, fake, 1)
	fake.setDown(true)
	stop()
	if n := e.pendingEntries(t); n != 1 || e.lag(t) != 1 {
		t.Fatalf("%d entries pending (lag %d) after a failed flush, want the create kept", n, e.lag(t))
	}
	fake.setDown(false)
	runArchiver(t, e.store, fake, holdConfig(clock))
	waitFor(t, "the create to be written", func() bool { return e.lag(t) == 0 })
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:k1") {
		t.Fatalf("batches %v, want one with the create", b)
	}
}

// TestArchiverHoldAfterFailedWrite: a failed write makes the archiver read
// its pending entries again, held creates included; they are written with
// the rest once the archive is back, once each, without a second hold.
func TestArchiverHoldAfterFailedWrite(t *testing.T) {
	t.Parallel()
	e, _, fake := startHolding(t, 1)
	e.createDue(t, "f1", time.Now())
	waitHeld(t, e, fake, 1)
	fake.setDown(true)
	e.createDue(t, "f2", time.Now().Add(time.Hour)) // written at once: fails
	waitFor(t, "a failed write", func() bool { return fake.numCalls() >= 1 })
	fake.setDown(false)
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	fake.noDupsInBatch(t)
	var got []scheduler.Record
	for _, b := range fake.committed() {
		got = append(got, b...)
	}
	if !sameKinds(got, "create:f1", "create:f2") {
		t.Fatalf("written %q, want each create once", kinds(got))
	}
}

// TestArchiverHoldRunsOfOneEvent: on a real SQLite archive, an event
// created, delivered, retried and delivered again ends as one row with both
// attempts, whatever the hold did with its create; the create and its first
// final are one batch.
func TestArchiverHoldRunsOfOneEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newArchEnv(t, 1)
	arch, err := archive.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "archive.db"))
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	t.Cleanup(func() { _ = arch.Close() })
	if err := arch.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	spy := &spyWriter{next: arch}
	runArchiver(t, e.store, spy, holdConfig(scheduler.NewManualClock(time.Now())))

	e.createDue(t, "o1", time.Now())
	waitFor(t, "the create to be held", func() bool { return e.pendingEntries(t) == 1 })
	e.deliverDue(t, scheduler.Outcome{Status: scheduler.StatusFailed, Attempt: scheduler.Attempt{StatusCode: 500}})
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	if _, err := e.store.Requeue(ctx, "app", "o1", []scheduler.Status{scheduler.StatusFailed}, true, time.Now()); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	// The retry is due now: the next claim delivers it.
	time.Sleep(2 * time.Millisecond)
	if n := e.deliverDue(t, completed); n != 1 {
		t.Fatalf("delivered %d events after the retry, want 1", n)
	}
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })

	spy.mu.Lock()
	first := spy.batches[0]
	spy.mu.Unlock()
	if !sameKinds(first, "create:o1", "final:o1") {
		t.Fatalf("first batch %q, want the create with its final", kinds(first))
	}
	ev, err := arch.Get(ctx, "app", "o1")
	if err != nil {
		t.Fatalf("archive Get: %v", err)
	}
	if ev.Status != scheduler.StatusCompleted || ev.URL != "https://example.com/o1" || len(ev.History) != 2 {
		t.Fatalf("archived run: status %s, url %q, %d attempts; want COMPLETED, the create's url, 2 attempts",
			ev.Status, ev.URL, len(ev.History))
	}
	var rows int
	if err := arch.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE app = 'app' AND event_id = 'o1'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows for the event (%v), want 1", rows, err)
	}
}

// startHolding runs an archiver with the hold (holdConfig) on a manual
// clock over shards outbox shards, writing into a fake archive.
func startHolding(t *testing.T, shards int) (*archEnv, *scheduler.ManualClock, *fakeArchive) {
	t.Helper()
	e := newArchEnv(t, shards)
	clock := scheduler.NewManualClock(time.Now())
	fake := &fakeArchive{}
	runArchiver(t, e.store, fake, holdConfig(clock))
	return e, clock, fake
}

// TestArchiverHoldPackedEntry: the creates of a batch share one packed
// outbox entry. One of them, due now, is held; the others are written at
// once, and the entry stays unacknowledged (in the outbox, pending) until
// the held one is written too, with its final; then it is acknowledged and
// deleted, and nothing was written twice.
func TestArchiverHoldPackedEntry(t *testing.T) {
	t.Parallel()
	e, _, fake := startHolding(t, 1)
	now := time.Now()
	var evs []*scheduler.Event
	for _, c := range []struct {
		id  string
		due time.Time
	}{{"p1", now}, {"p2", now.Add(time.Hour)}, {"p3", now.Add(time.Hour)}, {"p4", now}} {
		evs = append(evs, &scheduler.Event{App: "app", ID: c.id, URL: "https://example.com/" + c.id, Method: "POST",
			DueAt: c.due, Status: scheduler.StatusPending, CreatedAt: now, UpdatedAt: now})
	}
	if _, err := e.store.CreateMany(context.Background(), evs, now); err != nil {
		t.Fatal(err)
	}
	if got := e.entries(t); len(got) != 4 || e.lag(t) != 1 {
		t.Fatalf("outbox = %d records in %d entries, want 4 in one packed entry", len(got), e.lag(t))
	}
	waitFor(t, "the creates not due to be written", func() bool { return fake.numCalls() == 1 })
	waitHeld(t, e, fake, 1)
	if b := fake.committed(); len(b) != 1 || !sameKinds(b[0], "create:p2", "create:p3") {
		t.Fatalf("batches %v, want one with the creates that are not held", b)
	}
	if e.lag(t) != 1 {
		t.Fatalf("lag %d: the packed entry must stay while two of its records are held", e.lag(t))
	}
	// p1 and p4 delivered: their finals release their creates, and the
	// entry's last records are written.
	if n := e.deliverDue(t, completed); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 && e.pendingEntries(t) == 0 })
	var got []scheduler.Record
	for _, b := range fake.committed() {
		got = append(got, b...)
	}
	if !sameKinds(got, "create:p1", "create:p2", "create:p3", "create:p4", "final:p1", "final:p4") {
		t.Fatalf("written %q, want each create and final once", kinds(got))
	}
}
