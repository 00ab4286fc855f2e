package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/redisstore"
)

// The commands (modes) the settings apply to. Every setting is read from
// the environment and the YAML file by every command (a shared file or
// environment configures them all); the flags are per command.
const (
	ModeDev         = "dev"
	ModeServer      = "server"
	ModeWorker      = "worker"
	ModeMigrate     = "migrate"
	ModeApps        = "apps"
	ModeImport      = "import"
	ModeHealthcheck = "healthcheck"
)

// Commands are the commands that read settings, in the order of the
// configuration reference.
var Commands = []string{ModeDev, ModeServer, ModeWorker, ModeMigrate, ModeApps, ModeImport, ModeHealthcheck}

// ConfigEnv names the YAML file, like --config.
const ConfigEnv = "CASSATA_CONFIG"

// Setting is one configuration setting: its flag, environment variable
// and YAML key, what it means, its default, and the commands whose flags
// include it. Settings is the one source of the flags, the environment
// variables, the YAML keys, `--help` and the README's configuration
// reference (go run ./internal/config/gen).
type Setting struct {
	// Flag is the flag's name without "--"; "" for a secret, which a
	// process listing would show (environment or YAML only).
	Flag string
	Env  string
	YAML string
	// Aliases are the original Cassata's YAML names that set it too (see
	// configfile.go for how their values translate).
	Aliases []string
	Usage   string
	// Unset says what the zero value means when it is not a plain value:
	// "required", or the component's own default ("16").
	Unset string
	// Commands are the commands with the flag (and whose --help lists the
	// variable).
	Commands []string

	field func(*Config) any // *string, *int, *bool or *time.Duration
}

var (
	cmdRedis   = []string{ModeDev, ModeServer, ModeWorker, ModeMigrate, ModeApps, ModeImport}
	cmdRun     = []string{ModeDev, ModeServer, ModeWorker}
	cmdRunImp  = []string{ModeDev, ModeServer, ModeWorker, ModeImport}
	cmdAPI     = []string{ModeDev, ModeServer}
	cmdDeliver = []string{ModeDev, ModeWorker}
	cmdLog     = []string{ModeDev, ModeServer, ModeWorker, ModeMigrate, ModeImport}
)

