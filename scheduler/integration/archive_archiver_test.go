package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// mixedHandler answers by event id prefix: "bad-" 404 (FAILED at once),
// "down-" 503 (retried, then SERVICE_UNAVAILABLE), anything else 200.
func mixedHandler(w http.ResponseWriter, r *http.Request, a arrival) {
	switch {
	case strings.HasPrefix(a.ID, "bad-"):
		http.Error(w, "no such order", http.StatusNotFound)
	case strings.HasPrefix(a.ID, "down-"):
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	default:
		ok(w, r, a)
	}
}

// expectedRun is what the archive must hold for an event once it finished.
type expectedRun struct {
	status   scheduler.Status
	attempts int
}

// scheduleMixed creates n events with mixedHandler outcomes in equal parts:
// ok (COMPLETED, 1 attempt), bad (FAILED, 1), down (max_attempts 2:
// SERVICE_UNAVAILABLE, 2) and cancelled (due in an hour, cancelled: 0). It
// returns what each must end as, and the attempts rows expected in total.
func (e *archEnv) scheduleMixed(tag string, n int) (map[string]expectedRun, int) {
	e.t.Helper()
	want := make(map[string]expectedRun, n)
	var evs, cancel []*scheduler.Event
	total := 0
	for i := range n {
		var ev *scheduler.Event
		switch i % 4 {
		case 0, 3:
			if i%8 == 3 {
				ev = e.event(fmt.Sprintf("cancel-%s-%04d", tag, i))
				ev.DueAt = time.Now().Add(time.Hour)
				want[ev.ID] = expectedRun{scheduler.StatusCancelled, 0}
				cancel = append(cancel, ev)
				break
			}
			ev = e.event(fmt.Sprintf("ok-%s-%04d", tag, i))
			want[ev.ID] = expectedRun{scheduler.StatusCompleted, 1}
		case 1:
			ev = e.event(fmt.Sprintf("bad-%s-%04d", tag, i))
			want[ev.ID] = expectedRun{scheduler.StatusFailed, 1}
		case 2:
			ev = fastRetry(e.event(fmt.Sprintf("down-%s-%04d", tag, i)), 2)
			want[ev.ID] = expectedRun{scheduler.StatusServiceUnavailable, 2}
		}
		ev.Body = []byte(`{"n":` + fmt.Sprint(i) + `}`)
		total += want[ev.ID].attempts
		evs = append(evs, ev)
	}
	e.scheduleAll(evs)
	ctx, cancelCtx := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelCtx()
	for _, ev := range cancel {
		if _, err := e.sched.Cancel(ctx, ev.App, ev.ID); err != nil {
			e.t.Fatalf("cancel %s: %v", ev.ID, err)
		}
	}
	return want, total
}

// waitAllFinal waits until every event of want reached its final status in Redis.
func (e *archEnv) waitAllFinal(want map[string]expectedRun, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ids := make([]scheduler.Ident, 0, len(want))
		for id := range want {
			ids = append(ids, scheduler.Ident{App: testApp, ID: id})
		}
		live, err := e.store.GetMany(ctx, ids)
		if err != nil {
			e.t.Fatalf("GetMany: %v", err)
		}
		for i, ev := range live {
			if ev == nil {
				return fmt.Sprintf("%s is gone from Redis", ids[i].ID)
			}
			if ev.Status != want[ev.ID].status {
				return fmt.Sprintf("%s is %s, want %s", ev.ID, ev.Status, want[ev.ID].status)
			}
		}
		return ""
	})
}

// checkRuns compares the archive's runs of testApp with want.
func (e *archEnv) checkRuns(want map[string]expectedRun) {
	e.t.Helper()
	got := archivedRuns(e.t, e.db, testApp)
	if len(got) != len(want) {
		e.t.Errorf("archive holds %d runs, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			e.t.Errorf("%s is not in the archive", id)
		case g.status != w.status || g.attempts != w.attempts || g.history != w.attempts:
			e.t.Errorf("%s archived as %s with %d attempts and %d attempt rows, want %s with %d", id, g.status, g.attempts, g.history, w.status, w.attempts)
		}
	}
}

// checkRetentionStarted checks that every finished event's hash expires
// (the archiver acknowledged its final entry) within the retention window.
func (e *archEnv) checkRetentionStarted(ids map[string]expectedRun, retention time.Duration) {
	e.t.Helper()
	for id := range ids {
		if d := e.pttl(testApp, id); d <= 0 || d > retention {
			e.t.Errorf("%s: PTTL %s, want an expiry within %s once archived", id, d, retention)
		}
	}
}

