package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// archiveKind is one archive implementation the archive tests run against.
type archiveKind struct {
	name string
	dsn  func(t *testing.T) string
}

var archiveKinds = []archiveKind{
	{"SQLite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "archive.db") }},
	// A fresh database on the MariaDB server shared by the test binary
	// (TestMain stops it).
	{"MariaDB", func(t *testing.T) string { return mysqltest.NewDatabase(t) }},
}

// forEachArchive runs fn once per archive implementation, as parallel
// subtests, each with a fresh, migrated archive.
func forEachArchive(t *testing.T, fn func(t *testing.T, db *archive.Store)) {
	for _, k := range archiveKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fn(t, openArchive(t, k.dsn(t)))
		})
	}
}

// openArchive opens and migrates an archive and closes it when the test ends.
func openArchive(t testing.TB, dsn string) *archive.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := archive.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("archive.Open(%s): %v", archive.RedactDSN(dsn), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", archive.RedactDSN(dsn), err)
	}
	return db
}

// archEnv is an env whose scheduler has an archive.
type archEnv struct {
	*env
	db *archive.Store
}

// setupArchive starts a redis-server and a destination (see setup) and
// makes the env's store use cfg (the namespace is the env's) and its
// scheduler answer from db.
func setupArchive(t testing.TB, handle handlerFunc, db *archive.Store, cfg redisstore.Config) *archEnv {
	t.Helper()
	e := setup(t, handle)
	a := &archEnv{env: e, db: db}
	a.store = a.storeWith(cfg)
	a.sched = scheduler.New(a.store, scheduler.Config{Archive: db})
	return a
}

// storeWith returns a store on its own Redis client with cfg (namespace: the env's).
func (e *archEnv) storeWith(cfg redisstore.Config) *redisstore.Store {
	e.t.Helper()
	cfg.Namespace = e.ns
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr(), PoolSize: 64})
	e.t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, rdb, cfg)
	if err != nil {
		e.t.Fatalf("redisstore.New: %v", err)
	}
	return st
}

// runningArchiver is an archiver running in a goroutine.
type runningArchiver struct {
	*worker.Archiver
	consumer string
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
}

// stop cancels the archiver and waits for Run to return.
func (r *runningArchiver) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}

var archiverSeq atomic.Int64

// startArchiver runs an archiver from st (nil: the env's store) into arch
// (nil: the env's archive) with short test intervals for zero fields. It
// stops when the test ends.
func (e *archEnv) startArchiver(st *redisstore.Store, arch Archive, cfg worker.ArchiverConfig) *runningArchiver {
	e.t.Helper()
	if st == nil {
		st = e.store
	}
	if arch == nil {
		arch = e.db
	}
	if cfg.Consumer == "" {
		cfg.Consumer = fmt.Sprintf("archiver-%d", archiverSeq.Add(1))
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = e.log
	}
	a := worker.NewArchiver(st, arch, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningArchiver{Archiver: a, consumer: cfg.Consumer, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		a.Run(ctx)
	}()
	e.t.Cleanup(r.stop)
	return r
}

// rows counts the rows of an archive table.
func rows(t testing.TB, db *archive.Store, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := db.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// outboxEntries returns the number of outbox entries not yet archived.
func (e *archEnv) outboxEntries() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, _, err := e.store.OutboxLag(ctx)
	if err != nil {
		e.t.Fatalf("OutboxLag: %v", err)
	}
	return n
}

// outboxRecords is the number of records the outboxes hold: one per
// entry, or a packed entry's n (a batch's creates or finals).
func (e *archEnv) outboxRecords() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int64
	for sh := range e.store.Shards() {
		msgs, err := e.redis.Client().XRange(ctx, fmt.Sprintf("%s:{%s:%d}:out", e.ns, e.ns, sh), "-", "+").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			e.t.Fatalf("XRANGE: %v", err)
		}
		for _, msg := range msgs {
			if k := msg.Values["k"]; k == "creates" || k == "finals" {
				p, _ := strconv.Atoi(fmt.Sprint(msg.Values["n"]))
				n += int64(p)
				continue
			}
			n++
		}
	}
	return n
}

// waitArchived waits until the archive holds exactly events runs and
// attempts attempt rows and the outbox is empty. More rows than expected
// fail at once: nothing may be written twice.
func (e *archEnv) waitArchived(events, attempts int, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() string {
		ev, at := rows(e.t, e.db, "events"), rows(e.t, e.db, "attempts")
		if ev > events || at > attempts {
			e.t.Fatalf("archive holds %d events and %d attempts, more than the %d and %d expected", ev, at, events, attempts)
		}
		lag := e.outboxEntries()
		if ev != events || at != attempts || lag != 0 {
			return fmt.Sprintf("archive holds %d/%d events and %d/%d attempts; %d outbox entries left", ev, events, at, attempts, lag)
		}
		return ""
	})
}

// archivedRun is one events row.
type archivedRun struct {
	status   scheduler.Status
	attempts int
	history  int // rows in attempts
}

