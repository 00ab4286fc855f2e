// Package redistest starts real redis-server processes for integration and
// fault tests. Each test gets its own server on a free loopback port with its
// own data directory, so tests can run in parallel and may kill, stop and
// restart their server without disturbing anyone else.
//
// Unit tests should prefer miniredis; this package is for behaviour that only
// a real server shows: persistence, crashes, real Lua and blocking commands.
//
// When redis-server is not on PATH the test is skipped, unless the
// environment sets CASSATA_REQUIRE_REDIS=1 (as `make test` and CI do), in
// which case it fails: a CI run must never pass by skipping everything.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/testproc"
)

const (
	// RequireEnv names the environment variable that turns a missing
	// redis-server into a test failure instead of a skip.
	RequireEnv = "CASSATA_REQUIRE_REDIS"

	// StartTimeout bounds how long Start and Restart wait for PING to answer.
	StartTimeout = 10 * time.Second

	// StopTimeout is how long Stop waits after SIGTERM before sending SIGKILL.
	StopTimeout = 5 * time.Second
)

// Option configures a Server started by Start.
type Option func(*config)

type config struct {
	aof  bool
	args []string
}

// WithAOF turns on the append-only file with appendfsync everysec, the
// production setting, so tests can check what survives a restart.
func WithAOF() Option {
	return func(c *config) { c.aof = true }
}

// WithArgs appends raw redis-server arguments, e.g. "--maxmemory", "10mb".
// They come after every argument Start sets, so they override them.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test.
type Server struct {
	bin  string
	dir  string
	args []string // without --port

	mu     sync.Mutex
	port   int
	proc   *testproc.Proc // nil until started
	client *redis.Client
}

// Start launches a redis-server for t and registers its shutdown with
// t.Cleanup. It skips (or fails, see RequireEnv) when redis-server is missing.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server not found on PATH and %s=1: %v", RequireEnv, err)
		}
		t.Skip("redis-server not installed")
	}

	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{bin: bin, dir: t.TempDir()}
	s.args = append(baseArgs(s.dir, cfg), cfg.args...)

	// Cleanup runs in LIFO order: registered before the client exists, so
	// the client (closed in its own cleanup) goes first, then the process.
	t.Cleanup(s.shutdown)

	if err := testproc.OnFreePort(s.launch); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	return s
}

// baseArgs are the arguments of every server: loopback only, no
// persistence unless cfg asks for the AOF, data in dir, logs to stdout.
func baseArgs(dir string, cfg config) []string {
	args := []string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if cfg.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	return args
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return testproc.LoopbackAddr(s.port)
}

// URL returns a redis:// URL for database 0, the form CASSATA_REDIS_URL takes.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Dir returns the server's data directory (RDB and AOF files live here).
func (s *Server) Dir() string { return s.dir }

// Client returns a go-redis client for the server, created on first use and
// closed when the test ends. It reconnects by itself across Restart.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{
			Addr: testproc.LoopbackAddr(s.port),
		})
	}
	return s.client
}

// Kill sends SIGKILL, simulating a crash, and waits for the process to exit.
// Writes not yet fsynced to the AOF are lost, as they would be in production.
func (s *Server) Kill() { s.current().Kill() }

// Stop sends SIGTERM, letting redis-server shut down cleanly (flushing the
// AOF), and waits for it to exit, sending SIGKILL after StopTimeout.
func (s *Server) Stop() { s.current().Stop() }

func (s *Server) current() *testproc.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Restart starts the server again on the same port and data directory and
// waits until it answers PING. A server still running is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.current().RestartReady(s.waitReady); err != nil {
		t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
	}
}

// launch starts redis-server on port and waits for PING. On failure the
// process is gone and the error carries the tail of the server log.
func (s *Server) launch(port int) error {
	p, err := testproc.Start(testproc.Config{
		Name:    "redis-server",
		Path:    s.bin,
		Args:    append([]string{"--port", strconv.Itoa(port)}, s.args...),
		Dir:     s.dir,
		LogPath: filepath.Join(s.dir, "redis.log"),
		Grace:   StopTimeout,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.port, s.proc = port, p
	s.mu.Unlock()
	return s.waitReady(p)
}

// waitReady waits until the server answers PING. When it does not, the
// process is killed; ErrAddrInUse says its port was taken.
func (s *Server) waitReady(p *testproc.Proc) error {
	addr := s.Addr()
	err := p.WaitReady(context.Background(), StartTimeout, ping(addr))
	if err == nil {
		return nil
	}
	p.Kill()
	if strings.Contains(p.Output(), "Address already in use") {
		return fmt.Errorf("%s: %w", addr, testproc.ErrAddrInUse)
	}
	return fmt.Errorf("redis-server on %s: %w", addr, err)
}

func (s *Server) shutdown() {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	s.Stop()
}

// ping is a probe that succeeds when addr answers PING with PONG. It speaks
// RESP directly so that start-up does not depend on client settings; a
// server still loading its AOF answers -LOADING, which counts as not ready.
func ping(addr string) testproc.Probe {
	return func(ctx context.Context) error {
		conn, err := testproc.Dial(ctx, addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		if line != "+PONG\r\n" {
			return fmt.Errorf("PING: %q", strings.TrimSpace(line))
		}
		return nil
	}
}
