package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long a started process may take to answer its
	// readiness endpoint.
	readyTimeout = 30 * time.Second

	// stopTimeout is how long a process gets after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second

	// deployAttempts retries a deployment whose process died at start-up,
	// which covers the small race between picking a free port and binding it.
	deployAttempts = 3
)

// process is one child process: redis-server, cassata server or worker.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been waited for
	waitErr error
}

// startProcess runs bin with args and env, sending its output to logPath.
func startProcess(name, bin string, args, env []string, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	slog.Debug("started", "process", name, "pid", cmd.Process.Pid, "log", logPath)
	return p, nil
}

// stop sends SIGTERM, then SIGKILL if the process is still there after
// stopTimeout. It is safe to call more than once.
func (p *process) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		slog.Warn("process ignored SIGTERM; killing", "process", p.name, "pid", p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// exitedErr returns an error describing the exit when the process has
// exited, or nil while it runs.
func (p *process) exitedErr() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); last output:\n%s", p.name, p.waitErr, p.tail(20))
	default:
		return nil
	}
}

// tail returns the last n lines of the process's output.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before ours binds it; deploy retries for that case.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(ctx context.Context, url string, p *process, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if err := p.exitedErr(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: GET %s not 200 after %s (last: %s); last output:\n%s",
				p.name, url, timeout, last, p.tail(20))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// buildCassata builds ./cmd/cassata of the module this bench runs in.
func buildCassata(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the cassata module; run from the repository or pass --cassata")
	}
	bin := filepath.Join(dir, "cassata")
	slog.Info("building cassata", "module", filepath.Dir(gomod))
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cassata")
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stdout = os.Stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cassata: %w\n%s", err, stderr.String())
	}
	slog.Info("built cassata", "in", time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// redisServer is the bench's own redis-server.
type redisServer struct {
	proc   *process
	addr   string
	client *redis.Client
}

// startRedis starts redis-server on a free loopback port without
// persistence, its data directory under dir.
func startRedis(ctx context.Context, bin, dir string) (*redisServer, error) {
	data := filepath.Join(dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range deployAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("pick redis port: %w", err)
		}
		args := []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", data,
			"--daemonize", "no",
			"--logfile", "",
		}
		p, err := startProcess("redis-server", bin, args, os.Environ(), filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		r := &redisServer{proc: p, addr: "127.0.0.1:" + strconv.Itoa(port)}
		r.client = redis.NewClient(&redis.Options{Addr: r.addr})
		if lastErr = r.waitPing(ctx); lastErr == nil {
			slog.Info("redis-server ready", "addr", r.addr)
			return r, nil
		}
		r.stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}

func (r *redisServer) waitPing(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := r.proc.exitedErr(); err != nil {
			return err
		}
		if r.client.Ping(ctx).Err() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING within 10s; last output:\n%s", r.proc.tail(20))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

func (r *redisServer) stop() {
	if r == nil {
		return
	}
	if r.client != nil {
		_ = r.client.Close()
	}
	r.proc.stop()
}

// usedMemory reads used_memory from INFO memory.
func (r *redisServer) usedMemory(ctx context.Context) (int64, error) {
	info, err := r.client.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO memory: %w", err)
	}
	return parseUsedMemory(info)
}

// parseUsedMemory finds used_memory in the text of INFO memory.
func parseUsedMemory(info string) (int64, error) {
	for line := range strings.Lines(info) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:")
		if ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory has no used_memory")
}

// deployment is one cassata server and its workers, all in one namespace.
type deployment struct {
	ns          string
	server      *process
	workers     []*process
	api         *apiClient
	serverAddr  string
	workerAddrs []string
}

// deploy starts `cassata server` and the workers in namespace ns against
// the bench's Redis, and waits until the server is ready and every worker
// is healthy.
func (b *bench) deploy(ctx context.Context, ns string) (*deployment, error) {
	env := b.cassataEnv(ns)
	var lastErr error
	for attempt := range deployAttempts {
		d, err := b.tryDeploy(ctx, ns, env, attempt)
		if err == nil {
			return d, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		slog.Warn("deployment failed to start", "namespace", ns, "attempt", attempt+1, "err", err)
	}
	return nil, lastErr
}

func (b *bench) tryDeploy(ctx context.Context, ns string, env []string, attempt int) (*deployment, error) {
	d := &deployment{ns: ns}
	ok := false
	defer func() {
		if !ok {
			d.stop()
		}
	}()

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	d.server, err = startProcess("cassata server", b.bin,
		[]string{"server", "--listen", listen},
		append(slices.Clone(env), "CASSATA_LISTEN="+listen),
		b.logPath(ns, attempt, "server"))
	if err != nil {
		return nil, err
	}

	var workerAddrs []string
	for i := range b.opts.workers {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		w, err := startProcess(fmt.Sprintf("cassata worker %d", i+1), b.bin,
			[]string{"worker", "--listen", addr}, env,
			b.logPath(ns, attempt, fmt.Sprintf("worker%d", i+1)))
		if err != nil {
			return nil, err
		}
		d.workers = append(d.workers, w)
		workerAddrs = append(workerAddrs, addr)
	}

	base := "http://" + listen
	if err := waitHTTP(ctx, base+"/readyz", d.server, readyTimeout); err != nil {
		return nil, err
	}
	for i, w := range d.workers {
		if err := waitHTTP(ctx, "http://"+workerAddrs[i]+"/healthz", w, readyTimeout); err != nil {
			return nil, err
		}
	}
	d.api = newAPIClient(base, 64)
	d.serverAddr, d.workerAddrs = listen, workerAddrs
	ok = true
	slog.Info("cassata ready", "namespace", ns, "server", listen, "workers", len(d.workers))
	return d, nil
}

// cassataEnv is the environment of every cassata process in namespace ns:
// the bench's own environment without any CASSATA_ variable (so a
// developer's settings cannot leak in), plus the bench's settings.
func (b *bench) cassataEnv(ns string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CASSATA_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CASSATA_REDIS_URL="+b.redis.url(),
		// Workers archive finished events: into a SQLite file or a MariaDB
		// database of the namespace's own (--archive).
		"CASSATA_ARCHIVE_DSN="+b.archiveDSN(ns),
		"CASSATA_AUTH=off",
		"CASSATA_BLOCK_PRIVATE=off",
		"CASSATA_NAMESPACE="+ns,
	)
	if b.opts.workerConcurrency > 0 {
		env = append(env, "CASSATA_WORKER_CONCURRENCY="+strconv.Itoa(b.opts.workerConcurrency))
	}
	if b.opts.profile != "" {
		env = append(env, "CASSATA_PPROF=true")
	}
	return env
}

func (b *bench) logPath(ns string, attempt int, what string) string {
	name := ns + "-" + what
	if attempt > 0 {
		name += "-retry" + strconv.Itoa(attempt)
	}
	return filepath.Join(b.tmp, name+".log")
}

// stop stops the workers first, so nothing is claimed by a worker whose
// server is gone, then the server.
func (d *deployment) stop() {
	if d == nil {
		return
	}
	if d.api != nil {
		d.api.close()
	}
	done := make(chan struct{})
	for _, w := range d.workers {
		go func() { w.stop(); done <- struct{}{} }()
	}
	for range d.workers {
		<-done
	}
	d.server.stop()
}

// alive returns an error when any process of the deployment has exited.
func (d *deployment) alive() error {
	for _, p := range append([]*process{d.server}, d.workers...) {
		if err := p.exitedErr(); err != nil {
			return err
		}
	}
	return nil
}
