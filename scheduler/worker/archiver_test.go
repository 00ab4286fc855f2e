package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// fakeArchive records what it commits. Like the SQL archive it refuses a
// whole batch that holds a record it cannot store. It can be taken down
// (nothing committed) or told to commit and then fail (a crash between
// the commit and the acknowledgement).
type fakeArchive struct {
	mu sync.Mutex
	// batches are the committed batches, in commit order.
	batches [][]scheduler.Record
	calls   int
	down    bool
	// failAfterCommit: the next this many writes commit, then report an error.
	failAfterCommit int
	// dupInBatch lists entries (see key) seen twice within one Write.
	dupInBatch []string
	// check runs on every committed batch, under the lock.
	check func([]scheduler.Record)
	// delay slows every write (so concurrent archivers interleave).
	delay time.Duration
}

func (f *fakeArchive) Write(ctx context.Context, recs []scheduler.Record) error {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return errors.New("archive: connection refused")
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Kind == "" || r.App == "" || r.ID == "" || r.CreatedMS <= 0 || r.Status == "" {
			return &scheduler.ValidationError{Field: "record", Message: fmt.Sprintf("record %s cannot be stored: %+v", r.StreamID, r)}
		}
		if seen[key(r)] {
			f.dupInBatch = append(f.dupInBatch, key(r))
		}
		seen[key(r)] = true
	}
	if len(recs) == 0 {
		return nil
	}
	if f.check != nil {
		f.check(recs)
	}
	f.batches = append(f.batches, slices.Clone(recs))
	if f.failAfterCommit > 0 {
		f.failAfterCommit--
		return errors.New("archive: connection lost after commit")
	}
	return nil
}

func (f *fakeArchive) Get(context.Context, string, string) (*scheduler.Event, error) {
	return nil, scheduler.ErrNotFound
}

func (f *fakeArchive) Search(context.Context, scheduler.SearchQuery) (scheduler.SearchPage, error) {
	return scheduler.SearchPage{}, nil
}

func (f *fakeArchive) Ping(context.Context) error { return nil }

func (f *fakeArchive) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// noDupsInBatch fails the test when an entry came twice in one batch.
func (f *fakeArchive) noDupsInBatch(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.dupInBatch) > 0 {
		t.Fatalf("entries %q appeared twice in one batch", f.dupInBatch)
	}
}

func (f *fakeArchive) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// key names an outbox record: stream ids are only unique within a shard,
// and a packed entry holds many records.
func key(r scheduler.Record) string { return recKey(r.Shard, r.StreamID, r.Part) }

func recKey(shard int, id string, part int) string {
	return strconv.Itoa(shard) + "/" + id + "#" + strconv.Itoa(part)
}

// written counts how often each entry (see key) was committed.
func (f *fakeArchive) written() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, b := range f.batches {
		for _, r := range b {
			n[key(r)]++
		}
	}
	return n
}

func (f *fakeArchive) committed() [][]scheduler.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

const archNS = "arch"

// archEnv is a redisstore on miniredis with a handful of shards.
type archEnv struct {
	mr     *miniredis.Miniredis
	rdb    *redis.Client
	store  *redisstore.Store
	shards int
	seq    int
	// batched: produce creates and finishes in batches (CreateMany,
	// FinishMany), which write packed outbox entries (the store's
	// namespace has the layout of this release), rather than one by one.
	batched bool
}

// bothWays runs test f with events produced one by one and in batches.
func bothWays(t *testing.T, f func(t *testing.T, batched bool)) {
	for _, batched := range []bool{false, true} {
		t.Run(map[bool]string{false: "one by one", true: "batched"}[batched], func(t *testing.T) {
			t.Parallel()
			f(t, batched)
		})
	}
}

func newArchEnv(t *testing.T, shards int) *archEnv {
	t.Helper()
	mr := miniredis.RunT(t)
	e := &archEnv{mr: mr, shards: shards}
	e.rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = e.rdb.Close() })
	e.store = e.newStore(t)
	return e
}

// newStore is another store (own client) on the same Redis: another worker.
func (e *archEnv) newStore(t *testing.T) *redisstore.Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := redisstore.New(context.Background(), rdb, redisstore.Config{Namespace: archNS, Shards: e.shards, Retention: time.Hour})
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	return st
}

