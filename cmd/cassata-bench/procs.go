package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/testproc"
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

// startProcess runs bin with args and env, sending its output to logPath.
// Like every child of the bench it runs in its own process group, so a
// Ctrl-C in the terminal reaches only the bench, which then stops the
// children in order; on Linux the kernel kills it should the bench die
// without cleaning up.
func startProcess(name, bin string, args, env []string, logPath string) (*testproc.Proc, error) {
	p, err := testproc.Start(testproc.Config{
		Name:    name,
		Path:    bin,
		Args:    args,
		Env:     env,
		LogPath: logPath,
		Grace:   stopTimeout,
	})
	if err != nil {
		return nil, err
	}
	slog.Debug("started", "process", name, "pid", p.Pid(), "log", logPath)
	return p, nil
}

// buildCassata builds ./cmd/cassata of the module this bench runs in.
func buildCassata(ctx context.Context, dir string) (string, error) {
	slog.Info("building cassata")
	start := time.Now()
	bin, err := testbin.Build(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("%w; run from the repository or pass --cassata", err)
	}
	slog.Info("built cassata", "in", time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// redisServer is the bench's own redis-server.
type redisServer struct {
	proc   *testproc.Proc
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
		port, err := testproc.FreePort()
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
		r := &redisServer{proc: p, addr: testproc.LoopbackAddr(port)}
		r.client = redis.NewClient(&redis.Options{Addr: r.addr})
		ping := func(ctx context.Context) error { return r.client.Ping(ctx).Err() }
		if lastErr = p.WaitReady(ctx, 10*time.Second, ping); lastErr == nil {
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

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

func (r *redisServer) stop() {
	if r == nil {
		return
	}
	if r.client != nil {
		_ = r.client.Close()
	}
	r.proc.Stop()
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
	server      *testproc.Proc
	sink        *testproc.Proc // the bench's sink, shared by every deployment: checked, not stopped
	workers     []*testproc.Proc
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

	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	listen := testproc.LoopbackAddr(port)
	d.server, err = startProcess("cassata server", b.bin,
		[]string{"server", "--listen", listen},
		append(slices.Clone(env), "CASSATA_LISTEN="+listen),
		b.logPath(ns, attempt, "server"))
	if err != nil {
		return nil, err
	}

	var workerAddrs []string
	for i := range b.opts.workers {
		port, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := testproc.LoopbackAddr(port)
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
	if err := d.server.WaitReady(ctx, readyTimeout, testproc.HTTP(base+"/readyz")); err != nil {
		return nil, err
	}
	for i, w := range d.workers {
		if err := w.WaitReady(ctx, readyTimeout, testproc.HTTP("http://"+workerAddrs[i]+"/healthz")); err != nil {
			return nil, err
		}
	}
	d.sink = b.sink.proc
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
		go func() { w.Stop(); done <- struct{}{} }()
	}
	for range d.workers {
		<-done
	}
	if d.server != nil {
		d.server.Stop()
	}
}

// alive returns an error when any process of the deployment has exited.
func (d *deployment) alive() error {
	for _, p := range append([]*testproc.Proc{d.server, d.sink}, d.workers...) {
		if p == nil {
			continue
		}
		if err := p.Err(); err != nil {
			return err
		}
	}
	return nil
}
