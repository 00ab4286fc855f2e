package archive

// Why not golang-migrate (evaluated for issue 16): it would replace the ~100
// lines below, but not the parts that matter here. It records one version
// with a dirty flag, so a MySQL migration cut off half-way (MySQL commits DDL
// statement by statement) leaves the database "dirty" until an operator runs
// `force`; these migrations are idempotent instead (IF NOT EXISTS, an ADD
// COLUMN that finds its column counts as done) and simply run again, which is
// what every worker creating the tables at start (createTablesIfNotExists,
// on by default) needs. Between two migrations this loop checks the redsync
// start-up fence (scheduler.CheckFence), which golang-migrate has no hook
// for; its MySQL
// driver wants multiStatements on the DSN, and its SQLite driver would pin its
// own modernc.org/sqlite. The migrations stay numbered files embedded with
// go:embed (STYLE.md), so moving to it later is a change of runner only.

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cassata/cassata/scheduler"
)

//go:embed migrations/mysql/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version    int64
	name       string
	statements []string
}

// migrations returns the dialect's migrations in version order. File names
// are NNNN_description.sql; statements end with ";" at the end of a line.
func migrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive number and _", dir, e.Name())
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: e.Name(), statements: splitStatements(string(b))})
	}
	slices.SortFunc(out, func(a, b migration) int { return int(a.version - b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// splitStatements cuts a migration file into statements at lines ending in
// ";", dropping "--" comment lines. Migrations are ours, so this simple rule
// is enough and the MySQL driver needs no multiStatements.
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(src) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Migrate creates or upgrades the archive's tables: it applies, in order,
// every embedded migration not yet recorded in schema_migrations. Safe to
// call on every start: applied versions are skipped, every statement is
// idempotent (IF [NOT] EXISTS; an ADD COLUMN whose column exists or a DROP
// INDEX whose index is gone counts as done, see alreadyDone), and recording
// a version twice is a no-op, so even two processes racing here end up with
// the same schema (the worker still runs it under a lock to keep start-up
// quiet).
//
// On SQLite each migration runs in one transaction. MySQL commits DDL
// statement by statement; a migration interrupted half-way is simply run
// again, which is why its statements must be idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, math.MaxInt64)
}

// migrate applies the migrations up to version upTo.
func (s *Store) migrate(ctx context.Context, upTo int64) error {
	all, err := migrations(s.dialect)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("archive migrate: create schema_migrations: %w", err)
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, m := range all {
		if applied[m.version] || m.version > upTo {
			continue
		}
		// Under the start-up lock: stop if another replica took it over.
		if err := scheduler.CheckFence(ctx); err != nil {
			return fmt.Errorf("archive migrate %s: %w", m.name, err)
		}
		if err := s.apply(ctx, m); err != nil {
			return fmt.Errorf("archive migrate %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration version, 0 when none.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	var v int64
	for k := range applied {
		v = max(v, k)
	}
	return v, nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, selectMigrations)
	if err != nil {
		return nil, fmt.Errorf("archive: read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (s *Store) apply(ctx context.Context, m migration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for i, stmt := range m.statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil && !alreadyDone(err) {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q.insertMigration, m.version, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return tx.Commit()
}

// alreadyDone reports the error of a statement whose change is there
// already: an ADD COLUMN whose column exists, or (MySQL) a DROP INDEX whose
// index is gone. Neither MySQL nor SQLite has ADD COLUMN IF NOT EXISTS, and
// MySQL has no DROP INDEX IF EXISTS, so that is how such a statement is
// idempotent: run again after a crash (MySQL commits DDL as it goes, before
// the version is recorded) or by a second process that read the applied
// versions before the first recorded its own, it finds its work done.
func alreadyDone(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1060 || // ER_DUP_FIELDNAME
			me.Number == 1091 // ER_CANT_DROP_FIELD_OR_KEY
	}
	// modernc.org/sqlite reports it as a generic SQLITE_ERROR: only the
	// message tells. (SQLite's migrations drop with IF EXISTS.)
	return strings.Contains(err.Error(), "duplicate column name")
}
