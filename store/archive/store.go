package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/cassata/cassata/scheduler"
)

// Store is the archive on MySQL/MariaDB or SQLite. It implements
// scheduler.Archive and is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
	q       *queries
	stmts   stmtCache // Write's prepared statements
}

var _ scheduler.Archive = (*Store)(nil)

// Open connects to the archive named by dsn:
//
//	mysql://user:pass@host:3306/db?param=value   MySQL or MariaDB
//	sqlite:///abs/path/file.db                     SQLite (file and parent directory are created)
//
// It does not create tables (see Migrate) and does not fail when a MySQL
// server is unreachable: the pool connects lazily, so a worker starts while
// the archive is down; Ping tells whether it answers. Errors never contain
// the password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	dialect, u, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch dialect {
	case DialectMySQL:
		cfg, err := mysqlConfig(u)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", redactURL(u), err)
		}
		db = sql.OpenDB(conn)
		db.SetMaxIdleConns(8)
		// Below the usual wait_timeout and proxy idle limits.
		db.SetConnMaxLifetime(3 * time.Minute)
	case DialectSQLite:
		path, driverDSN, err := sqliteDSN(u)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("archive %s: create directory: %w", redactURL(u), err)
		}
		db, err = sql.Open("sqlite", driverDSN)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", redactURL(u), err)
		}
		// A connection opens the file and applies the pragmas; doing it
		// now reports a bad path at start-up rather than on first use.
		if err := pingSQLite(ctx, db); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("archive %s: %w", redactURL(u), err)
		}
	}
	return &Store{db: db, dialect: dialect, q: queriesFor(dialect)}, nil
}

// pingSQLite opens a first connection, waiting out SQLITE_BUSY for up to
// DefaultBusyTimeout. Putting a new file into WAL mode (the journal_mode
// pragma every connection applies) needs the file to itself, and while
// another connection holds its write lock SQLite answers SQLITE_BUSY at once
// instead of calling the busy handler (waiting could deadlock): a server and
// a worker started together on a new archive met that, one of them exiting
// (a CI run of TestCallbacksThroughProcesses; TestOpenWaitsForANewFileBeingSetUp
// plays it). Once the file is in WAL mode the pragma changes nothing.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(DefaultBusyTimeout)
	for {
		err := db.PingContext(ctx)
		if err == nil || !sqliteBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sqliteBusy reports SQLite's "database is locked" (SQLITE_BUSY, with any
// extended code).
func sqliteBusy(err error) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code()&0xff == 5
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// Dialect returns DialectMySQL or DialectSQLite.
func (s *Store) Dialect() string { return s.dialect }

// DB returns the underlying pool, for tests and diagnostics; callers must
// not write to the archive's tables through it.
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("archive ping: %w: %w", scheduler.ErrUnavailable, err)
	}
	return nil
}
