package legacy_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.StopShared()
	os.Exit(code)
}

// originalDDL creates the original Cassata's tables as its
// mysql-create-*.sql files did (API.md §1): latin1, the unique identity,
// the index of the event log on _saas_events_id.
var originalDDL = []string{
	"CREATE TABLE `_saas_events` (" +
		"`id` int(11) NOT NULL AUTO_INCREMENT," +
		"`event_id` varchar(50) NOT NULL," +
		"`application` varchar(100) DEFAULT NULL," +
		"`event_json` json NOT NULL," +
		"`http_method` varchar(15) DEFAULT NULL," +
		"`http_headers` json DEFAULT NULL," +
		"`destination_url` varchar(2000) DEFAULT NULL," +
		"`status` varchar(30) NOT NULL," +
		"`expiry` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP," +
		"`created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP," +
		"PRIMARY KEY (`id`)," +
		"UNIQUE KEY `idx_id_app` (`event_id`,`application`)," +
		"KEY `idx_expirty` (`expiry`)," +
		"KEY `idx_status` (`status`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=latin1",
	"CREATE TABLE `_saas_eventlog` (" +
		"`id` int(11) NOT NULL AUTO_INCREMENT," +
		"`_saas_events_id` int(11)," +
		"`http_response_code` integer NOT NULL," +
		"`http_response` varchar(2000) DEFAULT NULL," +
		"`created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP," +
		"PRIMARY KEY (`id`)," +
		"KEY `idx_events_id` (`_saas_events_id`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=latin1",
}

// srcLog is one _saas_eventlog row.
type srcLog struct {
	code int
	resp *string
	at   time.Time
}

// What a source row should become.
const (
	wantLive     = "live"
	wantArchived = "archived"
	wantInvalid  = "invalid"
	// wantDone: Cassata already has this very event.
	wantDone = "done"
	// wantConflict: Cassata has the identity with another request.
	wantConflict = "conflict"
)

// srcRow is one _saas_events row and what the import should make of it.
type srcRow struct {
	id                int64
	app, eventID      *string
	body              string
	method, headers   *string
	url               *string
	status            string
	expiry, createdAt time.Time
	logs              []srcLog

	want        string
	wantHeaders map[string]string
	wantMethod  string
	wantStatus  scheduler.Status
	wantColumn  string // for wantInvalid
}

func ptr(s string) *string { return &s }

// Header list variants and what /cassata/add makes of them.
var headerVariants = []struct {
	json *string
	want map[string]string
}{
	{nil, map[string]string{"Content-Type": "application/json"}},
	{ptr(`[]`), map[string]string{"Content-Type": "application/json"}},
	{ptr(`["Content-Type: text/plain", "X-Trace:   abc  "]`), map[string]string{"Content-Type": "text/plain", "X-Trace": "abc"}},
	{ptr(`["Connection: keep-alive", "Host: example.org", "Content-Length: 12", "Proxy-Authorization: Basic eA==", "Transfer-Encoding: chunked", "X-Keep: 1"]`),
		map[string]string{"X-Keep": "1"}},
	{ptr(`["Authorization: Bearer a:b:c"]`), map[string]string{"Authorization": "Bearer a:b:c"}},
	{ptr(`null`), map[string]string{"Content-Type": "application/json"}},
}

