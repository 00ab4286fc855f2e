// Package api is Cassata's JSON API: the Cassata-compatible routes
// (API.md §4), v1 (§5), the process endpoints (/healthz, /readyz,
// /metrics) and their OpenAPI document (/openapi.json, openapi.go).
// Handlers take a typed request that binds itself and return a response or
// an error (handler.go); errors become HTTP statuses and bodies in one place
// (errors.go).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/schedule"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/topic"
)

// Config configures the API.
type Config struct {
	// Scheduler serves the events. Required.
	Scheduler *scheduler.Scheduler
	// DefaultMaxAttempts is shown as max_attempts for events without their own. Defaults to 5.
	DefaultMaxAttempts int
	// Ready reports whether dependencies are reachable (/readyz). Nil: always
	// ready. /readyz answers only "ok" or "unavailable" per dependency; the
	// errors (which may name hosts, users, paths) go to the log.
	Ready func(ctx context.Context) map[string]error
	// Details adds information to /readyz (e.g. the archive lag). May be nil.
	Details func(ctx context.Context) map[string]any
	// Archive, when set, reports the archive's state in /readyz under
	// "archive" without making the process unready: a server creates,
	// reads and cancels live events with Redis alone, and a worker delivers
	// while finished events wait in the outbox. Nil: no "archive" key.
	Archive func(ctx context.Context) ArchiveState
	// HTTPMetrics, when set, records every request (httpmetrics.go).
	HTTPMetrics *HTTPMetrics
	// Gatherer serves /metrics. Nil: prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Metrics may be nil.
	Metrics *scheduler.Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Apps, when set, serves the application management routes (/v1/apps).
	Apps *tenant.Apps
	// Subscriptions, when set, serves the topic subscription routes
	// (/v1/subscriptions, API.md §7).
	Subscriptions *topic.Subscriptions
	// RateLimit is the requests per second each application may make to
	// this server when auth is on (the admin token is not limited). Zero
	// means DefaultRateLimit; negative turns the limit off.
	RateLimit float64
	// RateBurst is how many requests an application may make at once.
	// Defaults to twice RateLimit.
	RateBurst int
	// Clock times the rate limit. Defaults to scheduler.SystemClock.
	Clock scheduler.Clock
	// Messages, when set, serves the topic message routes (/v1/messages).
	Messages *topic.Messages
	// Schedules, when set, serves the recurring schedule routes
	// (/v1/schedules, API.md §8).
	Schedules *schedule.Schedules
	// Flows, when set, serves the flow-control routes (/v1/flows, and
	// /v1/apps/{app}/pause and /resume with Apps; API.md §9).
	Flows *flow.Flows
	// TracerProvider, when set and not a no-op (internal/tracing), gives
	// every request a span (tracing.go). Defaults to none: no tracing.
	TracerProvider trace.TracerProvider
}

// API holds the handlers.
type API struct {
	cfg     Config
	sched   *scheduler.Scheduler
	log     *slog.Logger
	limiter *rateLimiter
	ready   *readyLog
}

func init() { gin.SetMode(gin.ReleaseMode) }

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.DefaultMaxAttempts = defaults.Positive(c.DefaultMaxAttempts, scheduler.DefaultMaxAttempts)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
// (A nil Scheduler is allowed: a worker's API serves only /healthz,
// /readyz and /metrics.)
func (c Config) Validate() error {
	var errs []error
	if c.DefaultMaxAttempts > scheduler.MaxMaxAttempts {
		errs = append(errs, fmt.Errorf("api: DefaultMaxAttempts must be at most %d, not %d", scheduler.MaxMaxAttempts, c.DefaultMaxAttempts))
	}
	if c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("api: RateBurst must not be negative, not %d", c.RateBurst))
	}
	return errors.Join(errs...)
}

// New returns an API. It panics on a config Validate refuses (a
// programming error: the command line is validated before).
func New(cfg Config) *API {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	a := &API{cfg: cfg, sched: cfg.Scheduler, log: cfg.Logger, ready: &readyLog{log: cfg.Logger, now: cfg.Clock.Now}}
	if cfg.RateLimit > 0 {
		a.limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.Clock.Now)
	}
	return a
}