// TestArchiverEndToEnd: 300 events with every kind of outcome are
// delivered; the archiver writes each run with its final status and every
// attempt, empties the outbox, and only then starts the retention window
// of the Redis copies. While a batch is written, none of its finished
// events has an expiry yet (commit first, then acknowledge).
func TestArchiverEndToEnd(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, mixedHandler, db, redisstore.Config{})
		var checked, early atomic.Int64
		arch := &hookArchive{Archive: db, before: func(ctx context.Context, recs []scheduler.Record) error {
			rdb := e.redis.Client()
			for _, r := range recs {
				if r.Kind != scheduler.RecordFinal {
					continue
				}
				checked.Add(1)
				if d, err := rdb.PTTL(ctx, e.evKey(r.App, r.ID)).Result(); err == nil && d != -1 {
					early.Add(1)
					t.Errorf("%s: PTTL %s before its final entry was committed to the archive", r.ID, d)
				}
			}
			return nil
		}}
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, arch, worker.ArchiverConfig{Batch: 100})

		start := time.Now()
		want, attempts := e.scheduleMixed("e2e", 300)
		e.waitAllFinal(want, 30*time.Second)
		e.waitArchived(len(want), attempts, 20*time.Second)
		t.Logf("%d runs, %d attempts archived %s after the first create; %d final entries checked before commit",
			len(want), attempts, time.Since(start).Round(time.Millisecond), checked.Load())

		e.checkRuns(want)
		e.checkRetentionStarted(want, redisstore.DefaultRetention)

		// The archive's copy is the whole story: a 503 event's two attempts.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for id, w := range want {
			if w.status != scheduler.StatusServiceUnavailable {
				continue
			}
			ev, err := db.Get(ctx, testApp, id)
			if err != nil {
				t.Fatalf("archive Get %s: %v", id, err)
			}
			if len(ev.History) != 2 || ev.History[0].StatusCode != 503 || ev.History[1].StatusCode != 503 || ev.LastStatusCode != 503 {
				t.Errorf("%s from the archive: last %d, history %+v", id, ev.LastStatusCode, ev.History)
			}
			if string(ev.Body) == "" || ev.URL != e.dest.URL("/hook/"+id) {
				t.Errorf("%s from the archive: url %q body %q", id, ev.URL, ev.Body)
			}
			break
		}
	})
}

// TestArchiverCrashBetweenCommitAndAck: the first batches are committed
// but the archiver "crashes" before acknowledging them (the write reports
// an error after the commit); the same records come back and are written
// again; the row counts are still exact.
func TestArchiverCrashBetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		const failFirst = 4
		e := setupArchive(t, mixedHandler, db, redisstore.Config{})
		var mu sync.Mutex
		var failed int
		replay := map[string]bool{} // records of the committed-but-failed batches
		rewritten := map[string]bool{}
		arch := &hookArchive{Archive: db, after: func(_ context.Context, recs []scheduler.Record, err error) error {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return err
			}
			for _, r := range recs {
				if replay[recordKey(r)] {
					rewritten[recordKey(r)] = true
				}
			}
			if failed < failFirst {
				failed++
				for _, r := range recs {
					replay[recordKey(r)] = true
				}
				return errors.New("injected: archiver crashed after the commit, before the acknowledgement")
			}
			return nil
		}}
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})

		// The outbox fills up first, so the failing batches are full ones
		// mixing creates, attempts and finals of many shards.
		want, attempts := e.scheduleMixed("crash", 200)
		e.waitAllFinal(want, 30*time.Second)
		e.startArchiver(nil, arch, worker.ArchiverConfig{Batch: 40})
		e.waitArchived(len(want), attempts, 30*time.Second)
		// Let any stray re-delivery land before counting once more.
		time.Sleep(200 * time.Millisecond)
		if ev, at := rows(t, db, "events"), rows(t, db, "attempts"); ev != len(want) || at != attempts {
			t.Errorf("archive holds %d events and %d attempts, want exactly %d and %d", ev, at, len(want), attempts)
		}
		e.checkRuns(want)
		e.checkRetentionStarted(want, redisstore.DefaultRetention)

		mu.Lock()
		defer mu.Unlock()
		if failed != failFirst {
			t.Fatalf("%d batches failed after commit, want %d", failed, failFirst)
		}
		for k := range replay {
			if !rewritten[k] {
				t.Errorf("record %s was committed, not acknowledged, and never written again", k)
			}
		}
		t.Logf("%d records of %d committed-but-unacknowledged batches written again", len(rewritten), failFirst)
	})
}

