// Package mysqltest starts real MariaDB (or MySQL) servers for the archive's
// integration tests. A server runs on a free loopback port with its own data
// directory and socket in a temporary directory, so it never touches a
// system installation (nor one listening on 3306).
//
// Most tests want a fresh database, not a fresh server: NewDatabase creates
// one on a server shared by the whole test binary (started on first use,
// about a second), and the package's TestMain stops it with StopShared.
// Tests that stop, kill or restart the server (outages) take their own with
// Start.
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		mysqltest.StopShared()
//		os.Exit(code)
//	}
//
//	dsn := mysqltest.NewDatabase(t) // mysql://root@127.0.0.1:PORT/db_<random>
//
// When neither mariadbd nor mysqld is installed the test is skipped, unless
// the environment sets CASSATA_REQUIRE_MYSQL=1 (as `make test` does), in
// which case it fails: a CI run must never pass by skipping everything.
package mysqltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

const (
	// RequireEnv names the environment variable that turns a missing
	// server binary into a test failure instead of a skip.
	RequireEnv = "CASSATA_REQUIRE_MYSQL"

	// StartTimeout bounds how long a start waits for the server to accept
	// connections (InnoDB recovery after a kill included).
	StartTimeout = 60 * time.Second

	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 20 * time.Second

	portAttempts = 5
)

// Server is one mariadbd/mysqld process.
type Server struct {
	bin string
	dir string // temporary directory: data/, socket, pid file, error log
	own bool   // dir is ours to remove at shutdown

	mu     sync.Mutex
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	admin  *sql.DB
}

// Start launches a server for t and registers its shutdown with t.Cleanup.
// It skips (or fails, see RequireEnv) when no server binary is installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if errors.Is(err, errNoBinary) {
		skipOrFail(t, err)
	}
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(s.shutdown)
	return s
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// Shared returns the server shared by the test binary, starting it on first
// use. StopShared (from TestMain) stops it; should TestMain not call it, the
// server still dies with the test binary on Linux.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start()
	}
	if errors.Is(sharedErr, errNoBinary) {
		skipOrFail(t, sharedErr)
	}
	if sharedErr != nil {
		t.Fatalf("mysqltest: shared server: %v", sharedErr)
	}
	return shared
}

// NewDatabase creates a fresh database on the shared server, drops it when
// the test ends, and returns its DSN in CASSATA_ARCHIVE_DSN form.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// StopShared stops the shared server, if one was started, and removes its
// files. Call it from TestMain after m.Run.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.shutdown()
		shared = nil
	}
	sharedErr = nil
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%v and %s=1 (install mariadb-server, e.g. `make deps`)", err, RequireEnv)
	}
	t.Skipf("%v; skipping MariaDB tests", err)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Dir returns the server's temporary directory (data/ and error.log live here).
func (s *Server) Dir() string { return s.dir }

// DSN returns the archive DSN (mysql://root@127.0.0.1:PORT/db) of a database.
func (s *Server) DSN(db string) string {
	return "mysql://root@" + s.Addr() + "/" + db
}

// NewDatabase creates a database with a random name, registers dropping it
// with t.Cleanup, and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "db_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Admin().ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("mysqltest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = s.Admin().ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return s.DSN(name)
}

// Admin returns a root connection pool without a default database, opened on
// first use and closed at shutdown.
func (s *Server) Admin() *sql.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		s.admin = sql.OpenDB(mustConnector(s.rootConfigLocked()))
	}
	return s.admin
}

// Kill sends SIGKILL, simulating a crash, and waits for the process to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signalAndWait(syscall.SIGKILL, 0)
}

// Stop shuts the server down cleanly (SIGTERM) and waits for it, sending
// SIGKILL after StopTimeout.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signalAndWait(syscall.SIGTERM, StopTimeout)
}

// Restart starts the server again on the same port and data directory (a
// running one is stopped first) and waits until it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for range portAttempts {
		if err = s.launch(s.port); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("mysqltest: restart on port %d: %v", s.port, err)
	}
}

var (
	errNoBinary  = errors.New("neither mariadbd nor mysqld is installed")
	errAddrInUse = errors.New("address already in use")
)

