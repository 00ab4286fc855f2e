package legacyimport

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/store/archive"
)

// originalTables are the original Cassata's tables (API.md §1) with three
// rows: one pending, one completed with an event log, one invalid.
var originalTables = []string{
	"CREATE TABLE `_saas_events` (`id` int(11) NOT NULL AUTO_INCREMENT, `event_id` varchar(50) NOT NULL," +
		"`application` varchar(100) DEFAULT NULL, `event_json` json NOT NULL, `http_method` varchar(15) DEFAULT NULL," +
		"`http_headers` json DEFAULT NULL, `destination_url` varchar(2000) DEFAULT NULL, `status` varchar(30) NOT NULL," +
		"`expiry` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, `created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP," +
		"PRIMARY KEY (`id`), UNIQUE KEY `idx_id_app` (`event_id`,`application`)) ENGINE=InnoDB DEFAULT CHARSET=latin1",
	"CREATE TABLE `_saas_eventlog` (`id` int(11) NOT NULL AUTO_INCREMENT, `_saas_events_id` int(11)," +
		"`http_response_code` integer NOT NULL, `http_response` varchar(2000) DEFAULT NULL," +
		"`created_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`id`), KEY `idx_events_id` (`_saas_events_id`))" +
		" ENGINE=InnoDB DEFAULT CHARSET=latin1",
	"INSERT INTO _saas_events (id, event_id, application, event_json, http_method, http_headers, destination_url, status, expiry) VALUES " +
		`(1, 'p-1', 'orders', '{"a": 1}', 'POST', '["Connection: keep-alive", "X-A: b"]', 'https://example.com/p', 'PENDING', NOW() + INTERVAL 1 HOUR),` +
		`(2, 'c-1', 'orders', '{"b": 2}', 'PUT', NULL, 'https://example.com/c', 'COMPLETED', NOW() - INTERVAL 1 HOUR),` +
		`(3, 'x-1', 'bad app', '{}', 'POST', '[]', 'https://example.com/x', 'PENDING', NOW())`,
	"INSERT INTO _saas_eventlog (_saas_events_id, http_response_code, http_response) VALUES (2, 503, 'busy')",
}