// TestArchiverSurvivesDatabaseOutage kills MariaDB for a few seconds while
// events keep finishing: the worker goes on delivering, the outbox grows,
// finished events stay in Redis without expiry; once the database is back
// everything is archived exactly once and the outbox drains.
func TestArchiverSurvivesDatabaseOutage(t *testing.T) {
	t.Parallel()
	const outage = 3 * time.Second
	srv := mysqltest.Start(t)
	db := openArchive(t, srv.NewDatabase(t))
	e := setupArchive(t, nil, db, redisstore.Config{})
	e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
	e.startArchiver(nil, nil, worker.ArchiverConfig{Batch: 50})

	want := map[string]expectedRun{}
	var pre []*scheduler.Event
	for i := range 50 {
		ev := e.event(fmt.Sprintf("ok-pre-%03d", i))
		want[ev.ID] = expectedRun{scheduler.StatusCompleted, 1}
		pre = append(pre, ev)
	}
	e.scheduleAll(pre)
	e.waitArchived(50, 50, 20*time.Second)

	srv.Kill()
	down := time.Now()
	delivered := len(e.dest.all())
	during := map[string]expectedRun{}
	var lags []int64
	for round := range 10 {
		var evs []*scheduler.Event
		for i := range 10 {
			ev := e.event(fmt.Sprintf("ok-outage-%d-%d", round, i))
			during[ev.ID] = expectedRun{scheduler.StatusCompleted, 1}
			want[ev.ID] = during[ev.ID]
			evs = append(evs, ev)
		}
		e.scheduleAll(evs)
		lags = append(lags, e.outboxRecords())
		time.Sleep(outage / 12)
	}
	e.waitAllFinal(during, 20*time.Second)
	if got := len(e.dest.all()) - delivered; got < len(during) {
		t.Errorf("%d deliveries while the archive was down, want %d", got, len(during))
	}
	lag := e.outboxRecords()
	lags = append(lags, lag)
	t.Logf("outbox records while the database was down: %v", lags)
	// A create and a final record per event, none archived.
	if lag < int64(2*len(during)) {
		t.Errorf("outbox holds %d records during the outage, want at least %d", lag, 2*len(during))
	}
	for i := 1; i < len(lags); i++ {
		if lags[i] < lags[i-1] {
			t.Errorf("outbox shrank from %d to %d while the archive was down", lags[i-1], lags[i])
		}
	}
	for id := range during {
		if d := e.pttl(testApp, id); d != -1 {
			t.Errorf("%s finished during the outage: PTTL %s, want no expiry until archived", id, d)
		}
	}
	if time.Since(down) > 20*time.Second {
		t.Fatalf("the outage lasted %s; the assertions above may have seen the database back", time.Since(down))
	}
	time.Sleep(time.Until(down.Add(outage)))

	srv.Restart(t)
	back := time.Now()
	e.waitArchived(len(want), len(want), 30*time.Second)
	t.Logf("database down %s; %d runs archived %s after it came back", back.Sub(down).Round(time.Millisecond),
		len(want), time.Since(back).Round(time.Millisecond))
	e.checkRuns(want)
	e.checkRetentionStarted(want, redisstore.DefaultRetention)
}

// TestTwoArchiversNeverDoubleWrite runs two archivers (two consumers of
// every shard's group, each on its own Redis connection) at once: each
// outbox entry is written by exactly one of them, and the rows are exact.
func TestTwoArchiversNeverDoubleWrite(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, mixedHandler, db, redisstore.Config{})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		rec1, rec2 := newRecordingArchive(db), newRecordingArchive(db)
		// ClaimIdle far beyond the test: no takeover of a slow batch.
		cfg := worker.ArchiverConfig{Batch: 25, ClaimIdle: time.Minute}
		e.startArchiver(e.storeWith(redisstore.Config{}), rec1, cfg)
		e.startArchiver(e.storeWith(redisstore.Config{}), rec2, cfg)

		want, attempts := e.scheduleMixed("pair", 400)
		e.waitAllFinal(want, 30*time.Second)
		e.waitArchived(len(want), attempts, 30*time.Second)
		e.checkRuns(want)

		c1, c2 := rec1.counts(), rec2.counts()
		for k, n := range c1 {
			if n != 1 || c2[k] != 0 {
				t.Errorf("entry %s written %d times by archiver 1 and %d by archiver 2", k, n, c2[k])
			}
		}
		for k, n := range c2 {
			if n != 1 {
				t.Errorf("entry %s written %d times by archiver 2", k, n)
			}
		}
		// Every entry: a create per event, an attempt per retried attempt,
		// a final per event.
		if got, wantEntries := len(c1)+len(c2), 2*len(want)+len(want)/4; got != wantEntries {
			t.Errorf("%d entries written, want %d", got, wantEntries)
		}
		t.Logf("archiver 1 wrote %d entries in %d batches, archiver 2 %d in %d", len(c1), rec1.batches, len(c2), rec2.batches)
	})
}

