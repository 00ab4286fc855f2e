package mysqltest_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/mysqltest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mysqltest.StopShared()
	os.Exit(code)
}

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := mysqltest.NewDatabase(t), mysqltest.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the DSN %s", a)
	}
	srv := mysqltest.Shared(t)
	if !strings.HasPrefix(a, "mysql://root@127.0.0.1:") || !strings.HasPrefix(a, srv.DSN("")) {
		t.Fatalf("DSN = %q, want mysql://root@%s/db_...", a, srv.Addr())
	}
	if strings.HasSuffix(srv.Addr(), ":3306") {
		t.Fatalf("the test server took the system port: %s", srv.Addr())
	}
	var version string
	if err := srv.Admin().QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("SELECT VERSION(): %v", err)
	}
	t.Logf("server %s at %s", version, srv.Addr())
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	begin := time.Now()
	srv := mysqltest.Start(t)
	t.Logf("initialised and started in %s", time.Since(begin).Round(time.Millisecond))
	if shared := mysqltest.Shared(t); shared.Addr() == srv.Addr() {
		t.Fatal("Start returned the shared server")
	}
	db := srv.Admin()
	mustExec(t, db, "CREATE DATABASE keep")
	mustExec(t, db, "CREATE TABLE keep.t (v INT) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO keep.t VALUES (7)")

	srv.Stop()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("the server answers after Stop")
	}
	begin = time.Now()
	srv.Restart(t)
	t.Logf("restarted in %s", time.Since(begin).Round(time.Millisecond))
	if got := one(t, db, "SELECT v FROM keep.t"); got != 7 {
		t.Fatalf("after restart v = %d, want 7", got)
	}

	// A committed row survives a crash (InnoDB recovery on restart).
	mustExec(t, db, "INSERT INTO keep.t VALUES (8)")
	srv.Kill()
	srv.Restart(t)
	if got := one(t, db, "SELECT SUM(v) FROM keep.t"); got != 15 {
		t.Fatalf("after kill and restart SUM(v) = %d, want 15", got)
	}
}

// TestStartProcess runs the core without a testing.TB, the way
// cmd/cassata-bench does: in a directory of the caller's, which Close
// leaves in place.
func TestStartProcess(t *testing.T) {
	t.Parallel()
	mysqltest.Shared(t) // skip or fail here when there is no server binary
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	srvDir := filepath.Join(dir, "mariadb")

	p, err := mysqltest.StartProcess(srvDir)
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close()
		}
	})
	if p.Dir() != srvDir {
		t.Errorf("Dir = %q, want %q", p.Dir(), srvDir)
	}
	if err := p.CreateDatabase(ctx, "bench1"); err != nil {
		t.Fatal(err)
	}
	if got, want := p.DSN("bench1"), "mysql://root@"+p.Addr()+"/bench1"; got != want {
		t.Errorf("DSN = %q, want %q", got, want)
	}
	mustExec(t, p.Admin(), "CREATE TABLE bench1.t (v INT) ENGINE=InnoDB")
	if err := p.CreateDatabase(ctx, "bench1"); err == nil {
		t.Error("creating an existing database succeeded")
	}

	if _, err := mysqltest.StartProcess(srvDir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("StartProcess in a used directory: err = %v, want \"not empty\"", err)
	}

	addr := p.Addr()
	p.Close()
	closed = true
	p.Close() // twice is fine
	if _, err := os.Stat(filepath.Join(srvDir, "data")); err != nil {
		t.Errorf("Close removed the caller's directory: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
}

func TestStartProcessSocketPathTooLong(t *testing.T) {
	t.Parallel()
	mysqltest.Shared(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 110))
	if _, err := mysqltest.StartProcess(dir); err == nil || !strings.Contains(err.Error(), "socket path") {
		t.Fatalf("err = %v, want a socket path error", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartProcess created %s before refusing it: %v", dir, err)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func one(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var v int
	var err error
	// The pool may hold connections to the previous process.
	for range 3 {
		if err = db.QueryRowContext(context.Background(), q).Scan(&v); err == nil || !errors.Is(err, sql.ErrNoRows) && !strings.Contains(err.Error(), "invalid connection") {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}
