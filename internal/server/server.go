// Package server runs Cassata's long-lived processes: `dev` (everything in
// one process), `server` (JSON API and admin UI) and `worker` (delivery and
// archiving). Run wires the store, scheduler, deliverer, worker, archiver,
// API, UI, metrics and profiler from a config.Config and shuts them down
// gracefully when its context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/internal/tracing"
	"github.com/cassata/cassata/internal/version"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/topic"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// Modes Run knows.
const (
	ModeDev    = "dev"
	ModeServer = "server"
	ModeWorker = "worker"
)

// Run runs mode (ModeDev, ModeServer or ModeWorker) with cfg until ctx
// ends, then shuts down gracefully: the HTTP server first, then the
// worker, which finishes its in-flight deliveries within
// cfg.ShutdownTimeout. It returns the error that stopped it early, if any.
//
// The process listens before it connects to Redis: meanwhile /healthz
// answers 200, /readyz 503 naming what is missing, and every other route a
// 503 JSON error (api.Starting); the real handler takes over once Redis
// answers. The archive never holds up start-up nor readiness.
func Run(ctx context.Context, mode string, cfg config.Config, log *slog.Logger) error {
	cfg.LogWarnings(log)
	tuneGC(log)
	tr, err := tracing.Setup(ctx, tracing.Config{ServiceVersion: version.Get().Version, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := tr.Shutdown(context.Background()); err != nil {
			log.Warn("tracing: shutdown", "err", err)
		}
	}()

	if mode == "worker" && cfg.ArchiveDSN == "" {
		return fmt.Errorf("CASSATA_ARCHIVE_DSN (or --archive-dsn) is required for worker: finished events are archived there")
	}
	embedded := mode == "dev" && cfg.RedisURL == ""
	if !embedded {
		// A bad URL is a mistake to report now, not a dependency to wait for.
		if err := cfg.RedisConn().Validate(); err != nil {
			return err
		}
	}

	reg := newRegistry()
	httpMetrics := api.NewHTTPMetrics(reg)
	g := newGate(api.Starting(api.StartingConfig{Missing: func() []string { return []string{"redis"} },
		Gatherer: reg, HTTPMetrics: httpMetrics}))
	var handler http.Handler = g
	if cfg.Pprof {
		handler = withPprof(handler)
		log.Warn("profiler served at /debug/pprof/ (CASSATA_PPROF): keep this listener private")
	}
	srv := &http.Server{Addr: cfg.Listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	log.Info("listening", "mode", mode, "addr", ln.Addr().String(), "auth", cfg.Auth, "block_private", cfg.BlockPrivate, "allow_cidrs", cfg.AllowCIDRs)
	if mode == "dev" && !isLoopback(ln.Addr()) {
		// Only an address that names its host gets here (config.Load).
		log.Warn("DEV MODE LISTENS BEYOND LOOPBACK: anyone who reaches this address can use the API"+
			" (auth "+cfg.Auth+") and make this machine send requests to private addresses (block_private "+cfg.BlockPrivate+");"+
			" the admin UI stays loopback-only without CASSATA_ADMIN_PASSWORD. Use server and worker for anything shared",
			"addr", ln.Addr().String())
		fmt.Fprintf(os.Stderr, "\n*** WARNING: cassata dev listens on %s, beyond this machine, with auth %s. Do not expose it. ***\n", ln.Addr(), cfg.Auth)
	}
	serveErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("http server: %w", err)
		}
	}()
	shutdownHTTP := func() {
		shCtx, shCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer shCancel()
		_ = srv.Shutdown(shCtx)
	}

	p, err := start(ctx, mode, cfg, log, reg, httpMetrics, tr, embedded)
	if err != nil {
		shutdownHTTP()
		if ctx.Err() != nil {
			log.Info("shutting down before start-up completed")
			return nil
		}
		return err
	}
	g.set(p.handler)
	log.Info("ready", "mode", mode, "addr", ln.Addr().String())
	if mode == "dev" {
		fmt.Fprintf(os.Stderr, "\nCassata dev mode: admin UI at http://%s%s/admin/   API at http://%s/v1/events   (embedded Redis: NOT durable)\n\n",
			ln.Addr(), cfg.BasePath, ln.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-p.errc:
		log.Error("stopping after an error", "err", runErr)
	case runErr = <-serveErr:
		log.Error("stopping after an error", "err", runErr)
	}
	shutdownHTTP()
	p.stop()
	return runErr
}

// process is a wired process: its handler, the errors of its goroutines,
// and stop, which ends them and closes what start opened.
type process struct {
	handler http.Handler
	errc    <-chan error
	stop    func()
}

// start connects to Redis (waiting for it, see redisstore.Open) and the
// archive, and wires the store, scheduler, worker, archiver, API and UI.
func start(ctx context.Context, mode string, cfg config.Config, log *slog.Logger, reg *prometheus.Registry,
	httpMetrics *api.HTTPMetrics, tr *tracing.Tracing, embedded bool) (_ *process, err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	if embedded {
		mr, err := redisstore.StartEmbedded()
		if err != nil {
			return nil, err
		}
		closers = append(closers, mr.Close)
		cfg.RedisURL = mr.URL()
		log.Warn("DEV MODE: events live in an embedded in-memory Redis and are LOST when this process stops; do not use it in production")
	}
	conn := cfg.RedisConn()
	conn.Logger = log
	if err := conn.Validate(); err != nil {
		return nil, err
	}
	log.Info("connecting to redis", "url", redisstore.RedactURL(cfg.RedisURL), "cluster", cfg.RedisCluster, "namespace", cfg.Namespace)
	store, err := redisstore.Open(ctx, conn)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = store.Client().Close() })
	var runIDs redisstore.RunIDs
	if !embedded {
		if runIDs, err = store.Check(ctx, cfg.AllowEviction, log); err != nil {
			return nil, err
		}
	}

	if mode == "dev" && cfg.ArchiveDSN == "" {
		if cfg.ArchiveDSN, err = devArchiveDSN(); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "Cassata dev mode: archive in %s\n", strings.TrimPrefix(cfg.ArchiveDSN, "sqlite://"))
	}
	arch, err := openArchive(ctx, cfg.ArchiveDSN, log)
	if err != nil {
		return nil, err
	}
	var archHealth *archiveHealth
	if arch != nil {
		closers = append(closers, func() { _ = arch.Close() })
		archHealth = newArchiveHealth(arch, log)
		reg.MustRegister(archHealth)
	}

	metrics := scheduler.NewMetrics(reg)
	reg.MustRegister(backlogCollector{store: store})
	redisRestarts := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cassata_redis_restarts_total", Help: "Restarts of a Redis server (a new run_id) this process noticed.",
	})
	reg.MustRegister(redisRestarts)

	policy := scheduler.Policy{MaxAttempts: cfg.MaxAttempts}.WithDefaults()
	guard := cfg.Guard()
	onRefusal := ssrfRefusals(reg)
	if guard != nil {
		guard.OnRefusal = onRefusal
	}
	schedCfg := scheduler.Config{Guard: guard, Limits: scheduler.Limits{MaxBodyBytes: cfg.MaxBodyBytes}}
	if arch != nil {
		schedCfg.Archive = arch
	}
	sched := scheduler.New(store, schedCfg)
	apps := tenant.NewApps(store, nil)
	subs := topic.NewSubscriptions(store, topic.SubscriptionsConfig{Guard: guard, Limits: schedCfg.Limits})
	msgs, err := topic.NewMessages(store, sched, topic.MessagesConfig{Limits: schedCfg.Limits})
	if err != nil {
		return nil, err
	}
	schedules := schedule.New(store, store, schedule.Config{Guard: guard, Limits: schedCfg.Limits, Events: sched, Log: log})
	flows := flow.New(store)

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	runCtx, cancel := context.WithCancel(ctx)
	closers = append(closers, func() { cancel(); wg.Wait() })

	if runIDs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store.Watch(runCtx, runIDs, redisRestarts, log)
		}()
	}

	if mode == "dev" || mode == "worker" {
		w := worker.New(store, delivery.New(delivery.Config{Guard: guard,
			Signer: delivery.NewSigner(apps, delivery.SignerConfig{})}), worker.Config{
			Concurrency: cfg.WorkerConcurrency, Batch: cfg.Batch, Visibility: cfg.Visibility,
			PollInterval: cfg.PollInterval, ShutdownTimeout: cfg.ShutdownTimeout, Policy: policy,
			HeartbeatInterval: cfg.HeartbeatInterval, DeadAfter: cfg.DeadAfter,
			Logger: log, Metrics: metrics, LogFailedRequests: cfg.LogFailedRequests,
			Fanout:     &worker.Fanout{Store: store, Subscribers: subs, Events: sched},
			Recurrence: schedules, Flows: store, TracerProvider: tr.Provider(),
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(runCtx); err != nil {
				errc <- fmt.Errorf("worker: %w", err)
			}
		}()
		if arch != nil {
			archiver := worker.NewArchiver(store, arch, worker.ArchiverConfig{
				Consumer: w.ID(), Logger: log, Metrics: metrics,
				// A saturated worker (a burst) delivers first; archiving
				// follows within ArchiverConfig.YieldFor.
				Busy:    w.Backlogged,
				OnFinal: api.NewCallbacks(sched, msgs, policy.MaxAttempts, log).OnFinal,
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				migrateWhenReachable(runCtx, store, arch, cfg.CreateTables, log, func() {
					log.Info("archive ready: archiving finished events")
					if err := archiver.Run(runCtx); err != nil {
						errc <- fmt.Errorf("archiver: %w", err)
					}
				})
			}()
		}
	}

	handler, err := newHandler(mode, cfg, httpDeps{store: store, arch: arch, archHealth: archHealth, sched: sched, apps: apps, msgs: msgs,
		subs: subs, schedules: schedules, flows: flows, reg: reg, metrics: metrics, httpMetrics: httpMetrics,
		maxAttempts: policy.MaxAttempts, log: log, tracer: tr.Provider()})
	if err != nil {
		return nil, err
	}
	return &process{handler: handler, errc: errc, stop: closeAll}, nil
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
