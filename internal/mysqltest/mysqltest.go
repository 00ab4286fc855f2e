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
//
// Programs that are not tests (cmd/cassata-bench) use the same core without
// a testing.TB: StartProcess starts a server in a directory of their
// choosing and Close stops it.
//
//	p, err := mysqltest.StartProcess(dir) // errors.Is(err, mysqltest.ErrNoBinary) when not installed
//	defer p.Close()
//	err = p.CreateDatabase(ctx, "bench1")
//	dsn := p.DSN("bench1")
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
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cassata/cassata/internal/testproc"
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
)

// Process is one mariadbd/mysqld process on a free loopback port with its
// own data directory, socket and logs. It needs no testing.TB, so programs
// other than tests (cmd/cassata-bench) can run one: StartProcess, then
// Close (or Stop to keep the files). Tests use Server, which wraps one.
type Process struct {
	bin string
	dir string // data/, tmp/, socket, pid file, error log
	own bool   // dir was created by StartProcess: Close removes it

	mu    sync.Mutex
	port  int
	proc  *testproc.Proc // nil until started
	admin *sql.DB
}

// Server is a Process started for a test; Start and Shared register its
// shutdown. Every Process method applies.
type Server struct {
	*Process
}

// Start launches a server for t and registers its shutdown with t.Cleanup.
// It skips (or fails, see RequireEnv) when no server binary is installed.
func Start(t testing.TB) *Server {
	t.Helper()
	p, err := StartProcess("")
	if errors.Is(err, ErrNoBinary) {
		skipOrFail(t, err)
	}
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(p.Close)
	return &Server{p}
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
		var p *Process
		if p, sharedErr = StartProcess(""); sharedErr == nil {
			shared = &Server{p}
		}
	}
	if errors.Is(sharedErr, ErrNoBinary) {
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
		shared.Close()
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

// NewDatabase creates a database with a random name, registers dropping it
// with t.Cleanup, and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "db_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = s.Admin().ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return s.DSN(name)
}

// Restart starts the server again on the same port and data directory (a
// running one is stopped first) and waits until it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.restart(); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
}

// Addr returns the server's host:port.
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
}

// Port returns the server's TCP port.
func (p *Process) Port() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.port
}

// Dir returns the server's directory (data/ and error.log live here).
func (p *Process) Dir() string { return p.dir }

// DSN returns the archive DSN (mysql://root@127.0.0.1:PORT/db) of a database.
func (p *Process) DSN(db string) string {
	return "mysql://root@" + p.Addr() + "/" + db
}

// CreateDatabase creates database name (utf8mb4, binary collation, as the
// archive expects). The name is used as is: pass a plain identifier.
func (p *Process) CreateDatabase(ctx context.Context, name string) error {
	if _, err := p.Admin().ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// Admin returns a root connection pool without a default database, opened on
// first use and closed by Close.
func (p *Process) Admin() *sql.DB {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		p.admin = sql.OpenDB(mustConnector(p.rootConfigLocked()))
	}
	return p.admin
}

// Pid is the database server's process id (for its CPU time).
func (p *Process) Pid() int { return p.current().Pid() }

// Kill sends SIGKILL, simulating a crash, and waits for the process to exit.
func (p *Process) Kill() { p.current().Kill() }

// Stop shuts the server down cleanly (SIGTERM) and waits for it, sending
// SIGKILL after StopTimeout. Its files stay; a Server can Restart.
func (p *Process) Stop() { p.current().Stop() }

func (p *Process) current() *testproc.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

// Close closes the Admin pool, stops the server and, when StartProcess
// created the directory, removes it. It is safe to call more than once.
func (p *Process) Close() {
	p.mu.Lock()
	admin := p.admin
	p.admin = nil
	p.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	p.Stop()
	if p.own {
		_ = os.RemoveAll(p.dir)
	}
}

// restart launches the server again on its port and data directory, after
// stopping a running one.
func (p *Process) restart() error {
	if err := p.current().RestartReady(p.waitReady); err != nil {
		return fmt.Errorf("restart on port %d: %w", p.Port(), err)
	}
	return nil
}

