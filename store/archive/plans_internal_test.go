package archive

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// TestSQLiteQueryPlans asserts how SQLite runs every read of the archive:
// each search shape seeks the index meant for it (or walks events in seq
// order, which is the page order), so that dropping or narrowing an index
// (migration 0005) cannot silently turn a search into a scan and a sort.
// The plans are those of a fresh archive without ANALYZE statistics, which
// is what every archive has: nothing runs ANALYZE.
func TestSQLiteQueryPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "archive.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	const (
		// The rowid b-tree in seq order: the page order, no sort. Only
		// filters that match most runs (or none can narrow) read it.
		bySeq = "SCAN events"
		sort  = "USE TEMP B-TREE FOR ORDER BY"
	)
	from, to := time.UnixMilli(1_700_000_000_000), time.UnixMilli(1_700_000_600_000)
	cursor := EncodeCursor(42)
	searches := []struct {
		name string
		q    scheduler.SearchQuery
		want string // a line of the plan
		sort bool   // whether the plan sorts (as it did before 0005)
	}{
		{"all", scheduler.SearchQuery{}, bySeq, false},
		{"cursor", scheduler.SearchQuery{Cursor: cursor}, "SEARCH events USING INTEGER PRIMARY KEY (rowid<?)", false},
		{"app", scheduler.SearchQuery{App: "shop"}, "SEARCH events USING INDEX events_app_seq (app=?)", false},
		{"app, cursor", scheduler.SearchQuery{App: "shop", Cursor: cursor}, "SEARCH events USING INDEX events_app_seq (app=? AND seq<?)", false},
		{"status", scheduler.SearchQuery{Status: scheduler.StatusFailed}, "SEARCH events USING INDEX events_status_seq (status=?)", false},
		{"status, cursor", scheduler.SearchQuery{Status: scheduler.StatusPending, Cursor: cursor}, "SEARCH events USING INDEX events_status_seq (status=? AND seq<?)", false},
		{"app, status", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusFailed}, "SEARCH events USING INDEX events_app_status_seq (app=? AND status=?)", false},
		{"one of statuses", scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusCancelled}}, "SEARCH events USING INDEX events_status_seq (status=?)", false},
		{"statuses", scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}}, "SEARCH events USING INDEX events_status_seq (status=?)", true},
		{"app, statuses", scheduler.SearchQuery{App: "shop", Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}}, "SEARCH events USING INDEX events_app_seq (app=?)", false},
		// COMPLETED has no index entries: most runs are COMPLETED, so the
		// newest of them are the newest runs.
		{"status completed", scheduler.SearchQuery{Status: scheduler.StatusCompleted}, bySeq, false},
		{"statuses with completed", scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusCompleted, scheduler.StatusFailed}}, bySeq, false},
		{"app, status completed", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusCompleted}, "SEARCH events USING INDEX events_app_seq (app=?)", false},
		// A URL substring cannot use an index; within an app it reads the app's runs.
		{"q", scheduler.SearchQuery{Q: "order-"}, bySeq, false},
		{"app, q", scheduler.SearchQuery{App: "shop", Q: "order-"}, "SEARCH events USING INDEX events_app_seq (app=?)", false},
		{"due range", scheduler.SearchQuery{From: from, To: to}, "SEARCH events USING INDEX events_due (due_ms>? AND due_ms<?)", true},
	}
	for _, tc := range searches {
		query, args, err := searchQuery(tc.q, 50)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		plan := explain(t, s, query, args...)
		if !strings.Contains(plan, "\n"+tc.want+"\n") {
			t.Errorf("search %s: plan\n%s\nhas no line %q", tc.name, plan, tc.want)
		}
		if got := strings.Contains(plan, sort); got != tc.sort {
			t.Errorf("search %s: plan\n%s\nsorts: %v, want %v", tc.name, plan, got, tc.sort)
		}
	}

	reads := []struct {
		name, query string
		args        []any
		want        []string // lines of the plan
	}{
		{"get", selectLatestRun, []any{"shop", "e1"}, []string{"SEARCH events USING INDEX sqlite_autoindex_events_1 (app=? AND event_id=?)"}},
		{"history", selectHistory, []any{"shop", "e1", 1}, []string{"SEARCH attempts USING INDEX attempts_once (created_ms=? AND app=? AND event_id=?)"}},
		{"histories", selectHistoriesHead + selectHistoriesRun + " OR " + selectHistoriesRun + selectHistoriesOrder, []any{"shop", "e1", 1, "shop", "e2", 2},
			[]string{"SEARCH attempts USING INDEX attempts_once (created_ms=? AND app=? AND event_id=?)"}},
		{"per minute", attemptsPerMinute, []any{1}, []string{"SEARCH attempts USING INDEX attempts_at (at_ms>?)"}},
		{"counts", countByStatus, nil, []string{"SCAN events USING COVERING INDEX events_status_seq", "SCAN events USING COVERING INDEX events_due"}},
	}
	for _, tc := range reads {
		plan := explain(t, s, tc.query, tc.args...)
		for _, line := range tc.want {
			if !strings.Contains(plan, "\n"+line+"\n") {
				t.Errorf("%s: plan\n%s\nhas no line %q", tc.name, plan, line)
			}
		}
	}
}

// explain returns the detail lines of SQLite's plan for query, each after
// a newline and followed by one.
func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("\n")
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
