package archive

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

func TestMySQLDSNTranslation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dsn, want string
	}{
		{"mysql://user:pass@db.internal:3306/cassata",
			"user:pass@tcp(db.internal:3306)/cassata?interpolateParams=true&parseTime=true&timeout=10s"},
		{"mysql://user:pass@db.internal/cassata",
			"user:pass@tcp(db.internal:3306)/cassata?interpolateParams=true&parseTime=true&timeout=10s"},
		{"mysql://root@127.0.0.1:40000/db_x",
			"root@tcp(127.0.0.1:40000)/db_x?interpolateParams=true&parseTime=true&timeout=10s"},
		{"mariadb://u:p@[::1]:3307/a?tls=skip-verify&timeout=2s&readTimeout=30s",
			"u:p@tcp([::1]:3307)/a?interpolateParams=true&parseTime=true&readTimeout=30s&timeout=2s&tls=skip-verify"},
		{"mysql://u:p@h/db?parseTime=false&sql_mode=%27STRICT_ALL_TABLES%27",
			"u:p@tcp(h:3306)/db?interpolateParams=true&timeout=10s&sql_mode=%27STRICT_ALL_TABLES%27"},
		// Percent-encoded credentials are decoded; @ : / in the password survive.
		{"mysql://us%40er:p%40ss%3Aw%2Fo%3Frd@h:1/db",
			"us@er:p@ss:w/o?rd@tcp(h:1)/db?interpolateParams=true&parseTime=true&timeout=10s"},
	}
	for _, tc := range tests {
		_, u, err := parseDSN(tc.dsn)
		if err != nil {
			t.Errorf("parseDSN(%q): %v", tc.dsn, err)
			continue
		}
		cfg, err := mysqlConfig(u)
		if err != nil {
			t.Errorf("mysqlConfig(%q): %v", tc.dsn, err)
			continue
		}
		if got := cfg.FormatDSN(); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.dsn, got, tc.want)
		}
	}
}

func TestSQLiteDSNTranslation(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, path string }{
		{"sqlite:///var/lib/cassata/archive.db", "/var/lib/cassata/archive.db"},
		{"sqlite://data/archive.db", "data/archive.db"},
		{"sqlite:archive.db", "archive.db"},
		{"sqlite3:///tmp/x/../a.db", "/tmp/a.db"},
	}
	for _, tc := range tests {
		_, u, err := parseDSN(tc.dsn)
		if err != nil {
			t.Fatalf("parseDSN(%q): %v", tc.dsn, err)
		}
		path, driverDSN, err := sqliteDSN(u)
		if err != nil || path != tc.path {
			t.Errorf("sqliteDSN(%q) = %q, %v; want %q", tc.dsn, path, err, tc.path)
		}
		for _, want := range []string{"journal_mode%28WAL%29", "busy_timeout%2810000%29", "synchronous%28NORMAL%29", "temp_store%28MEMORY%29", "_txlock=immediate"} {
			if !strings.Contains(driverDSN, want) {
				t.Errorf("driver DSN %q lacks %s", driverDSN, want)
			}
		}
	}
}

func TestDSNErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-PW"
	bad := []string{
		"",
		"postgres://u:" + secret + "@h/db",
		"redis://u:" + secret + "@h:6379/0",
		"mysql://u:" + secret + "@h:3306/",
		"mysql://u:" + secret + "@:3306/db",
		"mysql://u:" + secret + "@h:3306/a/b",
		"mysql://u:" + secret + "@h:3306/db?timeout=forever",
		"mysql://u:" + secret + "@h:badport/db",
		"mysql://u:" + secret + "@h\x7f:3306/db",
		"mysql:u:" + secret + "@h/db",
		"sqlite://",
		"sqlite:///x.db?_txlock=sometimes",
		"u:" + secret + "@tcp(h:3306)/db",
	}
	for _, dsn := range bad {
		s, err := Open(context.Background(), dsn)
		if err == nil {
			_ = s.Close()
			if !strings.HasPrefix(dsn, "sqlite") {
				t.Errorf("Open(%q) succeeded", dsn)
			}
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q) error shows the password: %v", dsn, err)
		}
		if dsn != "" && !strings.Contains(err.Error(), "archive") {
			t.Errorf("Open(%q) error does not say what failed: %v", dsn, err)
		}
	}
	if _, err := Open(context.Background(), "postgres://u:p@h/db"); err == nil || !strings.Contains(err.Error(), `unsupported scheme "postgres"`) {
		t.Errorf("unknown scheme: err = %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	for dsn, want := range map[string]string{
		"mysql://user:pass@h:3306/db?tls=true": "mysql://user:xxxxx@h:3306/db?tls=true",
		"mysql://user@h/db":                    "mysql://user@h/db",
		"sqlite:///var/lib/a.db":               "sqlite:///var/lib/a.db",
		"mysql://u:pa ss@h\x7f/db":             "mysql://<invalid DSN>",
		"u:pass@tcp(h)/db":                     "u:<redacted>",
		"mysql:u:pass@h/db":                    "mysql:<redacted>",
		"sqlite:archive.db":                    "sqlite:archive.db",
	} {
		if got := RedactDSN(dsn); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}

func TestOpenSQLiteCreatesDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "archive.db")
	s, err := Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if s.Dialect() != DialectSQLite {
		t.Errorf("Dialect = %q", s.Dialect())
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	var mode string
	if err := s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenMySQLIsLazy(t *testing.T) {
	t.Parallel()
	// Nothing listens there: Open still succeeds (a worker starts while the
	// archive is down); Ping reports it.
	s, err := Open(context.Background(), "mysql://u:p@127.0.0.1:1/db?timeout=200ms")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if s.Dialect() != DialectMySQL {
		t.Errorf("Dialect = %q", s.Dialect())
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Ping with no server: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "a", "b"); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Get with no server: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.Search(ctx, scheduler.SearchQuery{}); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Search with no server: err = %v, want ErrUnavailable", err)
	}
}

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	for _, d := range []string{DialectMySQL, DialectSQLite} {
		ms, err := migrations(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if len(ms) == 0 || ms[0].version != 1 {
			t.Fatalf("%s: migrations %+v", d, ms)
		}
		for _, m := range ms {
			for _, st := range m.statements {
				if strings.HasSuffix(st, ";") || strings.Contains(st, "--") || strings.TrimSpace(st) == "" {
					t.Errorf("%s %s: bad statement %q", d, m.name, st)
				}
			}
		}
	}
}

// TestSQLitePragmasApply: the pragmas of the DSN are in force on the pool's
// connections, not just written into the DSN.
func TestSQLitePragmasApply(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pragma, want := range map[string]string{
		"journal_mode":       "wal",
		"synchronous":        "1", // NORMAL
		"temp_store":         "2", // MEMORY
		"wal_autocheckpoint": "10000",
	} {
		var got string
		if err := s.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

// TestOpenWaitsForANewFileBeingSetUp: a process that opens a new SQLite
// archive while another one is writing to it (before it is in WAL mode: the
// other is setting it up) waits for it, rather than failing at once with
// SQLITE_BUSY: the journal_mode change every connection makes would need
// the file to itself while the other holds its write lock, and SQLite
// answers that without calling the busy handler (it could deadlock). Fails
// without pingSQLite's retries (tried).
func TestOpenWaitsForANewFileBeingSetUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	// No journal pragma: rollback journal, as a new file is. A busy timeout,
	// so that its COMMIT waits for the shared lock Open's attempts take
	// rather than failing at once with SQLITE_BUSY and keeping the write
	// lock for good (which made this test fail once on a loaded CI).
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	ctx := context.Background()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, stmt := range []string{"CREATE TABLE setup (x)", "BEGIN IMMEDIATE", "INSERT INTO setup VALUES (1)"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	const held = 300 * time.Millisecond
	committed := make(chan error, 1)
	go func() {
		time.Sleep(held)
		_, err := conn.ExecContext(ctx, "COMMIT")
		committed <- err
	}()
	began := time.Now()
	s, err := Open(ctx, "sqlite://"+path)
	if cerr := <-committed; cerr != nil {
		t.Fatalf("the other connection's COMMIT: %v", cerr)
	}
	if err != nil {
		t.Fatalf("Open while another connection set the file up: %v", err)
	}
	defer s.Close()
	if waited := time.Since(began); waited < held/2 {
		t.Errorf("Open returned after %v, before the other connection let go (%v)", waited, held)
	}
	var mode string
	if err := s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}
