package archive

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Get returns the latest run (highest creation time) of an identity with
// its attempt history ordered by (at, attempt), or scheduler.ErrNotFound.
// Database errors wrap scheduler.ErrUnavailable.
func (s *Store) Get(ctx context.Context, app, id string) (*scheduler.Event, error) {
	ev, _, err := scanEvent(s.db.QueryRowContext(ctx, selectLatestRun, app, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, scheduler.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("archive get %s/%s: %w: %w", app, id, scheduler.ErrUnavailable, err)
	}
	rows, err := s.db.QueryContext(ctx, selectHistory, app, id, ev.CreatedAt.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("archive get %s/%s history: %w: %w", app, id, scheduler.ErrUnavailable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a scheduler.Attempt
		if err := rows.Scan(&a.Attempt, &a.At, &a.DurationMS, &a.StatusCode, &a.Error, &a.Response, &a.Worker, &a.Stale); err != nil {
			return nil, fmt.Errorf("archive get %s/%s history: %w", app, id, err)
		}
		ev.History = append(ev.History, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive get %s/%s history: %w: %w", app, id, scheduler.ErrUnavailable, err)
	}
	return ev, nil
}

// Search lists runs matching q, newest first (highest seq), each with its
// history, as Get shows it. Pagination is by keyset on seq: a page holds the rows with seq
// below the cursor's, so pages never overlap or skip a row, and runs
// archived after the first page do not push older ones onto later pages.
// Invalid input (limit, cursor, status) returns a *scheduler.ValidationError
// (errors.Is ErrInvalid); database errors wrap scheduler.ErrUnavailable.
func (s *Store) Search(ctx context.Context, q scheduler.SearchQuery) (scheduler.SearchPage, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = scheduler.DefaultSearchLimit
	case limit < 0 || limit > scheduler.MaxSearchLimit:
		return scheduler.SearchPage{}, &scheduler.ValidationError{
			Field:   "limit",
			Message: fmt.Sprintf("must be between 1 and %d", scheduler.MaxSearchLimit),
		}
	}
	query, args, err := searchQuery(q, limit)
	if err != nil {
		return scheduler.SearchPage{}, err
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return scheduler.SearchPage{}, fmt.Errorf("archive search: %w: %w", scheduler.ErrUnavailable, err)
	}
	defer rows.Close()
	var page scheduler.SearchPage
	var lastSeq int64
	for rows.Next() {
		ev, seq, err := scanEvent(rows)
		if err != nil {
			return scheduler.SearchPage{}, fmt.Errorf("archive search: %w", err)
		}
		if len(page.Events) == limit {
			// The extra row only says that there is a next page.
			page.NextCursor = EncodeCursor(lastSeq)
			break
		}
		page.Events = append(page.Events, ev)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return scheduler.SearchPage{}, fmt.Errorf("archive search: %w: %w", scheduler.ErrUnavailable, err)
	}
	if err := s.loadHistories(ctx, page.Events); err != nil {
		return scheduler.SearchPage{}, err
	}
	return page, nil
}

// searchQuery is the statement and arguments of a search page of limit
// rows (plus one, which tells whether there is a next page).
func searchQuery(q scheduler.SearchQuery, limit int) (string, []any, error) {
	if q.Status != "" && !q.Status.Valid() {
		return "", nil, &scheduler.ValidationError{Field: "status", Message: fmt.Sprintf("unknown status %q", q.Status)}
	}

	var where []string
	var args []any
	if q.App != "" {
		where, args = append(where, searchFilterApp), append(args, q.App)
	}
	if q.Status != "" {
		where, args = append(where, searchFilterStatus), append(args, string(q.Status))
	}
	if len(q.Statuses) > 0 {
		marks := make([]string, len(q.Statuses))
		for i, st := range q.Statuses {
			if !st.Valid() {
				return "", nil, &scheduler.ValidationError{Field: "status", Message: fmt.Sprintf("unknown status %q", st)}
			}
			marks[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "status IN ("+strings.Join(marks, ", ")+")")
	}
	if (q.Status != "" && q.Status != scheduler.StatusCompleted) ||
		(len(q.Statuses) > 0 && !slices.Contains(q.Statuses, scheduler.StatusCompleted)) {
		// Redundant with the status filter, but SQLite's partial status
		// indexes (migration 0005) serve only a query that says it.
		where = append(where, searchFilterNotCompleted)
	}
	if q.Q != "" {
		esc := escapeLike(q.Q)
		where, args = append(where, searchFilterQ), append(args, esc+"%", "%"+esc+"%")
	}
	if !q.From.IsZero() {
		where, args = append(where, searchFilterFrom), append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		where, args = append(where, searchFilterTo), append(args, q.To.UnixMilli())
	}
	if q.Cursor != "" {
		seq, err := DecodeCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		where, args = append(where, searchFilterCursor), append(args, seq)
	}
	query := searchHead
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += searchTail
	args = append(args, limit+1)

	return query, args, nil
}

// loadHistories fills in the attempt history of runs, in one query, so a
// search result carries what Get shows for the same run.
func (s *Store) loadHistories(ctx context.Context, runs []*scheduler.Event) error {
	if len(runs) == 0 {
		return nil
	}
	type run struct {
		app, id string
		created int64
	}
	byRun := make(map[run]*scheduler.Event, len(runs))
	var q strings.Builder
	q.WriteString(selectHistoriesHead)
	args := make([]any, 0, 3*len(runs))
	for i, ev := range runs {
		if i > 0 {
			q.WriteString(" OR ")
		}
		q.WriteString(selectHistoriesRun)
		created := ev.CreatedAt.UnixMilli()
		args = append(args, ev.App, ev.ID, created)
		byRun[run{ev.App, ev.ID, created}] = ev
		ev.History = nil
	}
	q.WriteString(selectHistoriesOrder)
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("archive search history: %w: %w", scheduler.ErrUnavailable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r run
		var a scheduler.Attempt
		if err := rows.Scan(&r.app, &r.id, &r.created, &a.Attempt, &a.At, &a.DurationMS, &a.StatusCode, &a.Error,
			&a.Response, &a.Worker, &a.Stale); err != nil {
			return fmt.Errorf("archive search history: %w", err)
		}
		if ev := byRun[r]; ev != nil {
			ev.History = append(ev.History, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive search history: %w: %w", scheduler.ErrUnavailable, err)
	}
	return nil
}

// cursorVersion prefixes the cursor's payload so its format can change
// while old cursors are still recognised.
const cursorVersion = "1:"

// EncodeCursor returns the opaque cursor for the page after the row with
// this seq.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + strconv.FormatInt(seq, 10)))
}

// DecodeCursor returns the seq a cursor continues after, or a
// *scheduler.ValidationError for field "cursor".
func DecodeCursor(cursor string) (int64, error) {
	invalid := &scheduler.ValidationError{Field: "cursor", Message: "invalid cursor; pass next_cursor from the previous page unchanged"}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, invalid
	}
	num, ok := strings.CutPrefix(string(b), cursorVersion)
	if !ok {
		return 0, invalid
	}
	seq, err := strconv.ParseInt(num, 10, 64)
	if err != nil || seq <= 0 {
		return 0, invalid
	}
	return seq, nil
}

// escapeLike makes s match literally inside a LIKE pattern with ESCAPE '!'.
func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

type scanner interface {
	Scan(dest ...any) error
}

// scanEvent reads one row of selectEventColumns into an Event and its seq.
// NULL columns (not known yet) become zero values.
func scanEvent(sc scanner) (*scheduler.Event, int64, error) {
	var (
		seq, createdMS, updatedMS                             int64
		app, id, status                                       string
		url, method, headers, lastError, worker, flowKey      sql.NullString
		body                                                  []byte
		bodyNull                                              bool
		dueMS, attempts, maxAttempts, timeoutMS, minBackoffMS sql.NullInt64
		maxBackoffMS, lastStatusCode, finishedMS              sql.NullInt64
	)
	err := sc.Scan(&seq, &app, &id, &createdMS, &url, &method, &headers, &body, &bodyNull, &dueMS, &status, &attempts,
		&maxAttempts, &timeoutMS, &minBackoffMS, &maxBackoffMS, &lastStatusCode, &lastError, &worker,
		&finishedMS, &updatedMS, &flowKey)
	if err != nil {
		return nil, 0, err
	}
	if !bodyNull && body == nil {
		body = []byte{} // known to be empty
	}
	ev := &scheduler.Event{
		App:    app,
		ID:     id,
		URL:    url.String,
		Method: method.String,
		Body:   body,
		// NULL: no record carried the body yet (a live run) or Redis dropped
		// it (COMPLETED): either way the archive cannot show it.
		BodyDropped:    bodyNull,
		Status:         scheduler.Status(status),
		Attempts:       int(attempts.Int64),
		MaxAttempts:    int(maxAttempts.Int64),
		Timeout:        time.Duration(timeoutMS.Int64) * time.Millisecond,
		MinBackoff:     time.Duration(minBackoffMS.Int64) * time.Millisecond,
		MaxBackoff:     time.Duration(maxBackoffMS.Int64) * time.Millisecond,
		CreatedAt:      msTime(createdMS),
		UpdatedAt:      msTime(updatedMS),
		LastStatusCode: int(lastStatusCode.Int64),
		LastError:      lastError.String,
		Worker:         worker.String,
		FlowKey:        flowKey.String,
	}
	if dueMS.Valid {
		ev.DueAt = msTime(dueMS.Int64)
	}
	if finishedMS.Valid && finishedMS.Int64 > 0 {
		ev.FinishedAt = msTime(finishedMS.Int64)
	}
	if headers.Valid && headers.String != "" {
		if err := json.Unmarshal([]byte(headers.String), &ev.Headers); err != nil {
			return nil, 0, fmt.Errorf("event %s/%s: headers: %w", app, id, err)
		}
	}
	return ev, seq, nil
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