func (e *archEnv) outKey(shard int) string {
	return fmt.Sprintf("%s:{%s:%d}:out", archNS, archNS, shard)
}

func (e *archEnv) evKey(id string) string {
	for sh := range e.shards {
		k := fmt.Sprintf("%s:{%s:%d}:ev:app/%s", archNS, archNS, sh, id)
		if e.mr.Exists(k) {
			return k
		}
	}
	return ""
}

// produce creates n events due now, claims them and finishes them: even
// ones complete (create + final), odd ones fail and retry (create +
// attempt). It returns the ids.
func (e *archEnv) produce(t *testing.T, n int) []string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	var ids []string
	var evs []*scheduler.Event
	for range n {
		id := "e" + strconv.Itoa(e.seq)
		e.seq++
		ids = append(ids, id)
		ev := &scheduler.Event{App: "app", ID: id, URL: "https://example.com/" + id, Method: "POST", DueAt: now,
			Status: scheduler.StatusPending, CreatedAt: now, UpdatedAt: now, Body: []byte("body " + id)}
		evs = append(evs, ev)
		if e.batched {
			continue
		}
		if existing, err := e.store.Create(ctx, ev, now); err != nil || existing != nil {
			t.Fatalf("Create %s = %v, %v", id, existing, err)
		}
	}
	if e.batched {
		res, err := e.store.CreateMany(ctx, evs, now)
		if err != nil {
			t.Fatalf("CreateMany: %v", err)
		}
		for i, r := range res {
			if r.Err != nil || r.Existing != nil {
				t.Fatalf("CreateMany %s = %+v", evs[i].ID, r)
			}
		}
	}
	var items []scheduler.FinishItem
	for sh := range e.shards {
		c, err := e.store.Claim(ctx, sh, "w", 1000, time.Minute, now)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		for _, ev := range c.Events {
			num, _ := strconv.Atoi(strings.TrimPrefix(ev.ID, "e"))
			l := scheduler.Lease{App: ev.App, ID: ev.ID, Worker: "w", Attempt: ev.Attempts}
			o := scheduler.Outcome{Status: scheduler.StatusCompleted,
				Attempt: scheduler.Attempt{Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 200, Worker: "w"}}
			if num%2 == 1 {
				o = scheduler.Outcome{Status: scheduler.StatusPending, Backoff: time.Hour,
					Attempt: scheduler.Attempt{Attempt: ev.Attempts, At: now.UnixMilli(), StatusCode: 503, Worker: "w"}}
			}
			if e.batched {
				items = append(items, scheduler.FinishItem{Lease: l, Outcome: o, Now: now})
				continue
			}
			if ok, err := e.store.Finish(ctx, l, o, now); !ok || err != nil {
				t.Fatalf("Finish %s = %v, %v", ev.ID, ok, err)
			}
		}
	}
	for i, r := range e.store.FinishMany(ctx, items) {
		if !r.Held || r.Err != nil {
			t.Fatalf("FinishMany %s = %v, %v", items[i].Lease.ID, r.Held, r.Err)
		}
	}
	return ids
}

// entries returns every record now in the outboxes (see key), shard by
// shard: one per entry, or, for a packed one, as many as it holds.
func (e *archEnv) entries(t *testing.T) []string {
	t.Helper()
	var out []string
	for sh := range e.shards {
		msgs, err := e.rdb.XRange(context.Background(), e.outKey(sh), "-", "+").Result()
		if err != nil {
			t.Fatalf("XRANGE: %v", err)
		}
		for _, m := range msgs {
			parts := 1
			if k := m.Values["k"]; k == "creates" || k == "finals" {
				parts, _ = strconv.Atoi(m.Values["n"].(string))
			}
			for p := range parts {
				out = append(out, recKey(sh, m.ID, p))
			}
		}
	}
	return out
}

func (e *archEnv) lag(t *testing.T) int64 {
	t.Helper()
	n, _, err := e.store.OutboxLag(context.Background())
	if err != nil {
		t.Fatalf("OutboxLag: %v", err)
	}
	return n
}

