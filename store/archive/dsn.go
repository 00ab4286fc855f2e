package archive

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Dialects, as Dialect reports them.
const (
	DialectMySQL  = "mysql"
	DialectSQLite = "sqlite"
)

// Connection defaults applied when the DSN does not set them.
const (
	// DefaultMySQLPort is used when a mysql:// DSN names no port.
	DefaultMySQLPort = "3306"
	// DefaultDialTimeout bounds connecting to MySQL ("timeout" parameter).
	DefaultDialTimeout = 10 * time.Second
	// DefaultBusyTimeout is how long a SQLite connection waits for a lock
	// held by another connection or process before giving up.
	DefaultBusyTimeout = 10 * time.Second
)

// RedactDSN returns dsn with its password replaced by "xxxxx", for logs and
// error messages. A DSN that does not parse is reduced to its scheme.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		scheme, _, ok := strings.Cut(dsn, "://")
		if !ok || strings.ContainsAny(scheme, "@:/") {
			return "<invalid DSN>"
		}
		return scheme + "://<invalid DSN>"
	}
	return redactURL(u)
}

// redactURL is url.URL.Redacted, which also covers opaque forms such as
// "mysql:user:pass@host/db" or a driver DSN "user:pass@tcp(host)/db" (read
// as scheme "user").
func redactURL(u *url.URL) string {
	if strings.Contains(u.Opaque, "@") {
		return u.Scheme + ":<redacted>"
	}
	return u.Redacted()
}

// parseDSN splits an archive DSN into its dialect and the URL. Errors never
// carry the password: url.Parse quotes the whole input in its errors, so
// only its cause is kept.
func parseDSN(dsn string) (string, *url.URL, error) {
	if dsn == "" {
		return "", nil, errors.New("archive DSN is empty (want mysql://user:pass@host:3306/db or sqlite:///path/file.db)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", nil, fmt.Errorf("archive DSN %s: %v", RedactDSN(dsn), err)
	}
	switch u.Scheme {
	case "mysql", "mariadb":
		return DialectMySQL, u, nil
	case "sqlite", "sqlite3":
		return DialectSQLite, u, nil
	case "":
		return "", nil, fmt.Errorf("archive DSN %s has no scheme (want mysql:// or sqlite://)", RedactDSN(dsn))
	default:
		return "", nil, fmt.Errorf("archive DSN %s: unsupported scheme %q (want mysql:// or sqlite://)", RedactDSN(dsn), u.Scheme)
	}
}

// MySQLConfig is the go-sql-driver/mysql configuration of a mysql:// (or
// mariadb://) DSN, with the defaults and the password handling Open uses;
// for other programs that read a MySQL database named the same way (cassata
// import's source). Errors never contain the password.
func MySQLConfig(dsn string) (*mysql.Config, error) {
	dialect, u, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if dialect != DialectMySQL {
		return nil, fmt.Errorf("DSN %s: want mysql://user:pass@host:port/db", RedactDSN(dsn))
	}
	return mysqlConfig(u)
}

// mysqlConfig translates mysql://user:pass@host:port/db?params into the
// driver's configuration, i.e. user:pass@tcp(host:port)/db?parseTime=true&params.
// The query parameters are the driver's own (timeout, tls, charset, any
// system variable, ...) and pass through unchanged; parseTime=true,
// timeout=10s and interpolateParams=true (one round trip per statement
// instead of prepare, execute, close, for the reads; Write prepares its
// statements once and reuses them, stmts.go) are the defaults when absent. Credentials are set on the Config directly, never
// formatted into a DSN string, so any character in the password works.
func mysqlConfig(u *url.URL) (*mysql.Config, error) {
	redacted := redactURL(u)
	if u.Opaque != "" {
		return nil, fmt.Errorf("archive DSN %s: want mysql://user:pass@host:port/db", redacted)
	}
	q := u.Query()
	if !q.Has("parseTime") {
		q.Set("parseTime", "true")
	}
	if !q.Has("interpolateParams") {
		q.Set("interpolateParams", "true")
	}
	if !q.Has("timeout") {
		q.Set("timeout", DefaultDialTimeout.String())
	}
	// ParseDSN applies and validates the parameters; the address and
	// credentials are filled in below.
	cfg, err := mysql.ParseDSN("/?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("archive DSN %s: %w", redacted, err)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("archive DSN %s: missing host", redacted)
	}
	port := u.Port()
	if port == "" {
		port = DefaultMySQLPort
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("archive DSN %s: want exactly one database name in the path", redacted)
	}
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = db
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	return cfg, nil
}

// sqliteDSN translates sqlite:///abs/path/file.db (or sqlite://rel/path.db,
// sqlite:rel.db) into the file path and the modernc.org/sqlite DSN with the
// pragmas the archive relies on. Extra query parameters pass through to the
// driver (e.g. _pragma=cache_size(-20000)).
func sqliteDSN(u *url.URL) (path, driverDSN string, err error) {
	redacted := redactURL(u)
	path = u.Opaque
	if path == "" {
		path = u.Host + u.Path
	}
	if path == "" {
		return "", "", fmt.Errorf("archive DSN %s: missing file path (want sqlite:///path/file.db)", redacted)
	}
	if path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return "", "", fmt.Errorf("archive DSN %s: want a plain file path", redacted)
	}
	path = filepath.Clean(path)
	q := u.Query()
	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()),
		// WAL with synchronous=NORMAL: a commit appends to the WAL without
		// an fsync (checkpoints sync). The file is never corrupted, and a
		// crash of the process loses nothing (the write is in the OS cache);
		// only an OS crash or power loss can drop the last commits. That is
		// safe for the archive: the archiver acks outbox entries only after
		// the commit returned, so a failure before the commit leaves them in
		// the outbox to be written again (Write is idempotent), and the
		// power-loss window is of the order of the outbox's own (Redis with
		// appendfsync everysec, deploy/redis.conf).
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		// The statement journal of a multi-row upsert (which SQLite keeps
		// so that one failing row can undo its statement) stays in memory
		// instead of spilling to a temporary file past 64 KiB: a Write's
		// statements are bounded by maxStatementBytes, and temporary data
		// is never needed after a crash.
		"temp_store(MEMORY)",
		// LIKE is case-sensitive, as in MySQL with the archive's binary
		// collations, so search behaves the same on both.
		"case_sensitive_like(1)",
		// A checkpoint every 10,000 pages of WAL (40 MB with 4 KiB pages)
		// rather than SQLite's 1,000: a checkpoint copies each page once,
		// however often the commits since rewrote it, and the archive's
		// commits rewrite the same index pages (an event's key lands on a
		// random page, its final updates it again) and each checkpoint
		// ends with an fsync. Measured (BenchmarkWriteCreates/SQLite/500,
		// 5 interleaved pairs): 10-20% less CPU and wall time per create.
		"wal_autocheckpoint(10000)",
	}
	q["_pragma"] = append(pragmas, q["_pragma"]...)
	if !q.Has("_txlock") {
		// Writers take the lock at BEGIN, so two writers queue on
		// busy_timeout instead of failing to upgrade a read lock.
		q.Set("_txlock", "immediate")
	}
	return path, path + "?" + q.Encode(), nil
}