// fixture builds the rows of an original database: n ordinary rows cycling
// through every status, header variant and event log shape, then the
// special ones (invalid rows and identities Cassata already has).
func fixture(n int, base time.Time) []srcRow {
	var rows []srcRow
	for i := range n {
		h := headerVariants[i%len(headerVariants)]
		r := srcRow{
			app: ptr(fmt.Sprintf("app-%d", i%3)), eventID: ptr(fmt.Sprintf("ev-%05d", i)),
			body:   fmt.Sprintf(`{"n": %d, "name": "é%d"}`, i, i),
			method: ptr("POST"), headers: h.json, url: ptr(fmt.Sprintf("https://example.com/hook/%d?x=1", i)),
			createdAt: base.Add(-2 * time.Hour), wantHeaders: h.want, wantMethod: "POST",
		}
		switch i % 8 {
		case 0:
			r.status, r.expiry = "PENDING", base.Add(time.Hour+time.Duration(i)*time.Second)
		case 1:
			r.status, r.expiry = "PENDING", base.Add(-time.Hour-time.Duration(i)*time.Second)
		case 2:
			r.status, r.expiry = "PROCESSING", base.Add(-time.Minute)
		case 3:
			r.status, r.expiry = "COMPLETED", base.Add(-90*time.Minute)
		case 4:
			r.status, r.expiry = "FAILED", base.Add(-90*time.Minute)
			r.method, r.wantMethod = ptr("put"), "PUT"
			r.logs = []srcLog{{404, ptr("not found"), base.Add(-89 * time.Minute)}}
		case 5:
			r.status, r.expiry = "SERVICE_UNAVAILABLE", base.Add(-90*time.Minute)
			r.logs = []srcLog{
				{503, ptr("busy"), base.Add(-89 * time.Minute)},
				{0, ptr("java.net.ConnectException: Connection refused"), base.Add(-88 * time.Minute)},
				{500, ptr(""), base.Add(-88 * time.Minute)}, // same second as the one before
			}
		case 6:
			r.status, r.expiry = "completed", base.Add(-90*time.Minute)
			r.method = nil
			r.logs = []srcLog{{500, ptr("oops"), base.Add(-89 * time.Minute)}, {-1, nil, base.Add(-87 * time.Minute)}}
		case 7:
			r.status, r.expiry = "PENDING", base.Add(2*time.Hour)
			r.method, r.wantMethod = ptr("DELETE"), "DELETE"
			r.body = `"plain text é"`
		}
		r.wantStatus = normal(r.status)
		r.want = wantArchived
		if r.wantStatus == scheduler.StatusPending || r.wantStatus == scheduler.StatusProcessing {
			r.want, r.wantStatus = wantLive, scheduler.StatusPending
		}
		rows = append(rows, r)
	}

	special := func(app, id *string, column string, mod func(r *srcRow)) {
		r := srcRow{
			app: app, eventID: id, body: `{"special": true}`, method: ptr("POST"),
			url: ptr("https://example.com/special"), status: "PENDING",
			expiry: base.Add(time.Hour), createdAt: base.Add(-time.Hour),
			want: wantInvalid, wantColumn: column, wantMethod: "POST", wantStatus: scheduler.StatusPending,
			wantHeaders: map[string]string{"Content-Type": "application/json"},
		}
		if mod != nil {
			mod(&r)
		}
		rows = append(rows, r)
	}
	special(ptr("bad app"), ptr("s-1"), "application", nil)
	special(ptr(strings.Repeat("a", 65)), ptr("s-2"), "application", nil)
	special(nil, ptr("s-3"), "application", nil)
	special(ptr("app-0"), ptr("has space"), "event_id", nil)
	special(ptr("app-0"), ptr("a/b"), "event_id", nil)
	special(ptr("app-0"), ptr("s-url-ftp"), "destination_url", func(r *srcRow) { r.url = ptr("ftp://example.com/x") })
	special(ptr("app-0"), ptr("s-url-rel"), "destination_url", func(r *srcRow) { r.url = ptr("not a url") })
	special(ptr("app-0"), ptr("s-url-null"), "destination_url", func(r *srcRow) { r.url = nil })
	special(ptr("app-0"), ptr("s-method"), "http_method", func(r *srcRow) { r.method = ptr("TRACE") })
	special(ptr("app-0"), ptr("s-hdr-colon"), "http_headers", func(r *srcRow) { r.headers = ptr(`["NoColonHere"]`) })
	special(ptr("app-0"), ptr("s-hdr-object"), "http_headers", func(r *srcRow) { r.headers = ptr(`{"X-A": "b"}`) })
	special(ptr("app-0"), ptr("s-hdr-name"), "http_headers", func(r *srcRow) { r.headers = ptr(`["Bad Name: x"]`) })
	special(ptr("app-0"), ptr("s-hdr-json"), "http_headers", func(r *srcRow) { r.headers = ptr(`["X-A: b"`) })
	special(ptr("app-0"), ptr("s-body-json"), "event_json", func(r *srcRow) { r.body = `{not json` })
	special(ptr("app-0"), ptr("s-body-big"), "event_json", func(r *srcRow) { r.body = `"` + strings.Repeat("x", testMaxBody) + `"` })
	special(ptr("app-0"), ptr("s-status"), "status", func(r *srcRow) { r.status = "ARCHIVED" })
	// The SSRF guard applies to live events only.
	special(ptr("app-0"), ptr("s-ssrf"), "destination_url", func(r *srcRow) { r.url = ptr("http://127.0.0.1:9/x") })
	special(ptr("app-0"), ptr("s-ssrf-done"), "", func(r *srcRow) {
		r.url, r.status, r.expiry = ptr("http://10.0.0.1/x"), "FAILED", base.Add(-time.Hour)
		r.want, r.wantStatus = wantArchived, scheduler.StatusFailed
	})
	// Identities Cassata already has (created before the import).
	special(ptr("app-1"), ptr("s-same"), "", func(r *srcRow) { r.want = wantDone })
	special(ptr("app-1"), ptr("s-conflict"), "", func(r *srcRow) { r.want = wantConflict })
	for i := range rows {
		rows[i].id = int64(i + 1)
	}
	return rows
}