// TestArchiverTakesOverADeadArchiversBatch: an archiver reads a batch and
// dies before writing it (its entries stay pending under its name);
// another archiver claims them once they are idle for ClaimIdle and
// archives everything.
func TestArchiverTakesOverADeadArchiversBatch(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		const claimIdle = time.Second
		e := setupArchive(t, nil, db, redisstore.Config{})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		read := make(chan []scheduler.Record, 1)
		dying := &hookArchive{Archive: db, before: func(ctx context.Context, recs []scheduler.Record) error {
			select {
			case read <- recs:
			default:
			}
			<-ctx.Done() // dies mid-batch: nothing written, nothing acknowledged
			return ctx.Err()
		}}
		doomed := e.startArchiver(nil, dying, worker.ArchiverConfig{Consumer: "doomed", Batch: 30, ClaimIdle: claimIdle})

		want := map[string]expectedRun{}
		var evs []*scheduler.Event
		for i := range 100 {
			ev := e.event(fmt.Sprintf("ok-takeover-%03d", i))
			want[ev.ID] = expectedRun{scheduler.StatusCompleted, 1}
			evs = append(evs, ev)
		}
		e.scheduleAll(evs)
		var lost []scheduler.Record
		select {
		case lost = <-read:
		case <-time.After(10 * time.Second):
			t.Fatal("the doomed archiver never read a batch")
		}
		doomed.stop()
		died := time.Now()
		// At least the entries of the batch it was writing (a packed entry
		// holds several of its records): creates it held back for their
		// final outcome (ArchiverConfig.HoldCreates) are pending too.
		entries := map[string]bool{}
		for _, r := range lost {
			entries[fmt.Sprintf("%d/%s", r.Shard, r.StreamID)] = true
		}
		if n := pendingOf(t, e, "doomed"); n < int64(len(entries)) {
			t.Errorf("%d entries pending under the dead archiver, want at least the %d it was writing", n, len(entries))
		}

		rec := newRecordingArchive(db)
		e.startArchiver(e.storeWith(redisstore.Config{}), rec, worker.ArchiverConfig{Consumer: "heir", Batch: 30, ClaimIdle: claimIdle})
		e.waitAllFinal(want, 20*time.Second)
		e.waitArchived(len(want), len(want), 20*time.Second)
		t.Logf("the dead archiver's %d entries archived by the heir %s after it died", len(lost), time.Since(died).Round(time.Millisecond))
		e.checkRuns(want)
		got := rec.counts()
		for _, r := range lost {
			if got[recordKey(r)] != 1 {
				t.Errorf("entry %s of the dead archiver written %d times by the heir", recordKey(r), got[recordKey(r)])
			}
		}
		if n := pendingOf(t, e, ""); n != 0 {
			t.Errorf("%d entries still pending in the consumer groups", n)
		}
		e.checkRetentionStarted(want, redisstore.DefaultRetention)
	})
}

// pendingOf counts the outbox entries read but not acknowledged by consumer
// ("" for every consumer), over all shards.
func pendingOf(t testing.TB, e *archEnv, consumer string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var total int64
	for sh := range e.store.Shards() {
		key := fmt.Sprintf("%s:{%s:%d}:out", e.ns, e.ns, sh)
		p, err := e.redis.Client().XPending(ctx, key, redisstore.ArchiverGroup).Result()
		if errors.Is(err, redis.Nil) || err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
			continue
		}
		if err != nil {
			t.Fatalf("XPENDING %s: %v", key, err)
		}
		if consumer == "" {
			total += p.Count
		} else {
			total += p.Consumers[consumer]
		}
	}
	return total
}