// Settings are every setting of the cassata command.
var Settings = []Setting{
	{Flag: "redis-url", Env: "CASSATA_REDIS_URL", YAML: "redis_url", Commands: cmdRedis,
		Usage: "redis:// or rediss:// URL; with --redis-cluster, comma-separated host:port seeds",
		Unset: "required; dev: an embedded, non-durable Redis; migrate: none (no lock)",
		field: func(c *Config) any { return &c.RedisURL }},
	{Flag: "redis-cluster", Env: "CASSATA_REDIS_CLUSTER", YAML: "redis_cluster", Commands: cmdRedis,
		Usage: "connect to a Redis Cluster", field: func(c *Config) any { return &c.RedisCluster }},
	{Flag: "redis-allow-eviction", Env: "CASSATA_REDIS_ALLOW_EVICTION", YAML: "redis_allow_eviction", Commands: cmdRunImp,
		Usage: "start even though Redis's maxmemory-policy is not noeviction (events may be evicted and lost)",
		field: func(c *Config) any { return &c.AllowEviction }},
	{Flag: "namespace", Env: "CASSATA_NAMESPACE", YAML: "namespace", Commands: cmdRedis,
		Usage: "prefix of every Redis key, so several deployments can share one Redis",
		field: func(c *Config) any { return &c.Namespace }},
	{Flag: "shards", Env: "CASSATA_SHARDS", YAML: "shards", Commands: cmdRedis,
		Usage: "shard count of a new namespace (fixed once the namespace exists)",
		Unset: strconv.Itoa(redisstore.DefaultShards) + ", or the namespace's recorded count",
		field: func(c *Config) any { return &c.Shards }},
	{Flag: "archive-dsn", Env: "CASSATA_ARCHIVE_DSN", YAML: "archive_dsn", Aliases: []string{"database.url", "database.user", "database.password"},
		Commands: []string{ModeDev, ModeServer, ModeWorker, ModeMigrate, ModeImport},
		Usage:    "archive database: mysql://user:pass@host:3306/db (MySQL or MariaDB) or sqlite:///path/file.db",
		Unset:    "required for worker, migrate and import; dev: cassata-dev.db in the working directory; server: none (no archive search)",
		field:    func(c *Config) any { return &c.ArchiveDSN }},
	{Flag: "create-tables", Env: "CASSATA_CREATE_TABLES", YAML: "create_tables", Aliases: []string{"createTablesIfNotExists"},
		Commands: []string{ModeDev, ModeWorker, ModeImport},
		Usage:    "create or upgrade the archive tables at start-up",
		field:    func(c *Config) any { return &c.CreateTables }},
	{Flag: "listen", Env: "CASSATA_LISTEN", YAML: "listen", Aliases: []string{"port", "service.port", "server.applicationConnectors[0].port"},
		Commands: []string{ModeDev, ModeServer, ModeWorker, ModeHealthcheck},
		Usage:    "HTTP listen address; a bare port (8085, :8085) is every interface, in dev loopback",
		field:    func(c *Config) any { return &c.Listen }},
	{Flag: "base-path", Env: "CASSATA_BASE_PATH", YAML: "base_path", Commands: cmdAPI,
		Usage: "path prefix of the admin UI behind a reverse proxy, e.g. /cassata",
		field: func(c *Config) any { return &c.BasePath }},
	{Flag: "auth", Env: "CASSATA_AUTH", YAML: "auth", Commands: cmdAPI,
		Usage: "on|off: whether the JSON API requires API keys", field: func(c *Config) any { return &c.Auth }},
	{Env: "CASSATA_ADMIN_TOKEN", YAML: "admin_token", Commands: cmdAPI,
		Usage: "bearer token that may act on every application through the JSON API", Unset: "none",
		field: func(c *Config) any { return &c.AdminToken }},
	{Env: "CASSATA_ADMIN_PASSWORD", YAML: "admin_password", Commands: cmdAPI,
		Usage: "password of the admin UI (user admin)", Unset: "none: outside dev the UI refuses to serve until it is set",
		field: func(c *Config) any { return &c.AdminPassword }},
	{Flag: "rate-limit", Env: "CASSATA_RATE_LIMIT", YAML: "rate_limit", Commands: cmdAPI,
		Usage: "API requests per second per application and server, with auth on (0: no limit)",
		field: func(c *Config) any { return &c.RateLimit }},
	{Flag: "jwt-max-lifetime", Env: "CASSATA_JWT_MAX_LIFETIME", YAML: "jwt_max_lifetime", Commands: cmdAPI,
		Usage: "longest validity of a bearer JWT (exp - iat)", field: func(c *Config) any { return &c.JWTMaxLifetime }},
	{Flag: "block-private", Env: "CASSATA_BLOCK_PRIVATE", YAML: "block_private", Commands: cmdRunImp,
		Usage: "on|off: refuse to deliver to loopback, private, link-local, CGNAT and metadata addresses",
		field: func(c *Config) any { return &c.BlockPrivate }},
	{Flag: "allow-cidrs", Env: "CASSATA_ALLOW_CIDRS", YAML: "allow_cidrs", Commands: cmdRunImp,
		Usage: "comma-separated CIDRs delivered to even though block-private blocks them, e.g. 10.1.0.0/16,fd00::/8",
		Unset: "none", field: func(c *Config) any { return &c.AllowCIDRs }},
	{Flag: "max-body-bytes", Env: "CASSATA_MAX_BODY_BYTES", YAML: "max_body_bytes", Commands: cmdRunImp,
		Usage: "largest event body in bytes", Unset: strconv.Itoa(scheduler.DefaultMaxBodyBytes),
		field: func(c *Config) any { return &c.MaxBodyBytes }},
	{Flag: "retention", Env: "CASSATA_RETENTION", YAML: "retention", Commands: cmdRunImp,
		Usage: "how long a finished event stays in Redis (status, dedup) before only the archive has it",
		field: func(c *Config) any { return &c.Retention }},
	{Flag: "max-attempts", Env: "CASSATA_MAX_ATTEMPTS", YAML: "max_attempts", Aliases: []string{"httpRetryCount"}, Commands: cmdRun,
		Usage: "default attempts per event (httpRetryCount + 1)", Unset: "5",
		field: func(c *Config) any { return &c.MaxAttempts }},
	{Flag: "poll-interval", Env: "CASSATA_POLL_INTERVAL", YAML: "poll_interval",
		Aliases:  []string{"workerThreadPollingInterval", "workerThreadPollingIntervalInMillis"},
		Commands: cmdRun, Usage: "longest sleep of a worker between looks for due events (it wakes at once for sooner ones)",
		Unset: "1s", field: func(c *Config) any { return &c.PollInterval }},
	{Flag: "concurrency", Env: "CASSATA_WORKER_CONCURRENCY", YAML: "worker_concurrency", Aliases: []string{"numWorkerThreads"},
		Commands: cmdDeliver, Usage: "concurrent deliveries per worker process",
		field: func(c *Config) any { return &c.WorkerConcurrency }},
	{Flag: "claim-batch", Env: "CASSATA_CLAIM_BATCH", YAML: "claim_batch", Aliases: []string{"numEventsProcessedPerTransaction"},
		Commands: cmdDeliver, Usage: "events claimed per round trip", Unset: "100",
		field: func(c *Config) any { return &c.Batch }},
	{Flag: "visibility-timeout", Env: "CASSATA_VISIBILITY_TIMEOUT", YAML: "visibility_timeout", Commands: cmdDeliver,
		Usage: "lease of a claimed event", Unset: "60s", field: func(c *Config) any { return &c.Visibility }},
	{Flag: "heartbeat-interval", Env: "CASSATA_HEARTBEAT_INTERVAL", YAML: "heartbeat_interval", Commands: cmdDeliver,
		Usage: "how often a worker reports itself alive", Unset: scheduler.DefaultHeartbeatInterval.String(),
		field: func(c *Config) any { return &c.HeartbeatInterval }},
	{Flag: "dead-after", Env: "CASSATA_DEAD_AFTER", YAML: "dead_after", Commands: cmdDeliver,
		Usage: "silence after which a worker's events are given to others (at least 2 heartbeat intervals)",
		Unset: "3 heartbeat intervals", field: func(c *Config) any { return &c.DeadAfter }},
	{Flag: "shutdown-timeout", Env: "CASSATA_SHUTDOWN_TIMEOUT", YAML: "shutdown_timeout", Commands: cmdDeliver,
		Usage: "how long in-flight deliveries may finish on SIGTERM", Unset: "30s",
		field: func(c *Config) any { return &c.ShutdownTimeout }},
	{Flag: "log-failed-requests", Env: "CASSATA_LOG_FAILED_REQUESTS", YAML: "log_failed_requests", Aliases: []string{"logFailedRequests"},
		Commands: cmdDeliver, Usage: "log every failed delivery attempt as one line",
		field: func(c *Config) any { return &c.LogFailedRequests }},
	{Flag: "log-level", Env: "CASSATA_LOG_LEVEL", YAML: "log_level", Commands: cmdLog,
		Usage: "debug|info|warn|error", field: func(c *Config) any { return &c.LogLevel }},
	{Flag: "log-format", Env: "CASSATA_LOG_FORMAT", YAML: "log_format", Commands: cmdLog,
		Usage: "json|text: JSON lines for machines, text for a person at a terminal",
		field: func(c *Config) any { return &c.LogFormat }},
	{Flag: "pprof", Env: "CASSATA_PPROF", YAML: "pprof", Commands: cmdRun,
		Usage: "serve Go's profiler at /debug/pprof/ on the HTTP listener (for diagnosis only, never on an exposed listener)",
		field: func(c *Config) any { return &c.Pprof }},
}