func normal(s string) scheduler.Status { return scheduler.Status(strings.ToUpper(s)) }

// testMaxBody is the destination's body limit in these tests.
const testMaxBody = 4096

// source is an original database on the shared MariaDB server.
type source struct {
	dsn      string // root
	readOnly string // a user that may only SELECT
	db       *sql.DB
}

// newSource creates the original's tables in a fresh database, loads rows
// (check constraints off, so rows an old MariaDB let through, like invalid
// JSON, can be there), and creates a user that can only read them.
func newSource(t *testing.T, rows []srcRow) *source {
	t.Helper()
	srv := mysqltest.Shared(t)
	dsn := srv.NewDatabase(t)
	cfg, err := archive.MySQLConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Loc = time.UTC
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1) // one session: check_constraint_checks below holds for every insert
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, stmt := range append(originalDDL, "SET SESSION check_constraint_checks = 0") {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	insertRows(t, ctx, db, rows)

	var b [4]byte
	_, _ = rand.Read(b[:])
	user, pass := "reader_"+hex.EncodeToString(b[:]), "p@ss:w/rd?"+hex.EncodeToString(b[:])
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, pass),
		fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", cfg.DBName, user),
	} {
		if _, err := srv.Admin().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { _, _ = srv.Admin().Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	ro := url.URL{Scheme: "mysql", User: url.UserPassword(user, pass), Host: srv.Addr(), Path: "/" + cfg.DBName}
	return &source{dsn: dsn, readOnly: ro.String(), db: db}
}

func insertRows(t *testing.T, ctx context.Context, db *sql.DB, rows []srcRow) {
	t.Helper()
	nullable := func(s *string) any {
		if s == nil {
			return nil
		}
		return *s
	}
	for start := 0; start < len(rows); start += 200 {
		chunk := rows[start:min(start+200, len(rows))]
		var q strings.Builder
		q.WriteString("INSERT INTO _saas_events (id, event_id, application, event_json, http_method, http_headers, destination_url, status, expiry, created_at) VALUES ")
		var args []any
		var logs []any
		nlogs := 0
		for i, r := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.id, nullable(r.eventID), nullable(r.app), r.body, nullable(r.method), nullable(r.headers),
				nullable(r.url), r.status, r.expiry, r.createdAt)
			for _, l := range r.logs {
				logs = append(logs, r.id, l.code, nullable(l.resp), l.at)
				nlogs++
			}
		}
		if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
			t.Fatalf("insert _saas_events: %v", err)
		}
		if nlogs > 0 {
			lq := "INSERT INTO _saas_eventlog (_saas_events_id, http_response_code, http_response, created_at) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", nlogs), ", ")
			if _, err := db.ExecContext(ctx, lq, logs...); err != nil {
				t.Fatalf("insert _saas_eventlog: %v", err)
			}
		}
	}
}