// archivedRuns returns every run of app in the archive by event id; two
// runs of one id fail the test.
func archivedRuns(t testing.TB, db *archive.Store, app string) map[string]archivedRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := db.DB().QueryContext(ctx, `SELECT e.event_id, e.status, COALESCE(e.attempts, -1),
		(SELECT COUNT(*) FROM attempts a WHERE a.app = e.app AND a.event_id = e.event_id AND a.created_ms = e.created_ms)
		FROM events e WHERE e.app = ?`, app)
	if err != nil {
		t.Fatalf("select runs: %v", err)
	}
	defer rs.Close()
	out := map[string]archivedRun{}
	for rs.Next() {
		var id, status string
		var r archivedRun
		if err := rs.Scan(&id, &status, &r.attempts, &r.history); err != nil {
			t.Fatalf("scan run: %v", err)
		}
		r.status = scheduler.Status(status)
		if _, dup := out[id]; dup {
			t.Errorf("%s/%s: two runs in the archive", app, id)
		}
		out[id] = r
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("select runs: %v", err)
	}
	return out
}

// evKey returns the Redis key of an event.
func (e *archEnv) evKey(app, id string) string {
	m := app + "/" + id
	sh := int(crc32.ChecksumIEEE([]byte(m)) % uint32(e.store.Shards()))
	return fmt.Sprintf("%s:{%s:%d}:ev:%s", e.ns, e.ns, sh, m)
}

// pttl returns the PTTL of an event: -1 no expiry, -2 gone.
func (e *archEnv) pttl(app, id string) time.Duration {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := e.redis.Client().PTTL(ctx, e.evKey(app, id)).Result()
	if err != nil {
		e.t.Fatalf("PTTL %s: %v", e.evKey(app, id), err)
	}
	return d
}

// waitGoneFromRedis waits until Redis no longer has the event (its
// retention window passed after archiving).
func (e *archEnv) waitGoneFromRedis(app, id string, timeout time.Duration) {
	e.t.Helper()
	waitFor(e.t, timeout, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ev, err := e.store.Get(ctx, app, id)
		switch {
		case errors.Is(err, scheduler.ErrNotFound):
			return ""
		case err != nil:
			e.t.Fatalf("get %s/%s: %v", app, id, err)
		}
		return fmt.Sprintf("%s/%s is still in Redis (%s, PTTL %s)", app, id, ev.Status, e.pttl(app, id))
	})
}

// search runs a scheduler search and fails the test on error.
func (e *archEnv) search(q scheduler.SearchQuery) scheduler.SearchPage {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	page, err := e.sched.Search(ctx, q)
	if err != nil {
		e.t.Fatalf("Search(%+v): %v", q, err)
	}
	return page
}

// searchAll follows the cursor to the last page and returns every event id
// found (duplicates kept, so callers can detect them).
func (e *archEnv) searchAll(q scheduler.SearchQuery) []*scheduler.Event {
	e.t.Helper()
	var out []*scheduler.Event
	for range 1000 {
		page := e.search(q)
		out = append(out, page.Events...)
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
	e.t.Fatalf("search %+v: more than 1000 pages", q)
	return nil
}

// apiServer serves the JSON API (no auth) over the env's scheduler.
func (e *archEnv) apiServer() *httptest.Server {
	e.t.Helper()
	a := api.New(api.Config{Scheduler: e.sched, Logger: e.log})
	srv := httptest.NewServer(a.Engine(nil))
	e.t.Cleanup(srv.Close)
	return srv
}

// call sends a request to the API and returns the status and body.
func call(t testing.TB, method, u string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// callJSON sends a request, checks the status and decodes the body into v.
func callJSON(t testing.TB, method, u string, want int, v any) {
	t.Helper()
	code, b := call(t, method, u)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, u, code, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, u, b, err)
		}
	}
}

// query encodes search parameters.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v.Encode()
}

// idsOf returns the ids of events.
func idsOf(evs []*scheduler.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// recordingArchive wraps an archive and remembers every record it was
// asked to write, and whether the write succeeded.
type recordingArchive struct {
	Archive

	mu      sync.Mutex
	written map[string]int // "shard/streamID" → successful writes
	batches int
}

func newRecordingArchive(inner Archive) *recordingArchive {
	return &recordingArchive{Archive: inner, written: map[string]int{}}
}

// recordKey names an outbox record: its entry, and its place in a packed
// entry (a batch's creates or finals).
func recordKey(r scheduler.Record) string {
	return fmt.Sprintf("%d/%s#%d", r.Shard, r.StreamID, r.Part)
}

func (a *recordingArchive) Write(ctx context.Context, recs []scheduler.Record) error {
	err := a.Archive.Write(ctx, recs)
	if err == nil {
		a.mu.Lock()
		a.batches++
		for _, r := range recs {
			a.written[recordKey(r)]++
		}
		a.mu.Unlock()
	}
	return err
}

// counts returns a copy of the per-record write counts.
func (a *recordingArchive) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.written))
	for k, v := range a.written {
		out[k] = v
	}
	return out
}

// hookArchive wraps an archive's Write: before runs first and may refuse
// the batch (nothing written); after runs once the real write returned and
// may replace its error (e.g. pretend a crash after the commit).
type hookArchive struct {
	Archive
	before func(ctx context.Context, recs []scheduler.Record) error
	after  func(ctx context.Context, recs []scheduler.Record, err error) error
}

func (a *hookArchive) Write(ctx context.Context, recs []scheduler.Record) error {
	if a.before != nil {
		if err := a.before(ctx, recs); err != nil {
			return err
		}
	}
	err := a.Archive.Write(ctx, recs)
	if a.after != nil {
		err = a.after(ctx, recs, err)
	}
	return err
}

// Archive is an archive database as the tests use it: read by the
// Scheduler and written by the archiver (store/archive implements both).
type Archive interface {
	scheduler.Archive
	worker.ArchiveWriter
}