// For reports whether the setting's flag belongs to the command.
func (s Setting) For(mode string) bool { return slices.Contains(s.Commands, mode) }

// Kind is the setting's value type: string, int, bool or duration.
func (s Setting) Kind() string {
	var c Config
	switch s.field(&c).(type) {
	case *int:
		return "int"
	case *bool:
		return "bool"
	case *time.Duration:
		return "duration"
	}
	return "string"
}

// Default is the setting's default for mode, as text.
func (s Setting) Default(mode string) string {
	c := Defaults(mode)
	v := reflect.ValueOf(s.field(&c)).Elem()
	if v.IsZero() && s.Unset != "" {
		return s.Unset
	}
	return format(v.Interface())
}

func format(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Duration:
		return formatDuration(x)
	}
	return fmt.Sprint(v)
}

// formatDuration is d as one would write it: 24h, 1m30s (not 24h0m0s).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DefaultText is the setting's default across its commands: the server's
// (or its first command's), then the commands that differ, e.g.
// "on (dev: off)".
func (s Setting) DefaultText() string {
	base := s.Commands[0]
	if s.For(ModeServer) {
		base = ModeServer
	}
	text := s.Default(base)
	if text == "" {
		text = "none"
	}
	var differ []string
	for _, m := range s.Commands {
		if d := s.Default(m); d != s.Default(base) {
			differ = append(differ, m+": "+cmpOr(d, "none"))
		}
	}
	if len(differ) > 0 {
		text += " (" + strings.Join(differ, "; ") + ")"
	}
	return text
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// set parses an environment variable's value into the setting.
func (s Setting) set(c *Config, v string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a number: %q", v)
		}
		*p = n
	case *bool:
		b, ok := parseBool(v)
		if !ok {
			return fmt.Errorf("not a boolean (true or false): %q", v)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a duration (such as 30s or 5m): %q", v)
		}
		*p = d
	}
	return nil
}