var (
	// ErrNoBinary is StartProcess's error when neither server binary is
	// installed (on PATH or in the usual sbin directories).
	ErrNoBinary = errors.New("neither mariadbd nor mysqld is installed")
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

// maxSocketPath is the longest Unix socket path the kernel takes (108
// bytes with the terminating NUL on Linux).
const maxSocketPath = 107

// StartProcess initialises a data directory and launches a server on a free
// loopback port, waiting until it accepts connections. dir holds everything
// the server writes (data/, tmp/, socket, pid file, error.log,
// stdout.log); it is created when missing and must otherwise be empty.
// With dir == "" a temporary directory is made, which Close removes. The
// socket lives in dir, so its path must stay short (107 bytes). It returns
// ErrNoBinary when neither mariadbd nor mysqld is installed. On Linux the
// kernel kills the server if the calling program dies without Close.
func StartProcess(dir string) (*Process, error) {
	bin := lookPath("mariadbd", "mysqld")
	if bin == "" {
		return nil, ErrNoBinary
	}
	own := dir == ""
	if own {
		// Not t.TempDir: the socket path must stay under the kernel's 108
		// bytes, and long test names make TempDir paths long.
		var err error
		if dir, err = os.MkdirTemp("", "mysqltest-"); err != nil {
			return nil, err
		}
	} else {
		var err error
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := checkSocketPath(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if entries, err := os.ReadDir(dir); err != nil {
			return nil, err
		} else if len(entries) > 0 {
			return nil, fmt.Errorf("server directory %s is not empty", dir)
		}
	}
	cleanup := func() {
		if own {
			_ = os.RemoveAll(dir)
		}
	}
	if err := checkSocketPath(dir); err != nil {
		cleanup()
		return nil, err
	}
	p := &Process{bin: bin, dir: dir, own: own}
	if err := p.initDataDir(); err != nil {
		cleanup()
		return nil, err
	}
	if err := testproc.OnFreePort(p.launch); err != nil {
		cleanup()
		return nil, err
	}
	return p, nil
}

const socketName = "mysqld.sock"

func checkSocketPath(dir string) error {
	if sock := filepath.Join(dir, socketName); len(sock) > maxSocketPath {
		return fmt.Errorf("socket path %s is longer than %d bytes; use a shorter directory", sock, maxSocketPath)
	}
	return nil
}

// initDataDir creates the system tables with a root account that logs in
// without a password (the server only listens on loopback and a socket in
// a private directory).
func (p *Process) initDataDir() error {
	data := filepath.Join(p.dir, "data")
	// A private tmpdir: servers bootstrapping at the same time otherwise
	// collide on the names of their temporary tables in /tmp.
	if err := os.Mkdir(filepath.Join(p.dir, "tmp"), 0o700); err != nil {
		return err
	}
	tmpdir := "--tmpdir=" + filepath.Join(p.dir, "tmp")
	var cmd *exec.Cmd
	if install := lookPath("mariadb-install-db", "mysql_install_db"); install != "" && isMariaDB(p.bin) {
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
		cmd = exec.Command(p.bin, args...)
	}
	cmd.Dir = p.dir
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
func (p *Process) launch(port int) error {
	args := []string{
		"--no-defaults", // must come first: ignore /etc/mysql entirely
		"--datadir=" + filepath.Join(p.dir, "data"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-networking=0",
		"--socket=" + filepath.Join(p.dir, socketName),
		"--tmpdir=" + filepath.Join(p.dir, "tmp"),
		"--pid-file=" + filepath.Join(p.dir, "mysqld.pid"),
		"--log-error=" + p.errLog(),
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
	c, err := testproc.Start(testproc.Config{
		Name:    filepath.Base(p.bin),
		Path:    p.bin,
		Args:    args,
		Dir:     p.dir,
		LogPath: filepath.Join(p.dir, "stdout.log"),
		Grace:   StopTimeout,
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.port, p.proc = port, c
	p.mu.Unlock()
	return p.waitReady(c)
}

func (p *Process) errLog() string { return filepath.Join(p.dir, "error.log") }

// waitReady waits until the server accepts a connection. When it does not,
// the process is killed; ErrAddrInUse says its port was taken.
func (p *Process) waitReady(c *testproc.Proc) error {
	p.mu.Lock()
	cfg := p.rootConfigLocked()
	p.mu.Unlock()
	cfg.Timeout = time.Second
	db := sql.OpenDB(mustConnector(cfg))
	defer db.Close()
	err := c.WaitReady(context.Background(), StartTimeout, db.PingContext)
	if err == nil {
		return nil
	}
	c.Kill()
	log := tail(readFile(p.errLog()))
	if bytes.Contains(log, []byte("Address already in use")) || bytes.Contains(log, []byte("Do you already have another")) {
		return fmt.Errorf("%s: %w", cfg.Addr, testproc.ErrAddrInUse)
	}
	return fmt.Errorf("%w; error log:\n%s", err, log)
}

// rootConfigLocked reads p.port; callers hold p.mu or own p exclusively.
func (p *Process) rootConfigLocked() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
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
