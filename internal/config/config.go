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
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/api"
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
	DefaultCreateTables      = true
	DefaultRateLimit         = api.DefaultRateLimit
	DefaultJWTMaxLifetime    = tenant.DefaultJWTMaxLifetime
)

// Config is every setting of the cassata command. Precedence: flags >
// environment > YAML file > defaults (API.md §1). Defaults(mode) is the
// configuration before any of them applies; Load applies them and
// Validate.
type Config struct {
	// RedisURL is a redis:// URL, or with RedisCluster comma-separated
	// seeds. Required but in dev and migrate (dev: an embedded Redis).
	RedisURL string `yaml:"redis_url"`
	// RedisCluster connects to a Redis Cluster. Defaults to false.
	RedisCluster bool `yaml:"redis_cluster"`
	// AllowEviction starts even though Redis may evict keys. Defaults to false.
	AllowEviction bool `yaml:"redis_allow_eviction"`
	// ArchiveDSN is the archive database. Required for worker and migrate;
	// dev defaults to cassata-dev.db (SQLite) in the working directory.
	ArchiveDSN string `yaml:"archive_dsn"`
	// Listen is the HTTP address. Defaults to DefaultListen (:8085),
	// DefaultDevListen in dev, DefaultWorkerListen for worker.
	Listen string `yaml:"listen"`
	// BasePath prefixes the admin UI behind a reverse proxy. Defaults to "".
	BasePath string `yaml:"base_path"`
	// Auth is on or off: whether the JSON API requires keys. Defaults to
	// DefaultAuth (on); dev: off.
	Auth string `yaml:"auth"`
	// AdminToken is the admin API's bearer token. Defaults to "" (none).
	AdminToken string `yaml:"admin_token"`
	// AdminPassword opens the admin UI beyond loopback. Defaults to "".
	AdminPassword string `yaml:"admin_password"`
	// RateLimit is API requests per second per application and server; 0
	// turns it off. Defaults to DefaultRateLimit.
	RateLimit int `yaml:"rate_limit"`
	// Namespace prefixes every Redis key. Defaults to DefaultNamespace.
	Namespace string `yaml:"namespace"`
	// Shards of a new namespace. Defaults to 0: the recorded count, or
	// redisstore.DefaultShards (16).
	Shards int `yaml:"shards"`
	// WorkerConcurrency is concurrent deliveries per worker. Defaults to
	// DefaultWorkerConcurrency (100).
	WorkerConcurrency int `yaml:"worker_concurrency"`
	// BlockPrivate is on or off: refuse private destinations. Defaults to
	// DefaultBlockPrivate (on); dev: off.
	BlockPrivate string `yaml:"block_private"`
	// AllowCIDRs are comma-separated CIDRs delivered to even though
	// BlockPrivate blocks them. Defaults to "".
	AllowCIDRs string `yaml:"allow_cidrs"`
	// MaxBodyBytes is the largest event body. Defaults to 0:
	// scheduler.DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// Retention is how long finished events stay in Redis. Defaults to
	// DefaultRetention (24h).
	Retention time.Duration `yaml:"retention"`
	// PollInterval is the longest sleep between looks for due events.
	// Defaults to 0: the worker's (1s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Visibility is a claimed event's lease. Defaults to 0: the worker's (60s).
	Visibility time.Duration `yaml:"visibility_timeout"`
	// HeartbeatInterval is how often a worker reports itself alive.
	// Defaults to 0: scheduler.DefaultHeartbeatInterval (5s).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// DeadAfter is the silence after which a worker's events go to others.
	// Defaults to 0: 3 heartbeat intervals.
	DeadAfter time.Duration `yaml:"dead_after"`
	// Batch is events claimed per round trip. Defaults to 0: the worker's (100).
	Batch int `yaml:"claim_batch"`
	// MaxAttempts is the default attempts per event. Defaults to 0: the
	// scheduler policy's (5).
	MaxAttempts int `yaml:"max_attempts"`
	// ShutdownTimeout is how long in-flight deliveries may finish on
	// SIGTERM. Defaults to 0: the worker's (30s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error. Defaults to DefaultLogLevel.
	LogLevel string `yaml:"log_level"`
	// Pprof serves Go's profiler at /debug/pprof/. Defaults to false.
	Pprof bool `yaml:"pprof"`
	// LogFailedRequests logs every failed delivery attempt. Defaults to false.
	LogFailedRequests bool `yaml:"log_failed_requests"`
	// CreateTables creates or upgrades the archive tables at start.
	// Defaults to DefaultCreateTables (true).
	CreateTables bool `yaml:"create_tables"`
	// JWTMaxLifetime is the longest validity of a bearer JWT. Defaults to
	// DefaultJWTMaxLifetime (24h).
	JWTMaxLifetime time.Duration `yaml:"jwt_max_lifetime"`

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
// apps, import) before the YAML file, environment and flags apply.
func Defaults(mode string) Config {
	c := Config{
		Listen: DefaultListen, Auth: DefaultAuth, Namespace: DefaultNamespace, WorkerConcurrency: DefaultWorkerConcurrency,
		RateLimit: DefaultRateLimit, BlockPrivate: DefaultBlockPrivate, Retention: DefaultRetention, LogLevel: DefaultLogLevel,
		CreateTables: DefaultCreateTables, JWTMaxLifetime: DefaultJWTMaxLifetime,
	}
	if mode == "dev" {
		c.Listen, c.Auth, c.BlockPrivate = DefaultDevListen, "off", "off"
	}
	if mode == "worker" {
		c.Listen = DefaultWorkerListen
	}
	return c
}

// setting binds one setting to its environment variable and flag.
type setting struct {
	env, flag, usage string
	set              func(string) error
}

// boolSettings are the settings whose flag is a switch: --flag alone is
// --flag=true.
var boolSettings = map[string]bool{"CASSATA_REDIS_CLUSTER": true, "CASSATA_REDIS_ALLOW_EVICTION": true,
	"CASSATA_PPROF": true, "CASSATA_LOG_FAILED_REQUESTS": true}

func (c *Config) settings() []setting {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	num := func(p *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a number: %q", v)
			}
			*p = n
			return nil
		}
	}
	dur := func(p *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration: %q", v)
			}
			*p = d
			return nil
		}
	}
	boolean := func(p *bool) func(string) error {
		return func(v string) error {
			b, ok := parseBool(v)
			if !ok {
				return fmt.Errorf("not a boolean (true or false): %q", v)
			}
			*p = b
			return nil
		}
	}
	return []setting{
		{"CASSATA_REDIS_URL", "redis-url", "redis:// URL, or comma-separated host:port seeds with --redis-cluster", str(&c.RedisURL)},
		{"CASSATA_REDIS_CLUSTER", "redis-cluster", "connect to a Redis Cluster (true/false)", boolean(&c.RedisCluster)},
		{"CASSATA_REDIS_ALLOW_EVICTION", "redis-allow-eviction", "start even though Redis's maxmemory-policy is not noeviction (events may be evicted and lost)", boolean(&c.AllowEviction)},
		{"CASSATA_ARCHIVE_DSN", "archive-dsn", "archive database DSN", str(&c.ArchiveDSN)},
		{"CASSATA_LISTEN", "listen", "HTTP listen address", str(&c.Listen)},
		{"CASSATA_BASE_PATH", "base-path", "path prefix of the admin UI behind a reverse proxy, e.g. /cassata", str(&c.BasePath)},
		{"CASSATA_AUTH", "auth", "on|off: whether the JSON API requires keys", str(&c.Auth)},
		{"CASSATA_ADMIN_TOKEN", "", "", str(&c.AdminToken)},
		{"CASSATA_ADMIN_PASSWORD", "", "", str(&c.AdminPassword)},
		{"CASSATA_RATE_LIMIT", "rate-limit", "API requests per second per application, per server, with CASSATA_AUTH=on (default 1000; 0: no limit)", num(&c.RateLimit)},
		{"CASSATA_NAMESPACE", "namespace", "prefix of every Redis key", str(&c.Namespace)},
		{"CASSATA_SHARDS", "shards", "shard count of a new namespace (default 16)", num(&c.Shards)},
		{"CASSATA_WORKER_CONCURRENCY", "concurrency", "concurrent deliveries per worker", num(&c.WorkerConcurrency)},
		{"CASSATA_BLOCK_PRIVATE", "block-private", "on|off: refuse private destinations", str(&c.BlockPrivate)},
		{"CASSATA_ALLOW_CIDRS", "allow-cidrs", "comma-separated CIDRs delivered to even though CASSATA_BLOCK_PRIVATE blocks them, e.g. 10.1.0.0/16,fd00::/8", str(&c.AllowCIDRs)},
		{"CASSATA_MAX_BODY_BYTES", "max-body-bytes", "largest event body in bytes (default 1048576)", num(&c.MaxBodyBytes)},
		{"CASSATA_RETENTION", "retention", "how long finished events stay in Redis", dur(&c.Retention)},
		{"CASSATA_POLL_INTERVAL", "poll-interval", "longest sleep between looks for due events (default 1s)", dur(&c.PollInterval)},
		{"CASSATA_VISIBILITY_TIMEOUT", "visibility-timeout", "lease of a claimed event (default 60s)", dur(&c.Visibility)},
		{"CASSATA_HEARTBEAT_INTERVAL", "heartbeat-interval", "how often a worker reports itself alive (default 5s)", dur(&c.HeartbeatInterval)},
		{"CASSATA_DEAD_AFTER", "dead-after", "silence after which a worker's events are given back to others (default 3 heartbeat intervals)", dur(&c.DeadAfter)},
		{"CASSATA_CLAIM_BATCH", "claim-batch", "events claimed per round trip (default 100)", num(&c.Batch)},
		{"CASSATA_MAX_ATTEMPTS", "max-attempts", "default attempts per event (default 5)", num(&c.MaxAttempts)},
		{"CASSATA_SHUTDOWN_TIMEOUT", "shutdown-timeout", "how long in-flight deliveries may finish on SIGTERM (default 30s)", dur(&c.ShutdownTimeout)},
		{"CASSATA_LOG_LEVEL", "log-level", "debug|info|warn|error", str(&c.LogLevel)},
		{"CASSATA_PPROF", "pprof", "serve Go's profiler at /debug/pprof/ on the HTTP listener (true/false; for diagnosis only, never on an exposed listener)", boolean(&c.Pprof)},
		{"CASSATA_LOG_FAILED_REQUESTS", "log-failed-requests", "log every failed delivery attempt as one line (YAML logFailedRequests)", boolean(&c.LogFailedRequests)},
		{"CASSATA_JWT_MAX_LIFETIME", "jwt-max-lifetime", "longest validity of a bearer JWT, exp - iat (default 24h)", dur(&c.JWTMaxLifetime)},
	}
}

