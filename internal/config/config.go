package config

// Why not koanf (evaluated for issue 16): the precedence itself (flags >
// environment > YAML file > defaults, Load) is a few lines here, applying
// each source in turn through one table of settings. What takes the code is
// the YAML file: the original Cassata's keys as aliases at the top level or
// nested, Dropwizard sections ignored with one warning, a JDBC URL turned into
// a DSN, `port` that must not widen dev, and an error naming any other
// unknown key (configfile.go). koanf would flatten the file into a map and
// leave all of that to be written again on top of it, with a second layer of
// key names between the file and the Config struct, while flags and
// environment variables already share one list of settings (settings).

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/logging"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

// Defaults of the settings that have one here. Settings whose zero value
// means "the component's default" (shards, poll interval, ...) say so on
// their field; the component owns that default.
const (
	DefaultListen            = ":8085"
	DefaultDevListen         = "127.0.0.1:8085" // dev: loopback only
	DefaultWorkerListen      = ":8086"
	DefaultAuth              = "on" // dev: "off"
	DefaultBlockPrivate      = "on" // dev: "off"
	DefaultNamespace         = "cassata"
	DefaultWorkerConcurrency = 100
	DefaultRetention         = 24 * time.Hour
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "json" // dev: "text"
	DefaultCreateTables      = true
	DefaultRateLimit         = api.DefaultRateLimit
	DefaultJWTMaxLifetime    = tenant.DefaultJWTMaxLifetime
)

// Config is every setting of the cassata command. Precedence: flags >
// environment > YAML file > defaults (API.md §1). Defaults(mode) is the
// configuration before any of them applies; Flags.Load applies them and
// Validate. Settings (settings.go) gives each field its flag, environment
// variable and YAML key; a test fails for a field without one.
type Config struct {
	// RedisURL is a redis:// URL, or with RedisCluster comma-separated
	// seeds. Required but in dev and migrate (dev: an embedded Redis).
	RedisURL string
	// RedisCluster connects to a Redis Cluster. Defaults to false.
	RedisCluster bool
	// AllowEviction starts even though Redis may evict keys. Defaults to false.
	AllowEviction bool
	// ArchiveDSN is the archive database. Required for worker and migrate;
	// dev defaults to cassata-dev.db (SQLite) in the working directory.
	ArchiveDSN string
	// Listen is the HTTP address. Defaults to DefaultListen (:8085),
	// DefaultDevListen in dev, DefaultWorkerListen for worker.
	Listen string
	// BasePath prefixes the admin UI behind a reverse proxy. Defaults to "".
	BasePath string
	// Auth is on or off: whether the JSON API requires keys. Defaults to
	// DefaultAuth (on); dev: off.
	Auth string
	// AdminToken is the admin API's bearer token. Defaults to "" (none).
	AdminToken string
	// AdminPassword opens the admin UI beyond loopback. Defaults to "".
	AdminPassword string
	// RateLimit is API requests per second per application and server; 0
	// turns it off. Defaults to DefaultRateLimit.
	RateLimit int
	// Namespace prefixes every Redis key. Defaults to DefaultNamespace.
	Namespace string
	// Shards of a new namespace. Defaults to 0: the recorded count, or
	// redisstore.DefaultShards (16).
	Shards int
	// WorkerConcurrency is concurrent deliveries per worker. Defaults to
	// DefaultWorkerConcurrency (100).
	WorkerConcurrency int
	// BlockPrivate is on or off: refuse private destinations. Defaults to
	// DefaultBlockPrivate (on); dev: off.
	BlockPrivate string
	// AllowCIDRs are comma-separated CIDRs delivered to even though
	// BlockPrivate blocks them. Defaults to "".
	AllowCIDRs string
	// MaxBodyBytes is the largest event body. Defaults to 0:
	// scheduler.DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int
	// Retention is how long finished events stay in Redis. Defaults to
	// DefaultRetention (24h).
	Retention time.Duration
	// PollInterval is the longest sleep between looks for due events.
	// Defaults to 0: the worker's (1s).
	PollInterval time.Duration
	// Visibility is a claimed event's lease. Defaults to 0: the worker's (60s).
	Visibility time.Duration
	// HeartbeatInterval is how often a worker reports itself alive.
	// Defaults to 0: scheduler.DefaultHeartbeatInterval (5s).
	HeartbeatInterval time.Duration
	// DeadAfter is the silence after which a worker's events go to others.
	// Defaults to 0: 3 heartbeat intervals.
	DeadAfter time.Duration
	// Batch is events claimed per round trip. Defaults to 0: the worker's (100).
	Batch int
	// MaxAttempts is the default attempts per event. Defaults to 0: the
	// scheduler policy's (5).
	MaxAttempts int
	// ShutdownTimeout is how long in-flight deliveries may finish on
	// SIGTERM. Defaults to 0: the worker's (30s).
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error. Defaults to DefaultLogLevel.
	LogLevel string
	// LogFormat is json or text. Defaults to DefaultLogFormat (json); dev:
	// text, for a person reading a terminal.
	LogFormat string
	// Pprof serves Go's profiler at /debug/pprof/. Defaults to false.
	Pprof bool
	// LogFailedRequests logs every failed delivery attempt. Defaults to false.
	LogFailedRequests bool
	// CreateTables creates or upgrades the archive tables at start.
	// Defaults to DefaultCreateTables (true).
	CreateTables bool
	// JWTMaxLifetime is the longest validity of a bearer JWT. Defaults to
	// DefaultJWTMaxLifetime (24h).
	JWTMaxLifetime time.Duration

	// allow is AllowCIDRs parsed by Validate.
	allow []netip.Prefix
	// warnings are what loading found worth a warning (ignored sections of
	// an original config file, ...), logged by LogWarnings.
	warnings []Warning
}

