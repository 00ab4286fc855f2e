package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/cassata/cassata/scheduler"
)

const (
	// Runs per status other than COMPLETED, then all runs under the name
	// '' (no status has it): COMPLETED is the rest. In one statement, so
	// both counts come from the same snapshot. SQLite's status index leaves
	// COMPLETED out (migration 0005), so counting it by status would read
	// the whole table; counting all runs reads the smallest index.
	countByStatus = `SELECT status, COUNT(*) FROM events WHERE status <> 'COMPLETED' GROUP BY status
UNION ALL SELECT '', COUNT(*) FROM events`
	// Minutes are whole multiples of 60000 ms; % is integer remainder in
	// both dialects. An attempt without a 2xx answer counts as a failure.
	attemptsPerMinute = `SELECT at_ms - at_ms % 60000 AS minute, COUNT(*),
    SUM(CASE WHEN status_code >= 200 AND status_code < 300 THEN 0 ELSE 1 END)
FROM attempts WHERE at_ms >= ? GROUP BY minute ORDER BY minute`
)

// Counts implements scheduler.Archive: runs per status (statuses without
// runs are left out).
func (s *Store) Counts(ctx context.Context) (map[scheduler.Status]int64, error) {
	rows, err := s.db.QueryContext(ctx, countByStatus)
	if err != nil {
		return nil, unavailable("count events", err)
	}
	defer rows.Close()
	out := map[scheduler.Status]int64{}
	var all, others int64
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, unavailable("count events", err)
		}
		if st == "" {
			all = n
			continue
		}
		out[scheduler.Status(st)] = n
		others += n
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("count events", err)
	}
	if completed := all - others; completed > 0 {
		out[scheduler.StatusCompleted] = completed
	}
	return out, nil
}

// PerMinute implements scheduler.Archive: attempts and failed attempts
// per minute since a time, oldest first; minutes without attempts are left out.
func (s *Store) PerMinute(ctx context.Context, since time.Time) ([]scheduler.MinuteStat, error) {
	rows, err := s.db.QueryContext(ctx, attemptsPerMinute, since.UnixMilli())
	if err != nil {
		return nil, unavailable("attempts per minute", err)
	}
	defer rows.Close()
	var out []scheduler.MinuteStat
	for rows.Next() {
		var minute, total, failed int64
		if err := rows.Scan(&minute, &total, &failed); err != nil {
			return nil, unavailable("attempts per minute", err)
		}
		out = append(out, scheduler.MinuteStat{Minute: time.UnixMilli(minute).UTC(), Deliveries: total, Failures: failed})
	}
	return out, unavailable("attempts per minute", rows.Err())
}

// unavailable marks a database failure as unavailability (nil stays nil).
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("archive %s: %w: %w", op, scheduler.ErrUnavailable, err)
}