// flagValue holds a flag's text until load applies it through its setting.
type flagValue struct {
	text   string
	isBool bool
}

func (f *flagValue) String() string     { return f.text }
func (f *flagValue) Set(v string) error { f.text = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// Load builds the configuration for a mode from args, the environment and
// the YAML file.
func Load(mode string, args []string) (Config, []string, error) {
	c := Defaults(mode)
	fs := flag.NewFlagSet("cassata "+mode, flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv("CASSATA_CONFIG"), "YAML configuration file (CASSATA_CONFIG)")
	flagVals := map[string]*flagValue{}
	settings := c.settings()
	for _, s := range settings {
		if s.flag != "" {
			flagVals[s.flag] = &flagValue{isBool: boolSettings[s.env]}
			fs.Var(flagVals[s.flag], s.flag, s.usage+" ("+s.env+")")
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	switch mode {
	case "dev", "server", "worker", "migrate":
		// A stray word (--redis-cluster true) must not pass unnoticed.
		if fs.NArg() > 0 {
			return c, nil, fmt.Errorf("cassata %s: unexpected argument %q (flags are --name=value)", mode, fs.Arg(0))
		}
	}
	if *configPath != "" {
		if _, err := ReadFile(&c, *configPath, mode); err != nil {
			return c, nil, err
		}
	}
	// Re-bind: ReadFile may have replaced fields, settings point into c.
	settings = c.settings()
	for _, s := range settings {
		if v, ok := os.LookupEnv(s.env); ok && v != "" {
			if err := s.set(v); err != nil {
				return c, nil, fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings {
			if s.flag == f.Name && ferr == nil {
				if err := s.set(flagVals[f.Name].text); err != nil {
					ferr = fmt.Errorf("--%s: %w", f.Name, err)
				}
			}
		}
	})
	if ferr != nil {
		return c, nil, ferr
	}
	return c, fs.Args(), c.Validate(mode)
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
	allow, err := delivery.ParseAllowList(c.AllowCIDRs)
	if err != nil {
		return fmt.Errorf("CASSATA_ALLOW_CIDRS: %w", err)
	}
	c.allow = allow
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxBodyBytesLimit {
		return fmt.Errorf("CASSATA_MAX_BODY_BYTES must be between 1 and %d (0: the default, %d)", maxBodyBytesLimit, scheduler.DefaultMaxBodyBytes)
	}
	if mode != "dev" && mode != "migrate" && c.RedisURL == "" {
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
	return redisstore.ConnConfig{URL: c.RedisURL, Cluster: c.RedisCluster, Store: redisstore.Config{
		Namespace: c.Namespace, Shards: c.Shards, Retention: c.Retention, WakeHorizon: c.PollInterval,
	}}
}

// NewLogger is the process's logger: JSON lines on stderr at LogLevel
// (info when it is not a level).
func (c *Config) NewLogger() *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// SwitchFlags are the flags of settings that take no value (--pprof alone
// is --pprof=true), for commands that sort their own flags from these.
func SwitchFlags() map[string]bool {
	var c Config
	m := map[string]bool{}
	for _, s := range c.settings() {
		if s.flag != "" && boolSettings[s.env] {
			m[s.flag] = true
		}
	}
	return m
}
