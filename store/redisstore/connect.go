package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Connection defaults. They make a process fail fast when Redis is away:
// the API answers 503 within seconds instead of holding clients, and
// workers back off and retry.
const (
	DefaultPoolSize    = 64
	DefaultDialTimeout = 2 * time.Second
	DefaultMaxRetries  = 2
	// DefaultAttemptTimeout bounds one attempt of Open to set up the store.
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultMaxBackoff is the longest wait between two attempts of Open.
	DefaultMaxBackoff = 5 * time.Second
)

// ConnConfig says how to reach Redis and which namespace to open.
type ConnConfig struct {
	// URL is a redis:// or rediss:// URL, or with Cluster comma-separated
	// seeds, each host:port or a URL. Required.
	URL string
	// Cluster connects to a Redis Cluster. Defaults to false.
	Cluster bool
	// Store configures the store Open returns (namespace, shards, ...).
	// Its own defaults apply (see Config).
	Store Config
	// AttemptTimeout bounds one attempt of Open. Defaults to
	// DefaultAttemptTimeout (5s).
	AttemptTimeout time.Duration
	// MaxBackoff is the longest wait between attempts of Open. Defaults to
	// DefaultMaxBackoff (5s).
	MaxBackoff time.Duration
	// Logger logs the retries of Open. Defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ConnConfig) WithDefaults() ConnConfig {
	c.AttemptTimeout = cmp.Or(c.AttemptTimeout, DefaultAttemptTimeout)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration Dial cannot use; errors name the
// setting (CASSATA_REDIS_URL) as users know it.
func (c ConnConfig) Validate() error {
	if strings.TrimSpace(c.URL) == "" {
		return errors.New("CASSATA_REDIS_URL: empty")
	}
	if c.AttemptTimeout < 0 || c.MaxBackoff < 0 {
		return errors.New("redisstore.ConnConfig: AttemptTimeout and MaxBackoff must not be negative")
	}
	if c.Cluster {
		_, err := ParseClusterSeeds(c.URL)
		return err
	}
	if _, err := redis.ParseURL(c.URL); err != nil {
		return fmt.Errorf("CASSATA_REDIS_URL: %w", err)
	}
	return nil
}

// Dial returns a client for a single Redis or a Redis Cluster. It does not
// talk to Redis: the first command does.
func Dial(c ConnConfig) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Cluster {
		seeds, err := ParseClusterSeeds(c.URL)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds.Addrs, Username: seeds.User, Password: seeds.Password,
			TLSConfig: seeds.TLS, PoolSize: DefaultPoolSize, DialTimeout: DefaultDialTimeout, DialerRetries: 1,
			ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRetries: DefaultMaxRetries}), nil
	}
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("CASSATA_REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, DefaultPoolSize)
	if opt.DialTimeout <= 0 || opt.DialTimeout > DefaultDialTimeout {
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.MaxRetries == 0 || opt.MaxRetries > DefaultMaxRetries { // 0 would mean go-redis's default, 3
		opt.MaxRetries = DefaultMaxRetries
	}
	// One dial per try: go-redis otherwise dials 5 times, 100ms apart, on
	// every one of the MaxRetries+1 tries, so each request would wait over
	// a second for a refused connection (and 5 dial timeouts for an
	// unreachable host) before the 503. The tries themselves retry.
	opt.DialerRetries = 1
	return redis.NewClient(opt), nil
}

// Open dials Redis and opens the store, retrying while Redis is
// unreachable or still loading its data (IsTransient), so processes can
// start before Redis does. It gives up on other errors and when ctx ends.
// Closing the store's Client is the caller's.
func Open(ctx context.Context, c ConnConfig) (*Store, error) {
	c = c.WithDefaults()
	rdb, err := Dial(c)
	if err != nil {
		return nil, err
	}
	delay := 200 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, c.AttemptTimeout)
		store, err := New(actx, rdb, c.Store)
		cancel()
		if err == nil {
			return store, nil
		}
		if ctx.Err() != nil || !IsTransient(err) {
			_ = rdb.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		c.Logger.Warn("redis not reachable yet; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			_ = rdb.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, c.MaxBackoff)
	}
}

// RedactURL hides the password of a Redis URL for logs.
func RedactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u, "@"); j > i {
			return u[:i+3] + "***@" + u[j+1:]
		}
	}
	return u
}

// ClusterSeeds are the seeds of a Redis Cluster and the credentials and
// TLS settings every node shares.
type ClusterSeeds struct {
	Addrs          []string
	User, Password string
	// TLS is non-nil when a seed is a rediss:// URL.
	TLS *tls.Config
}

// ParseClusterSeeds reads CASSATA_REDIS_URL for a Redis Cluster:
// comma-separated seeds, each host:port or a redis:// or rediss:// URL. A
// cluster has one password for all its nodes and only database 0, so
// credentials come from the first URL that has them and a database other
// than 0 is refused; rediss:// turns TLS on (each node's certificate is
// checked against its own host name).
func ParseClusterSeeds(s string) (ClusterSeeds, error) {
	var c ClusterSeeds
	for _, seed := range strings.Split(s, ",") {
		seed = strings.TrimSpace(seed)
		if seed == "" {
			continue
		}
		if !strings.Contains(seed, "://") {
			if _, _, err := net.SplitHostPort(seed); err != nil {
				return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %q: want host:port or a redis:// URL", seed)
			}
			c.Addrs = append(c.Addrs, seed)
			continue
		}
		u, err := url.Parse(seed)
		if err != nil {
			return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: cluster seed: %w", err)
		}
		switch u.Scheme {
		case "redis":
		case "rediss":
			c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		default:
			return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s: scheme %q, want redis or rediss", RedactURL(seed), u.Scheme)
		}
		if u.Hostname() == "" {
			return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s has no host", RedactURL(seed))
		}
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: cluster seed %s: a Redis Cluster has only database 0", RedactURL(seed))
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		c.Addrs = append(c.Addrs, net.JoinHostPort(u.Hostname(), port))
		if u.User != nil && c.User == "" && c.Password == "" {
			c.User = u.User.Username()
			c.Password, _ = u.User.Password()
		}
	}
	if len(c.Addrs) == 0 {
		return ClusterSeeds{}, fmt.Errorf("CASSATA_REDIS_URL: no cluster seeds")
	}
	return c, nil
}
