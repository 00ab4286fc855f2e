package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/worker"

	"github.com/alicebob/miniredis/v2"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/redisstore"
	"github.com/cassata/cassata/web"
)

var version = "dev"

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// redactURL hides the password of a Redis URL for logs.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u, "@"); j > i {
			return u[:i+3] + "***@" + u[j+1:]
		}
	}
	return u
}

func connectRedis(cfg config) (redis.UniversalClient, error) {
	if cfg.RedisCluster {
		addrs, user, password, tlsConfig, err := clusterSeeds(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: user, Password: password, TLSConfig: tlsConfig, PoolSize: 64,
			DialTimeout: 2 * time.Second, DialerRetries: 1, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRetries: 2}), nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("CASSATA_REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 64)
	// Fail fast when Redis is away: the API answers 503 within seconds
	// instead of holding clients, and workers back off and retry.
	if opt.DialTimeout <= 0 || opt.DialTimeout > 2*time.Second {
		opt.DialTimeout = 2 * time.Second
	}
	if opt.MaxRetries == 0 || opt.MaxRetries > 2 { // 0 would mean go-redis's default, 3
		opt.MaxRetries = 2
	}
	// One dial per try: go-redis otherwise dials 5 times, 100ms apart, on
	// every one of the MaxRetries+1 tries, so each request would wait over
	// a second for a refused connection (and 5 dial timeouts for an
	// unreachable host) before the 503. The tries themselves retry.
	opt.DialerRetries = 1
	return redis.NewClient(opt), nil
}

// serve runs dev, server or worker until ctx ends.
func serve(ctx context.Context, mode string, cfg config) error {
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	delivery.Version = version
	cfg.logWarnings(log)

	if mode == "worker" && cfg.ArchiveDSN == "" {
		return fmt.Errorf("CASSATA_ARCHIVE_DSN (or --archive-dsn) is required for worker: finished events are archived there")
	}
	embedded := mode == "dev" && cfg.RedisURL == ""
	if embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		cfg.RedisURL = "redis://" + mr.Addr()
		log.Warn("DEV MODE: events live in an embedded in-memory Redis and are LOST when this process stops; do not use it in production")
	}
	rdb, err := connectRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	log.Info("connecting to redis", "url", redactURL(cfg.RedisURL), "cluster", cfg.RedisCluster, "namespace", cfg.Namespace)

	store, err := connectStore(ctx, rdb, cfg, log)
	if err != nil {
		return err
	}
	var runIDs map[string]string
	if !embedded {
		if runIDs, err = checkRedis(ctx, store, cfg.AllowEviction, log); err != nil {
			return err
		}
	}

	if mode == "dev" && cfg.ArchiveDSN == "" {
		if cfg.ArchiveDSN, err = devArchiveDSN(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Cassata dev mode: archive in %s\n", strings.TrimPrefix(cfg.ArchiveDSN, "sqlite://"))
	}
	arch, err := openArchive(ctx, cfg.ArchiveDSN, log)
	if err != nil {
		return err
	}
	if arch != nil {
		defer arch.Close()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := scheduler.NewMetrics(reg)
	reg.MustRegister(backlogCollector{store: store})
	redisRestarts := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cassata_redis_restarts_total", Help: "Restarts of a Redis server (a new run_id) this process noticed.",
	})
	reg.MustRegister(redisRestarts)

	policy := scheduler.Policy{MaxAttempts: cfg.MaxAttempts}.WithDefaults()
	guard := cfg.guard()
	schedCfg := scheduler.Config{Guard: guard, Limits: scheduler.Limits{MaxBodyBytes: cfg.MaxBodyBytes}}
	if arch != nil {
		schedCfg.Archive = arch
	}
	sched := scheduler.New(store, schedCfg)
	apps := tenant.NewApps(store, nil)

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	if runIDs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchRedis(runCtx, store, runIDs, redisRestarts, log)
		}()
	}

	if mode == "dev" || mode == "worker" {
		w := worker.New(store, delivery.New(delivery.Config{Guard: guard,
			Signer: delivery.NewSigner(apps, delivery.SignerConfig{})}), worker.Config{
			Concurrency: cfg.WorkerConcurrency, Batch: cfg.Batch, Visibility: cfg.Visibility,
			PollInterval: cfg.PollInterval, ShutdownTimeout: cfg.ShutdownTimeout, Policy: policy,
			HeartbeatInterval: cfg.HeartbeatInterval, DeadAfter: cfg.DeadAfter,
			Logger: log, Metrics: metrics, LogFailedRequests: cfg.LogFailedRequests,
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
				Busy: w.Backlogged,
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				migrateWhenReachable(runCtx, store, arch, cfg.CreateTables, log, func() {
					log.Info("archive ready: archiving finished events")
					archiver.Run(runCtx)
				})
			}()
		}
	}

	ready := func(ctx context.Context) map[string]error {
		checks := map[string]error{"redis": store.Ping(ctx)}
		if arch != nil {
			checks["archive"] = arch.Ping(ctx)
		}
		return checks
	}
	details := func(ctx context.Context) map[string]any {
		return map[string]any{"archive_outbox": archiveLag(ctx, store)}
	}
	a := api.New(api.Config{Scheduler: sched, DefaultMaxAttempts: policy.MaxAttempts, Ready: ready, Details: details,
		Gatherer: reg, Metrics: metrics, Logger: log, Apps: apps, RateLimit: rateLimit(cfg.RateLimit)})
	var handler http.Handler
	if mode == "worker" {
		r := gin.New()
		a.Process(r)
		handler = r
	} else {
		var auth api.Authorizer
		if cfg.Auth == "on" {
			auth = api.NewKeyAuth(apps, api.KeyAuthConfig{AdminToken: cfg.AdminToken,
				JWT: tenant.JWTPolicy{MaxLifetime: cfg.JWTMaxLifetime}})
		}
		engine := a.Engine(auth)
		ui, err := web.New(web.Config{Backend: sched, Apps: apps, Password: cfg.AdminPassword, Open: mode == "dev",
			BasePath: cfg.BasePath, SessionSalt: "cassata:" + cfg.Namespace, Logger: log})
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("admin UI: %w", err)
		}
		ui.Mount(engine)
		handler = engine
	}
	if cfg.Pprof {
		handler = withPprof(handler)
		log.Warn("profiler served at /debug/pprof/ (CASSATA_PPROF): keep this listener private")
	}
	srv := &http.Server{Addr: cfg.Listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	log.Info("listening", "mode", mode, "addr", ln.Addr().String(), "auth", cfg.Auth, "block_private", cfg.BlockPrivate, "allow_cidrs", cfg.AllowCIDRs)
	if mode == "dev" && !isLoopback(ln.Addr()) {
		// Only an address that names its host gets here (listenAddr).
		log.Warn("DEV MODE LISTENS BEYOND LOOPBACK: anyone who reaches this address can use the API"+
			" (auth "+cfg.Auth+") and make this machine send requests to private addresses (block_private "+cfg.BlockPrivate+");"+
			" the admin UI stays loopback-only without CASSATA_ADMIN_PASSWORD. Use server and worker for anything shared",
			"addr", ln.Addr().String())
		fmt.Fprintf(os.Stderr, "\n*** WARNING: cassata dev listens on %s, beyond this machine, with auth %s. Do not expose it. ***\n", ln.Addr(), cfg.Auth)
	}
	if mode == "dev" {
		fmt.Fprintf(os.Stderr, "\nCassata dev mode: admin UI at http://%s%s/admin/   API at http://%s/v1/events   (embedded Redis: NOT durable)\n\n",
			ln.Addr(), cfg.BasePath, ln.Addr())
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("stopping after an error", "err", runErr)
	}
	shCtx, shCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer shCancel()
	_ = srv.Shutdown(shCtx)
	cancel()
	wg.Wait()
	return runErr
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// rateLimit turns CASSATA_RATE_LIMIT (0: off) into api.Config.RateLimit (negative: off).
func rateLimit(perSecond int) float64 {
	if perSecond <= 0 {
		return -1
	}
	return float64(perSecond)
}

// connectStore opens the Redis store, retrying while Redis is not reachable
// yet, so processes can start before Redis does.
func connectStore(ctx context.Context, rdb redis.UniversalClient, cfg config, log *slog.Logger) (*redisstore.Store, error) {
	delay := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		store, err := redisstore.New(cctx, rdb, redisstore.Config{
			Namespace: cfg.Namespace, Shards: cfg.Shards, Retention: cfg.Retention, WakeHorizon: cfg.PollInterval,
		})
		cancel()
		if err == nil {
			return store, nil
		}
		if !errors.Is(err, scheduler.ErrUnavailable) && !isNetErr(err) {
			return nil, err
		}
		log.Warn("redis not reachable yet; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF")
}

// backlogCollector reports the due backlog at scrape time.
type backlogCollector struct{ store *redisstore.Store }

var (
	pendingDesc   = prometheus.NewDesc("cassata_pending_events", "PENDING events in Redis.", nil, nil)
	outboxDesc    = prometheus.NewDesc("cassata_archive_outbox_entries", "Outbox entries not yet archived.", nil, nil)
	archiveLagDes = prometheus.NewDesc("cassata_archive_lag_seconds", "Age of the oldest outbox entry not yet archived.", nil, nil)
	dueDesc       = prometheus.NewDesc("cassata_due_backlog", "PENDING events whose due time has passed (not yet claimed).", nil, nil)
)

func (b backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- dueDesc
	ch <- outboxDesc
	ch <- archiveLagDes
}

func (b backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	live, err := b.store.Live(ctx, time.Now())
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(live.Pending))
	ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(live.DueSoon))
	if n, oldest, err := b.store.OutboxLag(ctx); err == nil {
		lag := 0.0
		if !oldest.IsZero() {
			lag = max(0, time.Since(oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(archiveLagDes, prometheus.GaugeValue, lag)
	}
}

// withPprof serves Go's profiler under /debug/pprof/ beside h.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