// LogWarnings logs what loading the configuration found worth a warning.
func (c *Config) LogWarnings(log *slog.Logger) {
	for _, w := range c.warnings {
		log.Warn(w.msg, w.args...)
	}
}

// Defaults is the configuration of mode (dev, server, worker, migrate,
// apps, import, healthcheck) before the YAML file, environment and flags apply.
func Defaults(mode string) Config {
	c := Config{
		Listen: DefaultListen, Auth: DefaultAuth, Namespace: DefaultNamespace, WorkerConcurrency: DefaultWorkerConcurrency,
		RateLimit: DefaultRateLimit, BlockPrivate: DefaultBlockPrivate, Retention: DefaultRetention, LogLevel: DefaultLogLevel,
		LogFormat: DefaultLogFormat, CreateTables: DefaultCreateTables, JWTMaxLifetime: DefaultJWTMaxLifetime,
	}
	if mode == "dev" {
		c.Listen, c.Auth, c.BlockPrivate, c.LogFormat = DefaultDevListen, "off", "off", "text"
	}
	if mode == "worker" {
		c.Listen = DefaultWorkerListen
	}
	return c
}

// maxBodyBytesLimit bounds CASSATA_MAX_BODY_BYTES: every pending body lives
// in Redis memory, and one create request holds it (JSON-escaped) in the
// server's.
const maxBodyBytesLimit = 64 << 20

// Guard is the SSRF guard the settings ask for: nil with
// CASSATA_BLOCK_PRIVATE=off.
func (c *Config) Guard() *delivery.AddressGuard {
	if c.BlockPrivate != "on" {
		return nil
	}
	return &delivery.AddressGuard{Allow: c.allow}
}

func onOff(name, v string) error {
	switch strings.ToLower(v) {
	case "on", "off":
		return nil
	}
	return fmt.Errorf("%s must be on or off, not %q", name, v)
}

