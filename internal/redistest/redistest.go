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
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// RequireEnv names the environment variable that turns a missing
	// redis-server into a test failure instead of a skip.
	RequireEnv = "CASSATA_REQUIRE_REDIS"

	// StartTimeout bounds how long Start and Restart wait for PING to answer.
	StartTimeout = 10 * time.Second

	// StopTimeout is how long Stop waits after SIGTERM before sending SIGKILL.
	StopTimeout = 5 * time.Second

	// portAttempts bounds retries when the chosen port is taken between
	// picking it and redis-server binding it.
	portAttempts = 5
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
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
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
	s.args = []string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if cfg.aof {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	s.args = append(s.args, cfg.args...)

	// Cleanup runs in LIFO order: registered before the client exists, so
	// the client (closed in its own cleanup) goes first, then the process.
	t.Cleanup(s.shutdown)

	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: pick port: %v", err)
		}
		lastErr = s.launch(port)
		if lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
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
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		})
	}
	return s.client
}

// Kill sends SIGKILL, simulating a crash, and waits for the process to exit.
// Writes not yet fsynced to the AOF are lost, as they would be in production.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signalAndWait(syscall.SIGKILL, 0)
}

// Stop sends SIGTERM, letting redis-server shut down cleanly (flushing the
// AOF), and waits for it to exit, sending SIGKILL after StopTimeout.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signalAndWait(syscall.SIGTERM, StopTimeout)
}

// Restart starts the server again on the same port and data directory and
// waits until it answers PING. A server still running is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// A port freed by our own process can in principle be grabbed by another
	// process in between; there is no other port to move to (clients hold
	// the address), so retry briefly and then give up.
	var err error
	for range portAttempts {
		if err = s.launch(s.port); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
}

var errAddrInUse = errors.New("address already in use")

// launch starts redis-server on port and waits for PING. On failure the
// process is gone and the error carries the tail of the server log.
func (s *Server) launch(port int) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor

	args := append([]string{"--port", strconv.Itoa(port)}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.port, s.cmd, s.exited = port, cmd, exited

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-exited:
			s.cmd = nil
			log := readLog(logPath)
			if bytes.Contains(log, []byte("Address already in use")) {
				return fmt.Errorf("port %d: %w", port, errAddrInUse)
			}
			return fmt.Errorf("redis-server exited during start-up (%s); log:\n%s", cmd.ProcessState, log)
		default:
		}
		if ping(addr) {
			return nil
		}
		if time.Now().After(deadline) {
			s.signalAndWait(syscall.SIGKILL, 0)
			return fmt.Errorf("no PONG from %s within %s; log:\n%s", addr, StartTimeout, readLog(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	s.Stop()
}

// ping reports whether addr answers PING with PONG. It speaks RESP directly
// so that start-up does not depend on client settings; a server still
// loading its AOF answers -LOADING, which counts as not ready.
func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before redis-server binds it; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readLog(path string) []byte {
	b, _ := os.ReadFile(path)
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return b
}