// checksum is the source tables' content checksum.
func (s *source) checksum(t *testing.T) string {
	t.Helper()
	rows, err := s.db.Query("CHECKSUM TABLE _saas_events, _saas_eventlog EXTENDED")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table string
		var sum sql.NullInt64
		if err := rows.Scan(&table, &sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", table, sum.Int64))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// dest is the destination: a real redis-server, the store and scheduler on
// it, and a SQLite archive.
type dest struct {
	redis *redistest.Server
	rdb   *redis.Client
	store *redisstore.Store
	arch  *archive.Store
	sched *scheduler.Scheduler
	guard *delivery.AddressGuard
}

func newDest(t *testing.T, guard *delivery.AddressGuard, opts ...redistest.Option) *dest {
	t.Helper()
	d := &dest{redis: redistest.Start(t, opts...), guard: guard}
	// Few retries: a test that stops Redis wants the failure at once.
	d.rdb = redis.NewClient(&redis.Options{Addr: d.redis.Addr(), MaxRetries: 1, DialTimeout: time.Second, DialerRetries: 1})
	t.Cleanup(func() { _ = d.rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if d.store, err = redisstore.New(ctx, d.rdb, redisstore.Config{Namespace: "imp"}); err != nil {
		t.Fatal(err)
	}
	if d.arch, err = archive.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "archive.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.arch.Close() })
	if err := d.arch.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	d.sched = scheduler.New(d.store, scheduler.Config{Archive: d.arch, Guard: guard,
		Limits: scheduler.Limits{MaxBodyBytes: testMaxBody}})
	return d
}

// state sums up everything the destination holds, to tell whether a run
// changed anything: Redis's key count and outbox entries (every create
// appends one), and the archive's rows with their update times.
func (d *dest) state(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	n, err := d.rdb.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var outbox int64
	iter := d.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		if typ, _ := d.rdb.Type(ctx, iter.Val()).Result(); typ == "stream" {
			l, _ := d.rdb.XLen(ctx, iter.Val()).Result()
			outbox += l
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("redis keys=%d outbox=%d", n, outbox)
	for _, q := range []string{
		"SELECT COUNT(*), COALESCE(SUM(updated_ms), 0) FROM events",
		"SELECT COUNT(*), COALESCE(SUM(at_ms), 0) FROM attempts",
		"SELECT COUNT(*), COALESCE(SUM(updated_ms), 0) FROM legacy_imports",
	} {
		var c, sum int64
		if err := d.arch.DB().QueryRow(q).Scan(&c, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		s += fmt.Sprintf(" | %d/%d", c, sum)
	}
	return s
}

// startWorker runs a worker on the destination until the returned stop.
func (d *dest) startWorker(t *testing.T) (stop func()) {
	t.Helper()
	w := worker.New(d.store, delivery.New(delivery.Config{}), worker.Config{
		PollInterval: 100 * time.Millisecond, ReapInterval: 100 * time.Millisecond, HeartbeatInterval: time.Second,
		ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// arrival is one request a recorder received.
type arrival struct {
	Method string
	Host   string
	Header http.Header
	Body   []byte
}

// recorder is an HTTP destination that records the first arrival per path.
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     map[string]arrival
	changed chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{got: map[string]arrival{}, changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		if _, seen := r.got[req.URL.Path]; !seen {
			r.got[req.URL.Path] = arrival{Method: req.Method, Host: req.Host, Header: req.Header.Clone(), Body: body}
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) URL(path string) string { return r.srv.URL + path }

// wait returns the arrivals once n paths have one, failing after timeout.
func (r *recorder) wait(t *testing.T, n int, timeout time.Duration) map[string]arrival {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, ch := maps.Clone(r.got), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			// A little longer, to see an early delivery that should not be.
			time.Sleep(300 * time.Millisecond)
			r.mu.Lock()
			defer r.mu.Unlock()
			return maps.Clone(r.got)
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d of %d deliveries after %s", len(got), n, timeout)
		}
	}
}