func (c *Config) Validate(mode string) error {
	c.Auth = strings.ToLower(c.Auth)
	c.BlockPrivate = strings.ToLower(c.BlockPrivate)
	if err := onOff("CASSATA_AUTH", c.Auth); err != nil {
		return err
	}
	if err := onOff("CASSATA_BLOCK_PRIVATE", c.BlockPrivate); err != nil {
		return err
	}
	c.LogFormat = strings.ToLower(c.LogFormat)
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("CASSATA_LOG_FORMAT must be json or text, not %q", c.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("CASSATA_LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	allow, err := delivery.ParseAllowList(c.AllowCIDRs)
	if err != nil {
		return fmt.Errorf("CASSATA_ALLOW_CIDRS: %w", err)
	}
	c.allow = allow
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxBodyBytesLimit {
		return fmt.Errorf("CASSATA_MAX_BODY_BYTES must be between 1 and %d (0: the default, %d)", maxBodyBytesLimit, scheduler.DefaultMaxBodyBytes)
	}
	if mode != "dev" && mode != "migrate" && mode != ModeHealthcheck && c.RedisURL == "" {
		return fmt.Errorf("CASSATA_REDIS_URL (or --redis-url) is required for %s", mode)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("CASSATA_RATE_LIMIT must not be negative (0 turns the limit off)")
	}
	if c.WorkerConcurrency <= 0 {
		return fmt.Errorf("CASSATA_WORKER_CONCURRENCY must be positive")
	}
	if c.Retention <= 0 {
		return fmt.Errorf("CASSATA_RETENTION must be positive")
	}
	for _, d := range []struct {
		env string
		v   time.Duration
	}{
		{"CASSATA_POLL_INTERVAL", c.PollInterval}, {"CASSATA_VISIBILITY_TIMEOUT", c.Visibility},
		{"CASSATA_SHUTDOWN_TIMEOUT", c.ShutdownTimeout}, {"CASSATA_JWT_MAX_LIFETIME", c.JWTMaxLifetime},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative", d.env)
		}
	}
	if c.Batch < 0 || c.MaxAttempts < 0 || c.Shards < 0 {
		return fmt.Errorf("CASSATA_CLAIM_BATCH, CASSATA_MAX_ATTEMPTS and CASSATA_SHARDS must not be negative")
	}
	for _, p := range []struct{ env, v string }{
		{"CASSATA_ADMIN_PASSWORD", c.AdminPassword}, {"CASSATA_ADMIN_TOKEN", c.AdminToken},
	} {
		// deploy/cassata.env.example's placeholders: a copied example
		// must not run with a password anybody can read there.
		if strings.HasPrefix(p.v, "<") && strings.HasSuffix(p.v, ">") {
			return fmt.Errorf("%s is still the example's placeholder %s: set a long random secret", p.env, p.v)
		}
	}
	listen, err := listenAddr(mode, c.Listen)
	if err != nil {
		return err
	}
	c.Listen = listen
	if c.HeartbeatInterval < 0 || c.DeadAfter < 0 {
		return fmt.Errorf("CASSATA_HEARTBEAT_INTERVAL and CASSATA_DEAD_AFTER must not be negative")
	}
	beat := cmp.Or(c.HeartbeatInterval, scheduler.DefaultHeartbeatInterval)
	if c.DeadAfter > 0 && c.DeadAfter < 2*beat {
		return fmt.Errorf("CASSATA_DEAD_AFTER (%s) must be at least twice the heartbeat interval (%s), "+
			"or live workers would be taken for dead", c.DeadAfter, beat)
	}
	return nil
}

// listenAddr checks an HTTP listen address (CASSATA_LISTEN, --listen, YAML
// listen or port) and completes a bare port: "8085" is ":8085". In dev a
// port without a host means loopback (127.0.0.1:8085): dev runs without
// auth and delivers to private addresses, so only an address that names its
// host takes it beyond this machine (server.Run warns loudly when it does).
func listenAddr(mode, addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if _, err := strconv.Atoi(addr); err == nil {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("CASSATA_LISTEN %q: want host:port or :port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("CASSATA_LISTEN %q: %q is not a port number", addr, port)
	}
	if mode == "dev" && host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// RedisConn is how to reach Redis and open the namespace, as the settings
// say.
func (c *Config) RedisConn() redisstore.ConnConfig {
	// The wake horizon is never shorter than DefaultWakeHorizon, how often
	// a worker asks every shard at most (scheduler/worker's
	// fullRoundEvery): an event created due beyond the horizon publishes no
	// wake-up, and a worker finds it in time only if the horizon of the
	// process that created it covers the worker's full rounds, whatever
	// poll interval each process has.
	return redisstore.ConnConfig{URL: c.RedisURL, Cluster: c.RedisCluster, Store: redisstore.Config{
		Namespace: c.Namespace, Shards: c.Shards, Retention: c.Retention,
		WakeHorizon: max(c.PollInterval, redisstore.DefaultWakeHorizon),
	}}
}

// NewLogger is the process's logger: LogFormat (JSON lines, or text) on
// stderr at LogLevel (info when it is not a level), durations as strings.
func (c *Config) NewLogger() *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		l = slog.LevelInfo
	}
	return logging.New(os.Stderr, c.LogFormat, l)
}

// SetupLogging makes NewLogger's logger the process's: slog's default and
// go-redis's (whose plain-text lines would break the JSON log).
func (c *Config) SetupLogging() *slog.Logger {
	log := c.NewLogger()
	slog.SetDefault(log)
	logging.RouteRedis(log)
	return log
}