// Flags are a command's configuration flags, bound to a flag set by
// BindFlags; Load reads the configuration with them.
type Flags struct {
	mode   string
	fs     *pflag.FlagSet
	config string
	vals   Config // the flags' values; only the flags given are applied
}

// BindFlags adds the flags of mode's settings and --config to fs. Each
// flag is typed (a boolean one needs no value: --redis-cluster), shows its
// default and names its environment variable.
func BindFlags(fs *pflag.FlagSet, mode string) *Flags {
	f := &Flags{mode: mode, fs: fs, vals: Defaults(mode)}
	fs.StringVar(&f.config, "config", "", "YAML configuration file (Cassata's keys or the original Cassata's)")
	for _, s := range Settings {
		if s.Flag == "" || !s.For(mode) {
			continue
		}
		// pflag shows a default that is not the zero value; Unset says
		// what the zero value means. The variables are listed by EnvHelp.
		usage := s.Usage
		if v := reflect.ValueOf(s.field(&f.vals)).Elem(); v.IsZero() && s.Unset != "" {
			if strings.HasPrefix(s.Unset, "required") || strings.HasPrefix(s.Unset, "none") {
				usage += " (" + s.Unset + ")"
			} else {
				usage += " (default " + s.Unset + ")"
			}
		}
		switch p := s.field(&f.vals).(type) {
		case *string:
			fs.StringVar(p, s.Flag, *p, usage)
		case *int:
			fs.IntVar(p, s.Flag, *p, usage)
		case *bool:
			fs.BoolVar(p, s.Flag, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, s.Flag, *p, usage)
		}
	}
	return f
}

// ConfigPath is the YAML file named by --config, else CASSATA_CONFIG.
func (f *Flags) ConfigPath() string {
	if f.fs.Changed("config") {
		return f.config
	}
	return os.Getenv(ConfigEnv)
}

// Load is the configuration: the defaults of the mode, the YAML file over
// them, the environment over that, and the flags given over everything;
// validated.
func (f *Flags) Load() (Config, error) {
	c := Defaults(f.mode)
	if path := f.ConfigPath(); path != "" {
		if _, err := ReadFile(&c, path, f.mode); err != nil {
			return c, err
		}
	}
	for _, s := range Settings {
		if v, ok := os.LookupEnv(s.Env); ok && v != "" {
			if err := s.set(&c, v); err != nil {
				return c, fmt.Errorf("%s: %w", s.Env, err)
			}
		}
	}
	for _, s := range Settings {
		if s.Flag != "" && s.For(f.mode) && f.fs.Changed(s.Flag) {
			reflect.ValueOf(s.field(&c)).Elem().Set(reflect.ValueOf(s.field(&f.vals)).Elem())
		}
	}
	return c, c.Validate(f.mode)
}

// Load builds the configuration for mode from args (its flags), the
// environment and the YAML file; it returns the arguments that are not
// flags. The commands parse their flags with cobra and call Flags.Load;
// Load is the same for a caller with an argument list.
func Load(mode string, args []string) (Config, []string, error) {
	fs := pflag.NewFlagSet("cassata "+mode, pflag.ContinueOnError)
	fs.SortFlags = false
	f := BindFlags(fs, mode)
	if err := fs.Parse(args); err != nil {
		return Defaults(mode), nil, err
	}
	if err := NoArgs(mode, fs.Args()); err != nil {
		return Defaults(mode), nil, err
	}
	c, err := f.Load()
	return c, fs.Args(), err
}

// NoArgs refuses the arguments of a command that takes none (dev, server,
// worker, migrate, healthcheck): a stray word (--redis-cluster true) must
// not pass unnoticed.
func NoArgs(mode string, args []string) error {
	switch mode {
	case ModeApps, ModeImport:
		return nil
	}
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q (a flag takes its value as --name=value or --name value; a switch alone is true)", args[0])
	}
	return nil
}

// EnvHelp lists the environment variables of mode's settings, for its
// --help: the variable, then its flag, or what it means when it has none.
func EnvHelp(mode string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-30s --config\n", ConfigEnv)
	for _, s := range Settings {
		if !s.For(mode) {
			continue
		}
		what := "--" + s.Flag
		if s.Flag == "" {
			what = s.Usage + " (default " + s.DefaultText() + "; no flag: a secret)"
		}
		fmt.Fprintf(&b, "  %-30s %s\n", s.Env, what)
	}
	return b.String()
}

// settingByYAML is the setting of a Cassata YAML key.
func settingByYAML(key string) (Setting, bool) {
	for _, s := range Settings {
		if s.YAML == key {
			return s, true
		}
	}
	return Setting{}, false
}