// sbinDirs are searched after PATH: Debian installs the server in /usr/sbin,
// which is not on an ordinary user's PATH.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"}

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	for _, n := range names {
		for _, d := range sbinDirs {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// start initialises a data directory and launches a server on a free port.
func start() (*Server, error) {
	bin := lookPath("mariadbd", "mysqld")
	if bin == "" {
		return nil, errNoBinary
	}
	// Not t.TempDir: the socket path must stay under the kernel's 108
	// bytes, and long test names make TempDir paths long.
	dir, err := os.MkdirTemp("", "mysqltest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, own: true}
	if err := s.initDataDir(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pick port: %w", err)
		}
		if lastErr = s.launch(port); lastErr == nil {
			return s, nil
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// initDataDir creates the system tables with a root account that logs in
// without a password (the server only listens on loopback and a socket in
// a private directory).
func (s *Server) initDataDir() error {
	data := filepath.Join(s.dir, "data")
	// A private tmpdir: servers bootstrapping at the same time otherwise
	// collide on the names of their temporary tables in /tmp.
	if err := os.Mkdir(filepath.Join(s.dir, "tmp"), 0o700); err != nil {
		return err
	}
	tmpdir := "--tmpdir=" + filepath.Join(s.dir, "tmp")
	var cmd *exec.Cmd
	if install := lookPath("mariadb-install-db", "mysql_install_db"); install != "" && isMariaDB(s.bin) {
		args := []string{
			"--no-defaults",
			"--datadir=" + data,
			"--auth-root-authentication-method=normal",
			"--skip-test-db",
			"--skip-name-resolve",
			tmpdir, // passed on to the bootstrap server
		}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		cmd = exec.Command(install, args...)
	} else {
		// Oracle MySQL initialises with the server binary itself.
		args := []string{"--no-defaults", "--initialize-insecure", "--datadir=" + data, tmpdir}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		cmd = exec.Command(s.bin, args...)
	}
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initialise data directory (%s): %w\n%s", strings.Join(cmd.Args, " "), err, tail(out))
	}
	return nil
}

func isMariaDB(bin string) bool {
	if strings.Contains(filepath.Base(bin), "mariadb") {
		return true
	}
	out, _ := exec.Command(bin, "--no-defaults", "--version").Output()
	return bytes.Contains(bytes.ToLower(out), []byte("mariadb"))
}

// launch starts the server on port and waits until it accepts a
// connection. On failure the process is gone and the error carries the tail
// of the error log.
func (s *Server) launch(port int) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	errLog := filepath.Join(s.dir, "error.log")
	args := []string{
		"--no-defaults", // must come first: ignore /etc/mysql entirely
		"--datadir=" + filepath.Join(s.dir, "data"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-networking=0",
		"--socket=" + filepath.Join(s.dir, "mysqld.sock"),
		"--tmpdir=" + filepath.Join(s.dir, "tmp"),
		"--pid-file=" + filepath.Join(s.dir, "mysqld.pid"),
		"--log-error=" + errLog,
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_bin",
		"--max-connections=500",
		// Small footprint; the test server holds little data.
		"--innodb-buffer-pool-size=128M",
		"--performance-schema=OFF",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	logFile, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.port, s.cmd, s.exited = port, cmd, exited

	cfg := s.rootConfigLocked()
	cfg.Timeout = time.Second
	db := sql.OpenDB(mustConnector(cfg))
	defer db.Close()
	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-exited:
			s.cmd = nil
			log := tail(readFile(errLog))
			if bytes.Contains(log, []byte("Address already in use")) || bytes.Contains(log, []byte("Do you already have another")) {
				return fmt.Errorf("port %d: %w", port, errAddrInUse)
			}
			return fmt.Errorf("%s exited during start-up (%s); error log:\n%s", filepath.Base(s.bin), cmd.ProcessState, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.signalAndWait(syscall.SIGKILL, 0)
			return fmt.Errorf("no connection to 127.0.0.1:%d within %s (last error: %v); error log:\n%s", port, StartTimeout, err, tail(readFile(errLog)))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// rootConfigLocked reads s.port; callers hold s.mu or own s exclusively.
func (s *Server) rootConfigLocked() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	// The driver logs some connection errors itself; while the server
	// starts or after a test stopped it those are expected noise.
	cfg.Logger = quietLogger{}
	return cfg
}

type quietLogger struct{}

func (quietLogger) Print(...any) {}

func mustConnector(cfg *mysql.Config) driver.Connector {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		panic(err) // only for an impossible configuration
	}
	return c
}

// signalAndWait signals the running process and waits for it to exit; with
// a positive grace it escalates to SIGKILL after grace. Callers hold s.mu.
func (s *Server) signalAndWait(sig syscall.Signal, grace time.Duration) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-s.exited:
		case <-time.After(grace):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	} else {
		<-s.exited
	}
	s.cmd = nil
}

func (s *Server) shutdown() {
	s.mu.Lock()
	admin := s.admin
	s.admin = nil
	s.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	s.Stop()
	if s.own {
		_ = os.RemoveAll(s.dir)
	}
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before the server binds it; start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func tail(b []byte) []byte {
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return b
}