func TestImportCommand(t *testing.T) {
	srv := mysqltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, "original"); err != nil {
		t.Fatal(err)
	}
	srcDSN := srv.DSN("original")
	cfg, err := archive.MySQLConfig(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, stmt := range originalTables {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rs := redistest.Start(t)
	archivePath := filepath.Join(t.TempDir(), "archive.db")
	t.Setenv("CASSATA_REDIS_URL", rs.URL())
	t.Setenv("CASSATA_ARCHIVE_DSN", "sqlite://"+archivePath)
	t.Setenv("CASSATA_BLOCK_PRIVATE", "on")
	t.Setenv("CASSATA_CONFIG", "")
	t.Setenv("CASSATA_LOG_LEVEL", "error")

	run := func(t *testing.T, args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		stderr, err := os.CreateTemp(t.TempDir(), "stderr")
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		code := Run(context.Background(), args, &out, stderr)
		errText, _ := os.ReadFile(stderr.Name())
		if strings.Contains(string(errText), "\r") {
			t.Errorf("a progress line although stderr is not a terminal: %q", errText)
		}
		return code, out.String() + string(errText)
	}
	wantIn := func(t *testing.T, out string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(out, p) {
				t.Errorf("output lacks %q:\n%s", p, out)
			}
		}
	}

	t.Run("usage", func(t *testing.T) {
		if code, out := run(t); code != ExitUsage || !strings.Contains(out, "--from") {
			t.Errorf("no source: exit %d, %s", code, out)
		}
		if code, _ := run(t, "--from", srcDSN, "extra"); code != ExitUsage {
			t.Errorf("an argument: exit %d", code)
		}
		if code, _ := run(t, "--from", srcDSN, "--page-size", "0"); code != ExitUsage {
			t.Errorf("--page-size 0: exit %d", code)
		}
	})
	t.Run("not an original database", func(t *testing.T) {
		if err := srv.CreateDatabase(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		code, out := run(t, "--from", srv.DSN("other"))
		if code != ExitError || !strings.Contains(out, "no _saas_events table") {
			t.Errorf("exit %d, %s", code, out)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		code, out := run(t, "--from", srcDSN, "--dry-run")
		if code != ExitInvalid {
			t.Errorf("exit %d, want %d", code, ExitInvalid)
		}
		wantIn(t, out, "dry run, nothing written: 3 rows", "would import live:      1", "would archive:          1 (1 event log",
			"invalid\tid=3\tapplication=\"bad app\"\tevent_id=\"x-1\"\tcolumn=application")
		if _, err := os.Stat(archivePath); !os.IsNotExist(err) {
			t.Errorf("the dry run created the archive file (%v)", err)
		}
		if n, _ := rs.Client().DBSize(ctx).Result(); n != 0 {
			t.Errorf("the dry run wrote %d Redis keys", n)
		}
	})
	t.Run("import", func(t *testing.T) {
		code, out := run(t, "--from", srcDSN)
		if code != ExitInvalid {
			t.Errorf("exit %d, want %d", code, ExitInvalid)
		}
		wantIn(t, out, "import: 3 rows read", "imported live:          1", "archived:               1 (1 event log",
			"invalid, skipped:       1", "invalid\tid=3\t")
	})
	t.Run("again from the original's config file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "config.yml")
		yml := fmt.Sprintf("database:\n  driverClass: com.mysql.jdbc.Driver\n  url: jdbc:mysql://%s/original?useSSL=false\n  user: root\n  password: \"\"\n", srv.Addr())
		if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := run(t, "--config", file)
		if code != ExitInvalid {
			t.Errorf("exit %d, want %d", code, ExitInvalid)
		}
		wantIn(t, out, "imported live:          0", "archived:               0", "skipped, done before:   2")
	})
	t.Run("clean source exits 0", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, "DELETE FROM _saas_events WHERE id = 3"); err != nil {
			t.Fatal(err)
		}
		if code, out := run(t, "--from", srcDSN); code != ExitOK {
			t.Errorf("exit %d, want 0: %s", code, out)
		}
	})
}

// TestImportFlags: the import's own flags and the configuration's, in any
// order; a switch alone is true; a bad value or an argument is a usage error.
func TestImportFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // from dry-run page-size redis-url redis-cluster config
		err  bool
	}{
		{[]string{"--from", "mysql://h/db", "--dry-run"}, "mysql://h/db true 500  false ", false},
		{[]string{"--from=mysql://h/db", "--dry-run=false", "--page-size", "50"}, "mysql://h/db false 50  false ", false},
		{[]string{"--config", "orig.yml", "--redis-url", "redis://r:6379"}, " false 500 redis://r:6379 false orig.yml", false},
		{[]string{"--redis-cluster", "--from", "mysql://h/db"}, "mysql://h/db false 500  true ", false},
		{[]string{"--from"}, "", true},
		{[]string{"--page-size", "x"}, "", true},
		{[]string{"--dry-run=maybe"}, "", true},
		{[]string{"--bogus"}, "", true},
	}
	for _, tc := range tests {
		cmd := Command(io.Discard, os.Stderr)
		err := cmd.ParseFlags(tc.args)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v", tc.args, err)
			continue
		}
		if err != nil {
			continue
		}
		fs := cmd.Flags()
		var got []string
		for _, name := range []string{"from", "dry-run", "page-size", "redis-url", "redis-cluster", "config"} {
			got = append(got, fs.Lookup(name).Value.String())
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, g, tc.want)
		}
	}
	if code := Run(context.Background(), []string{"positional"}, io.Discard, os.Stderr); code != ExitUsage {
		t.Errorf("an argument: exit %d, want %d", code, ExitUsage)
	}
}