// runArchiver runs an archiver until the test ends or stop is called.
func runArchiver(t *testing.T, outbox worker.Outbox, archive worker.ArchiveWriter, cfg worker.ArchiverConfig) (stop func()) {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := worker.NewArchiver(outbox, archive, cfg)
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("archiver %s did not stop", cfg.Consumer)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// counter reads a counter of reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// streamLess orders stream ids ("ms-seq") numerically.
func streamCmp(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if an != bn {
		if an < bn {
			return -1
		}
		return 1
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	switch {
	case asq < bsq:
		return -1
	case asq > bsq:
		return 1
	}
	return 0
}

// recCmp orders records "<stream id>#<part>".
func recCmp(a, b string) int {
	aid, ap, _ := strings.Cut(a, "#")
	bid, bp, _ := strings.Cut(b, "#")
	if c := streamCmp(aid, bid); c != 0 {
		return c
	}
	an, _ := strconv.Atoi(ap)
	bn, _ := strconv.Atoi(bp)
	return an - bn
}

// exactlyOnce checks that every id was written exactly once, and nothing else.
func exactlyOnce(t *testing.T, written map[string]int, ids []string) {
	t.Helper()
	if len(written) != len(ids) {
		t.Fatalf("%d distinct entries written, want %d", len(written), len(ids))
	}
	for _, id := range ids {
		if written[id] != 1 {
			t.Fatalf("entry %s written %d times, want once", id, written[id])
		}
	}
}

func TestArchiverWritesThenAcknowledges(t *testing.T) {
	bothWays(t, testArchiverWritesThenAcknowledges)
}

func testArchiverWritesThenAcknowledges(t *testing.T, batched bool) {
	e := newArchEnv(t, 4)
	e.batched = batched
	ids := e.produce(t, 30)
	want := e.entries(t)
	// Batched: a packed entry per shard for the creates, another for the
	// finals, and an attempt entry per retried event.
	if lag := e.lag(t); len(want) != 60 || !batched && lag != 60 || batched && lag != 2*4+15 {
		t.Fatalf("outbox holds %d records (lag %d entries), want 60", len(want), lag)
	}

	fake := &fakeArchive{}
	// Acknowledged only after the commit: every record written is still in
	// the outbox at that moment.
	fake.check = func(recs []scheduler.Record) {
		for _, r := range recs {
			msgs, err := e.rdb.XRange(context.Background(), e.outKey(r.Shard), r.StreamID, r.StreamID).Result()
			if err != nil || len(msgs) != 1 {
				t.Errorf("record %s written after it left the outbox (%v)", r.StreamID, err)
			}
		}
	}
	reg := prometheus.NewRegistry()
	metrics := scheduler.NewMetrics(reg)
	const batch = 7
	// Without holding creates back (archivehold_test.go): every entry is
	// then written in stream order.
	stop := runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "a", Batch: batch, Metrics: metrics, HoldCreates: -1})
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	stop()

	exactlyOnce(t, fake.written(), want)
	// In order: within a shard, entries are written in stream order; a
	// batch never exceeds the batch size.
	last := map[int]string{}
	for _, b := range fake.committed() {
		if len(b) > batch {
			t.Fatalf("batch of %d records, limit %d", len(b), batch)
		}
		for _, r := range b {
			at := r.StreamID + "#" + strconv.Itoa(r.Part)
			if prev, ok := last[r.Shard]; ok && recCmp(prev, at) >= 0 {
				t.Fatalf("shard %d: %s written after %s", r.Shard, at, prev)
			}
			last[r.Shard] = at
		}
	}
	for sh := range e.shards {
		if n := e.mr.Exists(e.outKey(sh)); n {
			if l, _ := e.rdb.XLen(context.Background(), e.outKey(sh)).Result(); l != 0 {
				t.Fatalf("shard %d: XLEN %d after archiving", sh, l)
			}
		}
	}
	if got := counter(t, reg, "cassata_archived_records_total"); got != float64(len(want)) {
		t.Fatalf("archived metric = %v, want %d", got, len(want))
	}
	// Acknowledged finals start their retention window; retrying events stay.
	for _, id := range ids {
		num, _ := strconv.Atoi(strings.TrimPrefix(id, "e"))
		ttl := e.mr.TTL(e.evKey(id))
		if num%2 == 0 && ttl <= 0 {
			t.Fatalf("%s completed and archived, but no expiry", id)
		}
		if num%2 == 1 && ttl != 0 {
			t.Fatalf("%s is live, but expires in %v", id, ttl)
		}
	}
}

func TestArchiverArchiveDown(t *testing.T) { bothWays(t, testArchiverArchiveDown) }

