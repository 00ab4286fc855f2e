package legacy

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cassata/cassata/store/archive"
)

// Source defaults.
const (
	// DefaultPageBytes bounds the bytes of one page (bodies, headers,
	// URLs): a page ends at DefaultPageSize rows or at this many bytes,
	// whichever comes first.
	DefaultPageBytes = 16 << 20
	// queryTimeout bounds one page's queries.
	queryTimeout = 2 * time.Minute
)

// Source reads an original Cassata database. Every query is a SELECT in a
// read-only transaction. Safe for concurrent use.
type Source struct {
	db       *sql.DB
	redacted string
	// hasLogs: the database has _saas_eventlog (logFailedRequests).
	hasLogs bool
}

// Row is one row of _saas_events as read, with its event logs when it is
// not pending. Nothing is judged here: the import decides what is valid.
type Row struct {
	ID          int64
	EventID     sql.NullString
	Application sql.NullString
	// EventJSON is the body's text; nil when NULL or longer than the limit
	// the page was read with (see EventJSONLen).
	EventJSON    []byte
	EventJSONLen sql.NullInt64
	HTTPMethod   sql.NullString
	// HTTPHeaders is the JSON text of the header list; nil when NULL.
	HTTPHeaders []byte
	URL         sql.NullString
	Status      sql.NullString
	// Expiry and CreatedAt are invalid when NULL or unreadable.
	Expiry    sql.Null[time.Time]
	CreatedAt sql.Null[time.Time]
	Logs      []LogRow
}

// LogRow is one row of _saas_eventlog.
type LogRow struct {
	ID        int64
	Code      sql.NullInt64
	Response  sql.NullString
	CreatedAt sql.Null[time.Time]
}

// OpenSource connects to an original Cassata database and checks that it
// has the original's tables. dsn is mysql://user:pass@host:3306/db, the
// archive's DSN form (archive.MySQLConfig: driver parameters pass through).
// Errors never contain the password.
func OpenSource(ctx context.Context, dsn string) (*Source, error) {
	redacted := archive.RedactDSN(dsn)
	cfg, err := archive.MySQLConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	// TIMESTAMP columns are stored in UTC and shown in the session's zone:
	// a UTC session read as UTC gives the stored instant whatever the
	// server's time zone.
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", redacted, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetConnMaxLifetime(3 * time.Minute)
	s := &Source{db: db, redacted: redacted}
	if err := s.check(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// requiredColumns are the columns of _saas_events the import reads.
var requiredColumns = []string{"id", "event_id", "application", "event_json", "http_method", "http_headers",
	"destination_url", "status", "expiry", "created_at"}

var requiredLogColumns = []string{"id", "_saas_events_id", "http_response_code", "http_response", "created_at"}

// check verifies the original's tables are there.
func (s *Source) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, selectSourceColumns)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.redacted, err)
	}
	defer rows.Close()
	cols := map[string][]string{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return fmt.Errorf("source %s: %w", s.redacted, err)
		}
		cols[table] = append(cols[table], strings.ToLower(col))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source %s: %w", s.redacted, err)
	}
	missing := func(table string, want []string) []string {
		var out []string
		for _, c := range want {
			if !slices.Contains(cols[table], c) {
				out = append(out, c)
			}
		}
		return out
	}
	if len(cols["_saas_events"]) == 0 {
		return fmt.Errorf("source %s has no _saas_events table: not an original Cassata database", s.redacted)
	}
	if m := missing("_saas_events", requiredColumns); len(m) > 0 {
		return fmt.Errorf("source %s: _saas_events lacks columns %s: not an original Cassata database", s.redacted, strings.Join(m, ", "))
	}
	if len(cols["_saas_eventlog"]) > 0 {
		if m := missing("_saas_eventlog", requiredLogColumns); len(m) > 0 {
			return fmt.Errorf("source %s: _saas_eventlog lacks columns %s", s.redacted, strings.Join(m, ", "))
		}
		s.hasLogs = true
	}
	return nil
}

// HasEventLog reports whether the source has the _saas_eventlog table.
func (s *Source) HasEventLog() bool { return s.hasLogs }