// Engine returns a gin engine with every route; a non-nil auth puts the JSON
// API (not the process endpoints) behind it, scopes application credentials
// to their own events (auth.go) and rate-limits each application
// (ratelimit.go). Other handlers (the admin UI) may be mounted on the engine.
func (a *API) Engine(auth Authorizer) *gin.Engine {
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.Use(a.cfg.HTTPMetrics.Middleware())
	if tr := a.traceRequests(); tr != nil {
		r.Use(tr)
	}
	r.Use(a.recovery(), a.accessLog())
	r.NoRoute(func(c *gin.Context) { abort(c, errNoRoute) })
	r.NoMethod(func(c *gin.Context) { abort(c, errMethodNotAllowed) })
	a.Process(r)
	a.Docs(r)
	var g gin.IRoutes = r
	if auth != nil {
		g = r.Group("/", a.authenticate(auth), a.rateLimit())
	}
	a.Cassata(g)
	a.V1(g)
	a.AppsAdmin(g)
	a.Messages(g)
	a.SubscriptionRoutes(g)
	a.ScheduleRoutes(g)
	a.FlowRoutes(g)
	return r
}

// Process mounts /healthz, /readyz and /metrics.
func (a *API) Process(r gin.IRoutes) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		if a.cfg.Ready == nil {
			c.JSON(http.StatusOK, gin.H{"status": "ok"})
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		checks := gin.H{}
		status := http.StatusOK
		for name, err := range a.cfg.Ready(ctx) {
			a.ready.record(name, err)
			if err != nil {
				checks[name] = "unavailable"
				status = http.StatusServiceUnavailable
			} else {
				checks[name] = "ok"
			}
		}
		word := "ok"
		if status != http.StatusOK {
			word = "unavailable"
		}
		body := gin.H{"status": word, "checks": checks}
		if a.cfg.Archive != nil {
			body["archive"] = a.cfg.Archive(ctx)
		}
		if a.cfg.Details != nil {
			body["details"] = a.cfg.Details(ctx)
		}
		c.JSON(status, body)
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(a.cfg.Gatherer, promhttp.HandlerOpts{})))
}

// ArchiveState is the archive's part of /readyz. Like the checks it says
// nothing of the error itself (the process's log has it).
type ArchiveState struct {
	// Configured is false without an archive (CASSATA_ARCHIVE_DSN unset).
	Configured bool `json:"configured"`
	// Up: the archive answered its last check.
	Up bool `json:"up"`
	// Status is "ok", "unavailable" or "not_configured".
	Status string `json:"status"`
	// Since is when the archive was last seen to go up or down (RFC 3339,
	// UTC); empty before the first change of this process.
	Since string `json:"since,omitempty"`
}

// ReadyLogEvery is how often /readyz logs a dependency that stays
// unavailable with the same error: a probe every second must not flood the
// log. A new error, and the recovery, are logged at once.
const ReadyLogEvery = 30 * time.Second

// readyLog logs why dependencies are not ready, rate-limited per dependency.
type readyLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	down map[string]*readyDown
}

// readyDown is an unavailable dependency: its last error, when it was last
// logged and how many probes saw it since.
type readyDown struct {
	err        string
	logged     time.Time
	suppressed int
}

func (l *readyLog) record(name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.down[name]
	if err == nil {
		if d != nil {
			delete(l.down, name)
			l.log.Info("readyz: dependency available again", "dependency", name)
		}
		return
	}
	now := l.now()
	msg := err.Error()
	if d != nil && d.err == msg && now.Sub(d.logged) < ReadyLogEvery {
		d.suppressed++
		return
	}
	if l.down == nil {
		l.down = map[string]*readyDown{}
	}
	repeats := 0
	if d != nil {
		repeats = d.suppressed
	}
	l.log.Warn("readyz: dependency unavailable", "dependency", name, "err", msg, "unlogged_probes", repeats)
	l.down[name] = &readyDown{err: msg, logged: now}
}

// recovery turns a panic into a JSON 500 without internals.
func (a *API) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				a.log.Error("panic in handler", "method", c.Request.Method, "path", c.FullPath(), "panic", r)
				abort(c, errPanic)
			}
		}()
		c.Next()
	}
}

func (a *API) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if c.Writer.Status() >= 500 {
			a.log.Warn("request", "method", c.Request.Method, "route", c.FullPath(), "status", c.Writer.Status(), "duration", time.Since(start))
		} else {
			a.log.Debug("request", "method", c.Request.Method, "route", c.FullPath(), "status", c.Writer.Status(), "duration", time.Since(start))
		}
	}
}

// bodyLimit caps the request body of the handlers after it; reading past
// the cap fails with *http.MaxBytesError (413).
func bodyLimit(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// maxRequestBytes bounds one create request: the body limit with room for
// JSON escaping (up to 6 bytes per byte) is too generous, twice plus slack is enough in practice.
func (a *API) maxRequestBytes() int64 {
	return int64(a.sched.Limits().MaxBodyBytes)*2 + 256<<10
}