func testArchiverArchiveDown(t *testing.T, batched bool) {
	e := newArchEnv(t, 2)
	e.batched = batched
	e.produce(t, 5)
	before := e.entries(t)

	fake := &fakeArchive{down: true}
	reg := prometheus.NewRegistry()
	metrics := scheduler.NewMetrics(reg)
	runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "a", Batch: 4, Metrics: metrics})
	waitFor(t, "three failed writes", func() bool { return fake.numCalls() >= 3 })
	if got := e.entries(t); !slices.Equal(got, before) {
		t.Fatalf("outbox changed while the archive is down: %d entries, had %d", len(got), len(before))
	}
	// Deliveries go on; the outbox grows.
	e.produce(t, 5)
	all := e.entries(t)
	if len(all) != 20 {
		t.Fatalf("outbox holds %d records, want 20", len(all))
	}
	calls := fake.numCalls()
	waitFor(t, "another failed write", func() bool { return fake.numCalls() > calls })
	if n := e.lag(t); n == 0 || !batched && n != 20 {
		t.Fatalf("lag = %d entries while down, want 20 records' worth", n)
	}
	if len(fake.committed()) != 0 {
		t.Fatalf("a down archive committed %d batches", len(fake.committed()))
	}
	if got := counter(t, reg, "cassata_archive_errors_total"); got < 3 {
		t.Fatalf("archive error metric = %v, want >= 3", got)
	}

	fake.setDown(false)
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	exactlyOnce(t, fake.written(), all)
}

func TestArchiverCommitThenError(t *testing.T) { bothWays(t, testArchiverCommitThenError) }

func testArchiverCommitThenError(t *testing.T, batched bool) {
	e := newArchEnv(t, 2)
	e.batched = batched
	e.produce(t, 10)
	want := e.entries(t)

	fake := &fakeArchive{failAfterCommit: 1}
	stop := runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "a", Batch: 500})
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	stop()

	// The batch was committed, not acknowledged, and so written again:
	// the same stream ids twice, which the SQL archive's idempotent writes absorb.
	batches := fake.committed()
	if len(batches) != 2 {
		t.Fatalf("%d batches committed, want 2 (the batch, then the same batch again)", len(batches))
	}
	ids := func(b []scheduler.Record) []string {
		var out []string
		for _, r := range b {
			out = append(out, key(r))
		}
		slices.Sort(out)
		return out
	}
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	if !slices.Equal(ids(batches[0]), sorted) || !slices.Equal(ids(batches[1]), sorted) {
		t.Fatalf("batches = %q and %q, want both %q", ids(batches[0]), ids(batches[1]), sorted)
	}
	for id, n := range fake.written() {
		if n != 2 {
			t.Fatalf("%s written %d times, want 2", id, n)
		}
	}
}

func TestArchiverTwoConsumers(t *testing.T) { bothWays(t, testArchiverTwoConsumers) }

func testArchiverTwoConsumers(t *testing.T, batched bool) {
	e := newArchEnv(t, 4)
	e.batched = batched
	fa := &fakeArchive{delay: time.Millisecond}
	fb := &fakeArchive{delay: time.Millisecond}
	runArchiver(t, e.store, fa, worker.ArchiverConfig{Consumer: "a", Batch: 5})
	runArchiver(t, e.newStore(t), fb, worker.ArchiverConfig{Consumer: "b", Batch: 5})

	// Events keep finishing while both archive.
	for range 20 {
		e.produce(t, 5)
		time.Sleep(3 * time.Millisecond)
	}
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })

	wa, wb := fa.written(), fb.written()
	total := len(wa) + len(wb)
	if total != 200 {
		t.Fatalf("a wrote %d entries, b %d: %d in all, want 200", len(wa), len(wb), total)
	}
	for id, n := range wa {
		if n != 1 || wb[id] != 0 {
			t.Fatalf("entry %s written %d times by a and %d by b", id, n, wb[id])
		}
	}
	for id, n := range wb {
		if n != 1 {
			t.Fatalf("entry %s written %d times by b", id, n)
		}
	}
	if len(wa) == 0 || len(wb) == 0 {
		t.Fatalf("a wrote %d entries, b %d: want both to share the work", len(wa), len(wb))
	}
}