// EventLogIndexed reports whether _saas_eventlog has an index that starts
// with _saas_events_id (the original creates one); without it every page
// scans the whole event log.
func (s *Source) EventLogIndexed(ctx context.Context) (bool, error) {
	if !s.hasLogs {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var n int
	if err := s.db.QueryRowContext(ctx, selectLogIndex).Scan(&n); err != nil {
		return false, fmt.Errorf("source %s: %w", s.redacted, err)
	}
	return n > 0, nil
}

// String is the source's DSN without its password.
func (s *Source) String() string { return s.redacted }

// Close closes the connection pool.
func (s *Source) Close() error { return s.db.Close() }

// MaxID returns the highest id of _saas_events (0 when empty), for
// progress.
func (s *Source) MaxID(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var id int64
	if err := s.db.QueryRowContext(ctx, selectMaxID).Scan(&id); err != nil {
		return 0, fmt.Errorf("source %s: %w", s.redacted, err)
	}
	return id, nil
}

// Page reads up to limit rows with id > after, in id order, stopping early
// once maxBytes are read (always at least one row). A row's event_json
// longer than maxBody is left out (EventJSONLen tells its length). The
// event logs of rows that are neither PENDING nor PROCESSING come with
// them, from the same read-only snapshot. An empty page means the end.
func (s *Source) Page(ctx context.Context, after int64, limit, maxBody, maxBytes int) ([]Row, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("source %s: begin read-only: %w", s.redacted, err)
	}
	// Read-only: nothing to commit; rolling back just ends the snapshot.
	defer func() { _ = tx.Rollback() }()

	out, err := s.readEvents(ctx, tx, after, limit, maxBody, maxBytes)
	if err != nil {
		return nil, err
	}
	if s.hasLogs {
		if err := s.readLogs(ctx, tx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Source) readEvents(ctx context.Context, tx *sql.Tx, after int64, limit, maxBody, maxBytes int) ([]Row, error) {
	rows, err := tx.QueryContext(ctx, selectEventsPage, maxBody, after, limit)
	if err != nil {
		return nil, fmt.Errorf("source %s: read _saas_events after id %d: %w", s.redacted, after, err)
	}
	defer rows.Close()
	var out []Row
	size := 0
	for rows.Next() {
		var r Row
		var expiry, created any
		if err := rows.Scan(&r.ID, &r.EventID, &r.Application, &r.EventJSON, &r.EventJSONLen, &r.HTTPMethod,
			&r.HTTPHeaders, &r.URL, &r.Status, &expiry, &created); err != nil {
			return nil, fmt.Errorf("source %s: read _saas_events after id %d: %w", s.redacted, after, err)
		}
		r.Expiry = timeValue(expiry)
		r.CreatedAt = timeValue(created)
		out = append(out, r)
		size += 256 + len(r.EventJSON) + len(r.HTTPHeaders) + len(r.URL.String)
		if size >= maxBytes {
			// The rest of the result is discarded unread by Close; the
			// next page starts after this row.
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source %s: read _saas_events after id %d: %w", s.redacted, after, err)
	}
	return out, nil
}

// readLogs fills in the event logs of the page's finished rows.
func (s *Source) readLogs(ctx context.Context, tx *sql.Tx, page []Row) error {
	idx := map[int64]int{}
	var args []any
	for i := range page {
		if !liveStatus(normalStatus(page[i].Status.String)) {
			idx[page[i].ID] = i
			args = append(args, page[i].ID)
		}
	}
	if len(args) == 0 {
		return nil
	}
	q := selectLogsHead + placeholders(len(args)) + selectLogsTail
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("source %s: read _saas_eventlog: %w", s.redacted, err)
	}
	defer rows.Close()
	for rows.Next() {
		var eventID int64
		var l LogRow
		var created any
		if err := rows.Scan(&eventID, &l.ID, &l.Code, &l.Response, &created); err != nil {
			return fmt.Errorf("source %s: read _saas_eventlog: %w", s.redacted, err)
		}
		l.CreatedAt = timeValue(created)
		if i, ok := idx[eventID]; ok {
			page[i].Logs = append(page[i].Logs, l)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source %s: read _saas_eventlog: %w", s.redacted, err)
	}
	return nil
}

// timeValue reads a time column: TIMESTAMP or DATETIME (time.Time with
// parseTime), or, should a copy of the original have changed the type, a
// number of Unix seconds (milliseconds from 100000000000 on, as
// /cassata/add reads expiry) or its text. A zero date is the zero time,
// valid; NULL and anything unreadable are invalid.
func timeValue(v any) sql.Null[time.Time] {
	switch v := v.(type) {
	case time.Time:
		return sql.Null[time.Time]{V: v.UTC(), Valid: true}
	case int64:
		return sql.Null[time.Time]{V: unixTime(v), Valid: true}
	case []byte:
		return timeText(string(v))
	case string:
		return timeText(v)
	}
	return sql.Null[time.Time]{}
}

func unixTime(n int64) time.Time {
	if n >= 100_000_000_000 || n <= -100_000_000_000 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

func timeText(s string) sql.Null[time.Time] {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return sql.Null[time.Time]{V: unixTime(n), Valid: true}
	}
	if strings.HasPrefix(s, "0000-00-00") {
		return sql.Null[time.Time]{Valid: true}
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return sql.Null[time.Time]{V: t.UTC(), Valid: true}
		}
	}
	return sql.Null[time.Time]{}
}