func TestArchiverSkipsMalformed(t *testing.T) {
	t.Parallel()
	e := newArchEnv(t, 1)
	ctx := context.Background()
	e.produce(t, 2)
	var bad []string
	for _, v := range []map[string]any{
		{"garbage": "x"},
		// Readable, but the archive could never store it (no creation
		// time): it must not hold back the entries after it.
		{"m": "app/zz", "k": "create", "t": "1", "s": "PENDING", "u": "https://x/", "d": "1"},
	} {
		id, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.outKey(0), Values: v}).Result()
		if err != nil {
			t.Fatal(err)
		}
		bad = append(bad, recKey(0, id, 0))
	}
	e.produce(t, 2)
	var good []string
	for _, id := range e.entries(t) {
		if !slices.Contains(bad, id) {
			good = append(good, id)
		}
	}

	fake := &fakeArchive{}
	runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "a", Batch: 3})
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	exactlyOnce(t, fake.written(), good)
}

func TestArchiverTakesOverStoppedConsumer(t *testing.T) {
	bothWays(t, testArchiverTakesOverStoppedConsumer)
}

func testArchiverTakesOverStoppedConsumer(t *testing.T, batched bool) {
	e := newArchEnv(t, 2)
	e.batched = batched
	ctx := context.Background()
	e.produce(t, 10)
	want := e.entries(t)
	// An archiver read everything and died before writing it.
	for sh := range e.shards {
		if _, err := e.store.ReadOutbox(ctx, sh, "dead", false, 100); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeArchive{}
	runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "live", Batch: 50, ClaimIdle: 100 * time.Millisecond})
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	exactlyOnce(t, fake.written(), want)
	for sh := range e.shards {
		if p, err := e.rdb.XPending(ctx, e.outKey(sh), redisstore.ArchiverGroup).Result(); err != nil || p.Count != 0 {
			t.Fatalf("shard %d pending = %+v, %v", sh, p, err)
		}
	}
}

// An outage longer than the claim idle time: the archiver's own pending
// entries are then both claimable and its pending ones. A batch must hold
// each entry once.
func TestArchiverNoDuplicateInBatchAfterOutage(t *testing.T) {
	bothWays(t, testArchiverNoDuplicateInBatchAfterOutage)
}

func testArchiverNoDuplicateInBatchAfterOutage(t *testing.T, batched bool) {
	e := newArchEnv(t, 2)
	e.batched = batched
	e.produce(t, 5)
	want := e.entries(t)
	fake := &fakeArchive{down: true}
	runArchiver(t, e.store, fake, worker.ArchiverConfig{Consumer: "a", Batch: 50, ClaimIdle: 60 * time.Millisecond})
	// Backoff doubles from 10ms: after 5 failures it exceeds the claim idle time.
	waitFor(t, "six failed writes", func() bool { return fake.numCalls() >= 6 })
	fake.setDown(false)
	waitFor(t, "the outbox to drain", func() bool { return e.lag(t) == 0 })
	fake.noDupsInBatch(t)
	exactlyOnce(t, fake.written(), want)
}

// TestArchiverYieldsToBusyDeliveries: while the deliveries are saturated the
// archiver writes nothing for YieldFor, then archives anyway; once they are
// not, it archives at once.
func TestArchiverYieldsToBusyDeliveries(t *testing.T) {
	e := newArchEnv(t, 2)
	fa := &fakeArchive{}
	var busy atomic.Bool
	busy.Store(true)
	const yieldFor = 400 * time.Millisecond
	e.produce(t, 4)
	start := time.Now()
	runArchiver(t, e.store, fa, worker.ArchiverConfig{Consumer: "a1",
		Busy: busy.Load, YieldFor: yieldFor})
	time.Sleep(yieldFor / 2)
	if n := fa.numCalls(); n != 0 {
		t.Fatalf("archiver wrote %d batches while the deliveries were busy, before YieldFor", n)
	}
	waitArch(t, func() bool { return e.lag(t) == 0 })
	if took := time.Since(start); took < yieldFor {
		t.Errorf("archived %s after start while busy, want after YieldFor %s", took, yieldFor)
	}

	// Not busy: the next entries are archived without waiting.
	busy.Store(false)
	e.produce(t, 2)
	start = time.Now()
	waitArch(t, func() bool { return e.lag(t) == 0 })
	if took := time.Since(start); took >= yieldFor {
		t.Errorf("archived %s after the entries appeared while idle, want well under %s", took, yieldFor)
	}
}

func waitArch(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
