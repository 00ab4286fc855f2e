package archive_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

// runSuite runs every archive behaviour against one dialect. open returns a
// store on a fresh, empty database (not migrated) that lives until the test
// ends; subtests run in parallel, each on its own database.
func runSuite(t *testing.T, open func(t *testing.T) *archive.Store) {
	setup := func(t *testing.T) *archive.Store {
		t.Helper()
		s := open(t)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *archive.Store)
		raw  bool // gets the store before Migrate
	}{
		{"MigrateTwice", testMigrateTwice, true},
		{"Lifecycle", testLifecycle, false},
		{"SameBatchTwice", testSameBatchTwice, false},
		{"StatementSizes", testStatementSizes, false},
		{"OutOfOrder", testOutOfOrder, false},
		{"OlderNeverOverwritesNewer", testOlderNeverOverwritesNewer, false},
		{"StaleAttempt", testStaleAttempt, false},
		{"RetryContinuesRun", testRetryContinuesRun, false},
		{"SecondRun", testSecondRun, false},
		{"GetNotFound", testGetNotFound, false},
		{"InvalidRecord", testInvalidRecord, false},
		{"SearchFilters", testSearchFilters, false},
		{"SearchLiteralPatterns", testSearchLiteralPatterns, false},
		{"Pagination", testPagination, false},
		{"SearchInvalidInput", testSearchInvalidInput, false},
		{"LargeBodies", testLargeBodies, false},
		{"EmptyBodyIsKnown", testEmptyBodyIsKnown, false},
		{"ConcurrentWriters", testConcurrentWriters, false},
		{"WriteThroughput", testWriteThroughput, false},
		{"FlowKey", testFlowKey, false},
		{"FlowKeyMigrationRunAgain", testFlowKeyMigrationRunAgain, false},
		{"StatusMoves", testStatusMoves, false},
		{"CreateOnlyRows", testCreateOnlyRows, false},
		{"LeanIndexesMigrationRunAgain", testLeanIndexesMigrationRunAgain, false},
		{"UpgradeFrom0004", testUpgradeFrom0004, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s *archive.Store
			if tc.raw {
				s = open(t)
			} else {
				s = setup(t)
			}
			tc.fn(t, s)
		})
	}
}

// --- records ------------------------------------------------------------

const (
	testApp  = "shop"
	t0       = int64(1_700_000_000_000) // a creation time, Unix ms
	testBody = `{"order":42}`
)

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

// request is what a create carries.
func request(app, id string, created int64) *scheduler.Event {
	return &scheduler.Event{
		App:         app,
		ID:          id,
		URL:         "https://example.com/hooks/" + id,
		Method:      "POST",
		Headers:     map[string]string{"Content-Type": "application/json", "X-Trace": id},
		DueAt:       ms(created + 60_000),
		Status:      scheduler.StatusPending,
		MaxAttempts: 5,
		Timeout:     30 * time.Second,
		MinBackoff:  time.Second,
		MaxBackoff:  10 * time.Minute,
		CreatedAt:   ms(created),
		UpdatedAt:   ms(created),
	}
}

func createRec(app, id string, created int64) scheduler.Record {
	return scheduler.Record{
		Shard: 3, StreamID: fmt.Sprintf("%d-0", created), Kind: scheduler.RecordCreate,
		App: app, ID: id, CreatedMS: created, UpdatedMS: created,
		Status: scheduler.StatusPending, Event: request(app, id, created),
	}
}

func attemptRec(app, id string, created, at int64, n, code int, msg string) scheduler.Record {
	return scheduler.Record{
		Shard: 3, StreamID: fmt.Sprintf("%d-1", at), Kind: scheduler.RecordAttempt,
		App: app, ID: id, CreatedMS: created, UpdatedMS: at, Status: scheduler.StatusPending,
		Attempt: &scheduler.Attempt{Attempt: n, At: at, StatusCode: code, Error: msg, DurationMS: 25, Worker: "w1", Response: "busy"},
		// As the outbox reports it: the retry's due time, nothing else.
		Event: &scheduler.Event{App: app, ID: id, DueAt: ms(at + 1000), Status: scheduler.StatusPending},
	}
}

func finalRec(app, id string, created, at int64, n int, status scheduler.Status, code int) scheduler.Record {
	ev := request(app, id, created)
	ev.Body = []byte(testBody)
	ev.Status = status
	ev.Attempts = n
	ev.LastStatusCode = code
	ev.Worker = "w2"
	ev.UpdatedAt = ms(at)
	ev.FinishedAt = ms(at)
	return scheduler.Record{
		Shard: 3, StreamID: fmt.Sprintf("%d-2", at), Kind: scheduler.RecordFinal,
		App: app, ID: id, CreatedMS: created, UpdatedMS: at, Status: status, Event: ev,
		Attempt: &scheduler.Attempt{Attempt: n, At: at, StatusCode: code, DurationMS: 40, Worker: "w2", Response: "ok"},
	}
}

// outboxCreateRec is a create record as the outbox reads one: url, method,
// due time and flow key; the rest of the request comes with the final
// record. Write upserts such rows with its narrow statement (createRow).
func outboxCreateRec(app, id string, created int64) scheduler.Record {
	r := createRec(app, id, created)
	ev := r.Event
	r.Event = &scheduler.Event{App: app, ID: id, URL: ev.URL, Method: ev.Method, DueAt: ev.DueAt,
		Status: scheduler.StatusPending, CreatedAt: ev.CreatedAt, UpdatedAt: ev.UpdatedAt}
	return r
}

// lifecycle is a run that failed once (503) and then completed (200).
func lifecycle(app, id string, created int64) []scheduler.Record {
	return []scheduler.Record{
		createRec(app, id, created),
		attemptRec(app, id, created, created+60_100, 1, 503, "503 Service Unavailable"),
		finalRec(app, id, created, created+61_200, 2, scheduler.StatusCompleted, 200),
	}
}

// --- helpers ------------------------------------------------------------

func write(t *testing.T, s *archive.Store, records ...scheduler.Record) {
	t.Helper()
	if err := s.Write(context.Background(), records); err != nil {
		t.Fatalf("Write(%d records): %v", len(records), err)
	}
}

func get(t *testing.T, s *archive.Store, app, id string) *scheduler.Event {
	t.Helper()
	ev, err := s.Get(context.Background(), app, id)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", app, id, err)
	}
	return ev
}

func count(t *testing.T, s *archive.Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func search(t *testing.T, s *archive.Store, q scheduler.SearchQuery) scheduler.SearchPage {
	t.Helper()
	page, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return page
}

func ids(events []*scheduler.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// checkCompleted asserts the merged state of lifecycle(app, id, created).
func checkCompleted(t *testing.T, ev *scheduler.Event, app, id string, created int64) {
	t.Helper()
	want := request(app, id, created)
	finishedAt := ms(created + 61_200)
	checks := []struct {
		name      string
		got, want any
	}{
		{"App", ev.App, app},
		{"ID", ev.ID, id},
		{"URL", ev.URL, want.URL},
		{"Method", ev.Method, "POST"},
		{"Body", string(ev.Body), testBody},
		{"BodyDropped", ev.BodyDropped, false},
		{"DueAt", ev.DueAt, want.DueAt},
		{"Status", ev.Status, scheduler.StatusCompleted},
		{"Attempts", ev.Attempts, 2},
		{"MaxAttempts", ev.MaxAttempts, 5},
		{"Timeout", ev.Timeout, 30 * time.Second},
		{"MinBackoff", ev.MinBackoff, time.Second},
		{"MaxBackoff", ev.MaxBackoff, 10 * time.Minute},
		{"CreatedAt", ev.CreatedAt, ms(created)},
		{"UpdatedAt", ev.UpdatedAt, finishedAt},
		{"FinishedAt", ev.FinishedAt, finishedAt},
		{"LastStatusCode", ev.LastStatusCode, 200},
		{"LastError", ev.LastError, ""},
		{"Worker", ev.Worker, "w2"},
		{"CreatedAt location", ev.CreatedAt.Location(), time.UTC},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !maps.Equal(ev.Headers, want.Headers) {
		t.Errorf("Headers = %v, want %v", ev.Headers, want.Headers)
	}
	wantHistory := []scheduler.Attempt{
		{Attempt: 1, At: created + 60_100, StatusCode: 503, Error: "503 Service Unavailable", DurationMS: 25, Worker: "w1", Response: "busy"},
		{Attempt: 2, At: created + 61_200, StatusCode: 200, DurationMS: 40, Worker: "w2", Response: "ok"},
	}
	if !slices.Equal(ev.History, wantHistory) {
		t.Errorf("History =\n  %+v\nwant\n  %+v", ev.History, wantHistory)
	}
}

// --- tests --------------------------------------------------------------

func testMigrateTwice(t *testing.T, s *archive.Store) {
	ctx := context.Background()
	for i := range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	// Every migration file of the dialect is applied once.
	files, err := os.ReadDir(filepath.Join("migrations", s.Dialect()))
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(files))
	if v, err := s.SchemaVersion(ctx); err != nil || v != want {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
	if n := count(t, s, "schema_migrations"); int64(n) != want {
		t.Fatalf("schema_migrations has %d rows, want %d", n, want)
	}
	write(t, s, lifecycle(testApp, "m1", t0)...)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate with data: %v", err)
	}
	checkCompleted(t, get(t, s, testApp, "m1"), testApp, "m1", t0)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testLifecycle(t *testing.T, s *archive.Store) {
	recs := lifecycle(testApp, "order-1", t0)

	write(t, s, recs[0])
	ev := get(t, s, testApp, "order-1")
	if ev.Status != scheduler.StatusPending || ev.Body != nil || ev.URL == "" || ev.Attempts != 0 || !ev.FinishedAt.IsZero() || ev.History != nil {
		t.Fatalf("after create: %+v", ev)
	}

	write(t, s, recs[1])
	ev = get(t, s, testApp, "order-1")
	if ev.Status != scheduler.StatusPending || ev.Attempts != 1 || ev.LastStatusCode != 503 || ev.LastError != "503 Service Unavailable" || len(ev.History) != 1 {
		t.Fatalf("after attempt: %+v", ev)
	}
	if ev.DueAt != ms(t0+61_100) {
		t.Fatalf("after attempt: DueAt = %v, want the retry's %v", ev.DueAt, ms(t0+61_100))
	}
	if ev.URL != recs[0].Event.URL || ev.MaxAttempts != 5 {
		t.Fatalf("the attempt lost what the create told: %+v", ev)
	}

	write(t, s, recs[2])
	checkCompleted(t, get(t, s, testApp, "order-1"), testApp, "order-1", t0)
}

func testSameBatchTwice(t *testing.T, s *archive.Store) {
	var batch []scheduler.Record
	for i := range 20 {
		batch = append(batch, lifecycle(testApp, fmt.Sprintf("dup-%02d", i), t0+int64(i))...)
	}
	write(t, s, batch...)
	write(t, s, batch...)
	// Replayed in other groupings too, as reclaimed stream entries would be.
	write(t, s, batch[:7]...)
	write(t, s, batch[5:31]...)
	if n := count(t, s, "events"); n != 20 {
		t.Errorf("events rows = %d, want 20", n)
	}
	if n := count(t, s, "attempts"); n != 40 {
		t.Errorf("attempts rows = %d, want 40", n)
	}
	for i := range 20 {
		id := fmt.Sprintf("dup-%02d", i)
		checkCompleted(t, get(t, s, testApp, id), testApp, id, t0+int64(i))
	}
}

// testStatementSizes writes batches whose row counts are not powers of two
// and exceed one statement: every row lands once, with its values, whatever
// the split into statements, and a replay in another grouping changes
// nothing.
func testStatementSizes(t *testing.T, s *archive.Store) {
	runs := 0
	for _, n := range []int{1, 3, 255, 256, 257, 611} {
		app := fmt.Sprintf("size-%d", n)
		var creates, rest []scheduler.Record
		for i := range n {
			recs := lifecycle(app, fmt.Sprintf("e%04d", i), t0+int64(i))
			creates = append(creates, recs[0])
			rest = append(rest, recs[1:]...)
		}
		write(t, s, creates...) // n new rows
		write(t, s, rest...)    // n updates, 2n attempts
		write(t, s, slices.Concat(rest, creates)...)
		runs += n
		if got := count(t, s, "events"); got != runs {
			t.Fatalf("after %d runs of %s: events rows = %d, want %d", n, app, got, runs)
		}
		if got := count(t, s, "attempts"); got != 2*runs {
			t.Fatalf("after %d runs of %s: attempts rows = %d, want %d", n, app, got, 2*runs)
		}
		for i := range n {
			id := fmt.Sprintf("e%04d", i)
			checkCompleted(t, get(t, s, app, id), app, id, t0+int64(i))
		}
	}
}

func testOutOfOrder(t *testing.T, s *archive.Store) {
	// One record per batch, newest first.
	recs := lifecycle(testApp, "late-create", t0)
	for _, r := range slices.Backward(recs) {
		write(t, s, r)
	}
	checkCompleted(t, get(t, s, testApp, "late-create"), testApp, "late-create", t0)

	// All in one batch, newest first.
	recs = lifecycle(testApp, "one-batch", t0)
	slices.Reverse(recs)
	write(t, s, recs...)
	checkCompleted(t, get(t, s, testApp, "one-batch"), testApp, "one-batch", t0)

	// Final, then create: the create fills nothing it would change.
	recs = lifecycle(testApp, "final-first", t0)
	write(t, s, recs[2])
	write(t, s, recs[0])
	ev := get(t, s, testApp, "final-first")
	if ev.Status != scheduler.StatusCompleted || ev.Attempts != 2 || string(ev.Body) != testBody || ev.FinishedAt.IsZero() {
		t.Fatalf("final then create: %+v", ev)
	}
	write(t, s, recs[1])
	checkCompleted(t, get(t, s, testApp, "final-first"), testApp, "final-first", t0)
}

func testOlderNeverOverwritesNewer(t *testing.T, s *archive.Store) {
	// An attempt whose run has no row yet inserts one with what it has.
	a := attemptRec(testApp, "orphan", t0, t0+100, 1, 500, "boom")
	write(t, s, a)
	ev := get(t, s, testApp, "orphan")
	if ev.Status != scheduler.StatusPending || ev.Attempts != 1 || ev.LastStatusCode != 500 || ev.URL != "" || len(ev.History) != 1 {
		t.Fatalf("attempt without create: %+v", ev)
	}
	// The create is older: it fills url and policy but leaves the outcome.
	write(t, s, createRec(testApp, "orphan", t0))
	ev = get(t, s, testApp, "orphan")
	if ev.URL == "" || ev.MaxAttempts != 5 || ev.Attempts != 1 || ev.LastStatusCode != 500 || ev.LastError != "boom" {
		t.Fatalf("late create: %+v", ev)
	}
	// A newer record with the same fields wins; equal UpdatedMS wins too
	// (the later write of the same moment).
	b := attemptRec(testApp, "orphan", t0, t0+100, 1, 502, "bad gateway")
	b.Attempt.Worker = "w9"
	write(t, s, b)
	if ev = get(t, s, testApp, "orphan"); ev.LastStatusCode != 502 || len(ev.History) != 2 {
		t.Fatalf("equal UpdatedMS: %+v", ev)
	}
	// An older one loses.
	c := attemptRec(testApp, "orphan", t0, t0+50, 1, 418, "teapot")
	write(t, s, c)
	if ev = get(t, s, testApp, "orphan"); ev.LastStatusCode != 502 || ev.UpdatedAt != ms(t0+100) {
		t.Fatalf("older attempt overwrote: %+v", ev)
	}
	if len(ev.History) != 3 || ev.History[0].StatusCode != 418 {
		t.Fatalf("history not ordered by time: %+v", ev.History)
	}
}

func testStaleAttempt(t *testing.T, s *archive.Store) {
	recs := lifecycle(testApp, "stale", t0)
	write(t, s, recs...)
	st := attemptRec(testApp, "stale", t0, t0+70_000, 2, 200, "")
	st.Status = scheduler.StatusCompleted
	st.Attempt.Stale = true
	st.Attempt.Worker = "w-old"
	write(t, s, st)
	ev := get(t, s, testApp, "stale")
	if ev.UpdatedAt != ms(t0+61_200) || ev.Worker != "w2" || ev.FinishedAt != ms(t0+61_200) {
		t.Fatalf("a stale attempt changed the run: %+v", ev)
	}
	if len(ev.History) != 3 || !ev.History[2].Stale || ev.History[2].Worker != "w-old" {
		t.Fatalf("stale attempt not in history: %+v", ev.History)
	}
}

func testRetryContinuesRun(t *testing.T, s *archive.Store) {
	id := "retried"
	write(t, s, createRec(testApp, id, t0))
	write(t, s, finalRec(testApp, id, t0, t0+61_000, 1, scheduler.StatusFailed, 404))
	// An operator retries: PENDING, due now, attempts reset to 0.
	ev := request(testApp, id, t0)
	ev.DueAt, ev.Attempts = ms(t0+90_000), 0
	write(t, s, scheduler.Record{
		Kind: scheduler.RecordRequeue, App: testApp, ID: id, CreatedMS: t0, UpdatedMS: t0 + 90_000,
		Status: scheduler.StatusPending, Event: &scheduler.Event{DueAt: ev.DueAt},
	})
	got := get(t, s, testApp, id)
	if got.Status != scheduler.StatusPending || got.Attempts != 0 || !got.FinishedAt.IsZero() || got.DueAt != ms(t0+90_000) {
		t.Fatalf("after requeue: %+v", got)
	}
	if got.LastStatusCode != 404 || string(got.Body) != testBody || got.URL == "" {
		t.Fatalf("requeue lost what it does not tell: %+v", got)
	}
	write(t, s, finalRec(testApp, id, t0, t0+91_000, 1, scheduler.StatusCompleted, 200))
	got = get(t, s, testApp, id)
	if got.Status != scheduler.StatusCompleted || got.Attempts != 1 || got.FinishedAt != ms(t0+91_000) {
		t.Fatalf("after the retried delivery: %+v", got)
	}
	if len(got.History) != 2 || got.History[0].StatusCode != 404 || got.History[1].StatusCode != 200 {
		t.Fatalf("history = %+v, want the 404 then the 200", got.History)
	}
	if n := count(t, s, "events"); n != 1 {
		t.Fatalf("a retry made %d rows, want 1", n)
	}
}

func testSecondRun(t *testing.T, s *archive.Store) {
	id := "reused"
	write(t, s, lifecycle(testApp, id, t0)...)
	t1 := t0 + 86_400_000 // the identity is created again after retention
	write(t, s, createRec(testApp, id, t1), attemptRec(testApp, id, t1, t1+60_001, 1, 500, "again"))
	if n := count(t, s, "events"); n != 2 {
		t.Fatalf("events rows = %d, want 2 runs", n)
	}
	ev := get(t, s, testApp, id)
	if ev.CreatedAt != ms(t1) || ev.Status != scheduler.StatusPending || ev.Attempts != 1 || ev.Body != nil {
		t.Fatalf("Get returned %+v, want the second run", ev)
	}
	if len(ev.History) != 1 || ev.History[0].Error != "again" {
		t.Fatalf("history mixes runs: %+v", ev.History)
	}
	// Archived in reverse (the old run's final arrives late): still the newest.
	write(t, s, finalRec(testApp, id, t0, t0+99_999_999, 2, scheduler.StatusCompleted, 200))
	if ev := get(t, s, testApp, id); ev.CreatedAt != ms(t1) {
		t.Fatalf("Get returned the run created %v, want %v", ev.CreatedAt, ms(t1))
	}
	page := search(t, s, scheduler.SearchQuery{App: testApp})
	if len(page.Events) != 2 || page.Events[0].CreatedAt != ms(t1) || page.Events[1].CreatedAt != ms(t0) {
		t.Fatalf("search = %v, want both runs, newest first", page.Events)
	}
}

func testGetNotFound(t *testing.T, s *archive.Store) {
	write(t, s, lifecycle(testApp, "exists", t0)...)
	for _, c := range [][2]string{{testApp, "missing"}, {"other", "exists"}, {testApp, "exist"}} {
		if _, err := s.Get(context.Background(), c[0], c[1]); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("Get(%s, %s) err = %v, want ErrNotFound", c[0], c[1], err)
		}
	}
}

func testInvalidRecord(t *testing.T, s *archive.Store) {
	bad := createRec(testApp, "", t0)
	err := s.Write(context.Background(), []scheduler.Record{createRec(testApp, "good", t0), bad})
	if !errors.Is(err, scheduler.ErrInvalid) {
		t.Fatalf("Write with an empty id: err = %v, want ErrInvalid", err)
	}
	if n := count(t, s, "events"); n != 0 {
		t.Fatalf("a refused batch wrote %d rows", n)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Fatalf("Write(nil): %v", err)
	}
}

func testSearchFilters(t *testing.T, s *archive.Store) {
	// Archived in this order; due times 1..6 minutes after t0.
	type row struct {
		app, id, url string
		status       scheduler.Status
	}
	rows := []row{
		{"shop", "order-1", "https://shop.example/paid", scheduler.StatusCompleted},
		{"shop", "order-2", "https://shop.example/paid", scheduler.StatusFailed},
		{"shop", "refund-1", "https://billing.example/refund", scheduler.StatusPending},
		{"blog", "order-3", "https://blog.example/comment", scheduler.StatusCompleted},
		{"blog", "post-1", "https://blog.example/paid-post", scheduler.StatusFailed},
		{"shop", "Order-4", "https://shop.example/PAID", scheduler.StatusCompleted},
	}
	for i, r := range rows {
		c := createRec(r.app, r.id, t0)
		c.UpdatedMS = t0 + int64(i)
		c.Event.URL = r.url
		c.Event.DueAt = ms(t0 + int64(i+1)*60_000)
		c.Status = r.status
		write(t, s, c)
	}
	tests := []struct {
		name string
		q    scheduler.SearchQuery
		want []string
	}{
		{"all, newest first", scheduler.SearchQuery{}, []string{"Order-4", "post-1", "order-3", "refund-1", "order-2", "order-1"}},
		{"app", scheduler.SearchQuery{App: "blog"}, []string{"post-1", "order-3"}},
		{"status", scheduler.SearchQuery{Status: scheduler.StatusFailed}, []string{"post-1", "order-2"}},
		{"app and status", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusCompleted}, []string{"Order-4", "order-1"}},
		{"status completed", scheduler.SearchQuery{Status: scheduler.StatusCompleted}, []string{"Order-4", "order-3", "order-1"}},
		{"status pending", scheduler.SearchQuery{Status: scheduler.StatusPending}, []string{"refund-1"}},
		{"app and status failed", scheduler.SearchQuery{App: "blog", Status: scheduler.StatusFailed}, []string{"post-1"}},
		{"statuses", scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusPending}}, []string{"post-1", "refund-1", "order-2"}},
		{"statuses with completed", scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusPending, scheduler.StatusCompleted}}, []string{"Order-4", "order-3", "refund-1", "order-1"}},
		{"app and statuses", scheduler.SearchQuery{App: "shop", Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusCancelled}}, []string{"order-2"}},
		{"status and statuses", scheduler.SearchQuery{Status: scheduler.StatusCompleted, Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusCompleted}}, []string{"Order-4", "order-3", "order-1"}},
		{"status and statuses disjoint", scheduler.SearchQuery{Status: scheduler.StatusCompleted, Statuses: []scheduler.Status{scheduler.StatusFailed}}, nil},
		{"id prefix", scheduler.SearchQuery{Q: "order-"}, []string{"order-3", "order-2", "order-1"}},
		{"id prefix is case-sensitive", scheduler.SearchQuery{Q: "Order"}, []string{"Order-4"}},
		{"id prefix, not infix", scheduler.SearchQuery{Q: "der-"}, nil},
		{"url substring", scheduler.SearchQuery{Q: "paid"}, []string{"post-1", "order-2", "order-1"}},
		{"url substring and app", scheduler.SearchQuery{Q: "paid", App: "shop"}, []string{"order-2", "order-1"}},
		{"url substring or id prefix", scheduler.SearchQuery{Q: "re"}, []string{"refund-1"}},
		{"url host", scheduler.SearchQuery{Q: "billing.example"}, []string{"refund-1"}},
		{"due from (inclusive)", scheduler.SearchQuery{From: ms(t0 + 5*60_000)}, []string{"Order-4", "post-1"}},
		{"due to (exclusive)", scheduler.SearchQuery{To: ms(t0 + 2*60_000)}, []string{"order-1"}},
		{"due range", scheduler.SearchQuery{From: ms(t0 + 2*60_000), To: ms(t0 + 4*60_000)}, []string{"refund-1", "order-2"}},
		{"everything", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusFailed, Q: "order", From: ms(t0), To: ms(t0 + 3*60_000)}, []string{"order-2"}},
		{"nothing", scheduler.SearchQuery{App: "nobody"}, nil},
	}
	for _, tc := range tests {
		page := search(t, s, tc.q)
		if got := ids(page.Events); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if page.NextCursor != "" {
			t.Errorf("%s: NextCursor = %q on the only page", tc.name, page.NextCursor)
		}
		for _, ev := range page.Events {
			if ev.History != nil {
				t.Errorf("%s: search returned history", tc.name)
			}
		}
	}
	page := search(t, s, scheduler.SearchQuery{Q: "refund-1"})
	if len(page.Events) != 1 || page.Events[0].URL != "https://billing.example/refund" || page.Events[0].DueAt != ms(t0+3*60_000) || page.Events[0].Headers["X-Trace"] != "refund-1" {
		t.Errorf("search result not mapped: %+v", page.Events)
	}
}

func testSearchLiteralPatterns(t *testing.T, s *archive.Store) {
	for i, c := range []struct{ id, url string }{
		{"pct%1", "https://a.example/x"},
		{"pctx1", "https://a.example/x"},
		{"und_1", "https://a.example/x"},
		{"undx1", "https://a.example/x"},
		{`bs\1`, "https://a.example/x"},
		{"bsx1", "https://a.example/x"},
		{"ex!1", "https://a.example/x"},
		{"exx1", "https://a.example/x"},
		{"u1", "https://b.example/p%20q"},
		{"u2", "https://b.example/p2q"},
		{"u3", "https://b.example/a_b"},
		{"u4", "https://b.example/axb"},
	} {
		r := createRec(testApp, c.id, t0)
		r.UpdatedMS += int64(i)
		r.Event.URL = c.url
		write(t, s, r)
	}
	for q, want := range map[string][]string{
		"pct%":  {"pct%1"},
		"und_":  {"und_1"},
		`bs\`:   {`bs\1`},
		"ex!":   {"ex!1"},
		"%":     {"u1"},
		"_":     {"u3"},
		"%20":   {"u1"},
		"a_b":   {"u3"},
		"p%":    {"u1"}, // not "every url with a p"
		"!":     nil,
		`\`:     nil,
		"[a-z]": nil,
	} {
		page := search(t, s, scheduler.SearchQuery{Q: q})
		if got := ids(page.Events); !slices.Equal(got, want) {
			t.Errorf("Q=%q: got %v, want %v", q, got, want)
		}
	}
}

func testPagination(t *testing.T, s *archive.Store) {
	const total, limit = 1234, 100
	app := "paged"
	var batch []scheduler.Record
	for i := range total {
		r := createRec(app, fmt.Sprintf("ev-%05d", i), t0+int64(i))
		batch = append(batch, r)
		if len(batch) == 500 || i == total-1 {
			write(t, s, batch...)
			batch = batch[:0]
		}
	}
	var got []string
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		page := search(t, s, scheduler.SearchQuery{App: app, Limit: limit, Cursor: cursor})
		pages++
		for _, ev := range page.Events {
			if seen[ev.ID] {
				t.Fatalf("page %d repeats %s", pages, ev.ID)
			}
			seen[ev.ID] = true
			got = append(got, ev.ID)
		}
		if page.NextCursor == "" {
			if len(page.Events) != total%limit {
				t.Errorf("last page has %d events, want %d", len(page.Events), total%limit)
			}
			break
		}
		if len(page.Events) != limit {
			t.Fatalf("page %d has %d events and a next cursor", pages, len(page.Events))
		}
		// New runs arrive between page fetches; they are newer than the
		// cursor and belong on a fresh first page, not on later pages.
		var fresh []scheduler.Record
		for j := range 7 {
			fresh = append(fresh, createRec(app, fmt.Sprintf("new-%02d-%d", pages, j), t0+1_000_000+int64(pages*10+j)))
		}
		write(t, s, fresh...)
		if pages > total {
			t.Fatal("pagination does not end")
		}
		cursor = page.NextCursor
	}
	if want := (total + limit - 1) / limit; pages != want {
		t.Errorf("%d pages, want %d", pages, want)
	}
	if len(got) != total {
		t.Fatalf("visited %d events, want %d", len(got), total)
	}
	for i, id := range got {
		if want := fmt.Sprintf("ev-%05d", total-1-i); id != want {
			t.Fatalf("position %d: %s, want %s (newest first, no gaps)", i, id, want)
		}
	}
	// A new search starts with the runs that arrived meanwhile.
	first := search(t, s, scheduler.SearchQuery{App: app, Limit: 3})
	if got := ids(first.Events); !slices.Equal(got, []string{"new-12-6", "new-12-5", "new-12-4"}) {
		t.Errorf("fresh first page = %v", got)
	}
	if first.NextCursor == "" {
		t.Error("fresh first page has no next cursor")
	}
	// Default limit.
	if page := search(t, s, scheduler.SearchQuery{App: app}); len(page.Events) != scheduler.DefaultSearchLimit || page.NextCursor == "" {
		t.Errorf("default limit: %d events, cursor %q", len(page.Events), page.NextCursor)
	}
	// Maximum limit.
	if page := search(t, s, scheduler.SearchQuery{App: app, Limit: scheduler.MaxSearchLimit}); len(page.Events) != scheduler.MaxSearchLimit {
		t.Errorf("limit 500: %d events", len(page.Events))
	}
}

func testSearchInvalidInput(t *testing.T, s *archive.Store) {
	write(t, s, lifecycle(testApp, "x", t0)...)
	tests := []struct {
		name  string
		q     scheduler.SearchQuery
		field string
	}{
		{"not base64", scheduler.SearchQuery{Cursor: "!!!"}, "cursor"},
		{"no version", scheduler.SearchQuery{Cursor: "MTIz"}, "cursor"},       // "123"
		{"wrong version", scheduler.SearchQuery{Cursor: "OToxMjM"}, "cursor"}, // "9:123"
		{"not a number", scheduler.SearchQuery{Cursor: "MTphYmM"}, "cursor"},  // "1:abc"
		{"zero", scheduler.SearchQuery{Cursor: "MTow"}, "cursor"},             // "1:0"
		{"limit 501", scheduler.SearchQuery{Limit: 501}, "limit"},
		{"negative limit", scheduler.SearchQuery{Limit: -1}, "limit"},
		{"unknown status", scheduler.SearchQuery{Status: "DONE"}, "status"},
	}
	for _, tc := range tests {
		_, err := s.Search(context.Background(), tc.q)
		if !errors.Is(err, scheduler.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
			continue
		}
		var ve *scheduler.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("%s: err = %#v, want a ValidationError for %q", tc.name, err, tc.field)
		}
	}
	// A valid cursor from another search is just a position.
	if _, err := s.Search(context.Background(), scheduler.SearchQuery{Cursor: archive.EncodeCursor(1 << 40)}); err != nil {
		t.Errorf("valid cursor: %v", err)
	}
}

// testLargeBodies writes a batch whose bodies together exceed one
// statement's budget, so it is split across statements in one transaction.
func testLargeBodies(t *testing.T, s *archive.Store) {
	body := make([]byte, 900<<10)
	for i := range body {
		body[i] = byte(i)
	}
	var batch []scheduler.Record
	for i := range 12 {
		r := finalRec(testApp, fmt.Sprintf("big-%02d", i), t0, t0+1000, 1, scheduler.StatusCompleted, 200)
		r.Event.Body = body
		r.Attempt.Response = string(body[:100]) + "\xff\xfe" // not UTF-8
		r.Attempt.Error = string(make([]byte, 100<<10))      // too long for a TEXT column
		batch = append(batch, r)
	}
	write(t, s, batch...)
	ev := get(t, s, testApp, "big-11")
	if !slices.Equal(ev.Body, body) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(ev.Body))
	}
	if len(ev.History) != 1 || len(ev.History[0].Error) != archive.MaxTextBytes {
		t.Fatalf("long error not cut to %d bytes: %d", archive.MaxTextBytes, len(ev.History[0].Error))
	}
}

// testConcurrentWriters has four writers replay the same records in
// different orders and groupings at once, as archivers do when one takes
// over another's pending entries: no error, no duplicate, the final state.
func testConcurrentWriters(t *testing.T, s *archive.Store) {
	const runs, writers, batchSize = 200, 4, 50
	var all []scheduler.Record
	for i := range runs {
		all = append(all, lifecycle(testApp, fmt.Sprintf("cw-%03d", i), t0+int64(i))...)
	}
	errs := make(chan error, writers)
	for w := range writers {
		recs := slices.Clone(all)
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		go func() {
			for len(recs) > 0 {
				n := min(batchSize, len(recs))
				if err := s.Write(context.Background(), recs[:n]); err != nil {
					errs <- err
					return
				}
				recs = recs[n:]
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Write: %v", err)
		}
	}
	if n := count(t, s, "events"); n != runs {
		t.Errorf("events rows = %d, want %d", n, runs)
	}
	if n := count(t, s, "attempts"); n != 2*runs {
		t.Errorf("attempts rows = %d, want %d", n, 2*runs)
	}
	for i := range runs {
		id := fmt.Sprintf("cw-%03d", i)
		checkCompleted(t, get(t, s, testApp, id), testApp, id, t0+int64(i))
	}
}

// testWriteThroughput measures Write with batches of 500 records: 10,000
// creates, then their 10,000 finals (each an event update and an attempt
// row). It logs the figure; no test fails on a timing.
func testWriteThroughput(t *testing.T, s *archive.Store) {
	if testing.Short() {
		t.Skip("throughput measurement skipped in -short mode")
	}
	const runs, batchSize = 10_000, 500
	ctx := context.Background()
	var creates, finals []scheduler.Record
	for i := range runs {
		id := fmt.Sprintf("tp-%06d", i)
		creates = append(creates, createRec("bench", id, t0+int64(i)))
		finals = append(finals, finalRec("bench", id, t0+int64(i), t0+int64(i)+60_000, 1, scheduler.StatusCompleted, 200))
	}
	measure := func(recs []scheduler.Record) time.Duration {
		start := time.Now()
		for len(recs) > 0 {
			n := min(batchSize, len(recs))
			if err := s.Write(ctx, recs[:n]); err != nil {
				t.Fatalf("Write: %v", err)
			}
			recs = recs[n:]
		}
		return time.Since(start)
	}
	dc := measure(creates)
	df := measure(finals)
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	// A create writes one row; a final updates its event row and inserts
	// an attempt row.
	t.Logf("%s write throughput, batches of %d records: creates %.0f records/s, finals %.0f records/s; "+
		"overall %.0f records/s = %.0f rows/s (%d records, %d rows in %s)",
		s.Dialect(), batchSize, rate(runs, dc), rate(runs, df),
		rate(2*runs, dc+df), rate(3*runs, dc+df), 2*runs, 3*runs, (dc + df).Round(time.Millisecond))
	if n := count(t, s, "events"); n != runs {
		t.Errorf("events rows = %d, want %d", n, runs)
	}
	if n := count(t, s, "attempts"); n != runs {
		t.Errorf("attempts rows = %d, want %d", n, runs)
	}
}

// testEmptyBodyIsKnown: a final record of an event without a body stores a
// known-empty body, which reads back as empty (not dropped), while a run
// whose body no record told yet reads as dropped; through Get and Search.
// (The SQLite driver reads an empty BLOB as nil, like NULL.)
func testEmptyBodyIsKnown(t *testing.T, s *archive.Store) {
	empty := finalRec(testApp, "empty-body", t0, t0+61_000, 1, scheduler.StatusFailed, 404)
	empty.Event.Body = nil
	write(t, s, createRec(testApp, "empty-body", t0), empty, createRec(testApp, "live-run", t0+1))
	for _, c := range []struct {
		id      string
		dropped bool
	}{{"empty-body", false}, {"live-run", true}} {
		ev := get(t, s, testApp, c.id)
		if ev.BodyDropped != c.dropped || !c.dropped && (ev.Body == nil || len(ev.Body) != 0) {
			t.Errorf("Get %s: BodyDropped %v, body %#v; want dropped %v", c.id, ev.BodyDropped, ev.Body, c.dropped)
		}
		page := search(t, s, scheduler.SearchQuery{App: testApp, Q: c.id})
		if len(page.Events) != 1 || page.Events[0].BodyDropped != c.dropped {
			t.Errorf("Search %s: %+v; want one event with BodyDropped %v", c.id, page.Events, c.dropped)
		}
	}
}

// withFlowKey sets the flow key of a record's event.
func withFlowKey(r scheduler.Record, key string) scheduler.Record {
	ev := *r.Event
	ev.FlowKey = key
	r.Event = &ev
	return r
}

// testFlowKey: a run's flow key is archived from its create (a pending
// event) and its final record, shown by Get and Search alike, kept by the
// records that do not carry it (attempt, requeue), and cleared when a newer
// create or final record of the run has none.
func testFlowKey(t *testing.T, s *archive.Store) {
	write(t, s, withFlowKey(createRec(testApp, "fk-pending", t0), "tenant:1"), createRec(testApp, "fk-none", t0))
	if got := get(t, s, testApp, "fk-pending").FlowKey; got != "tenant:1" {
		t.Fatalf("pending run: flow key %q, want tenant:1", got)
	}
	if got := get(t, s, testApp, "fk-none").FlowKey; got != "" {
		t.Fatalf("run without a key: flow key %q, want none", got)
	}

	// An attempt does not carry the key and must not lose it; the final
	// record carries it again.
	write(t, s, attemptRec(testApp, "fk-pending", t0, t0+1000, 1, 503, "busy"))
	if got := get(t, s, testApp, "fk-pending").FlowKey; got != "tenant:1" {
		t.Fatalf("after an attempt: flow key %q, want tenant:1", got)
	}
	write(t, s, withFlowKey(finalRec(testApp, "fk-pending", t0, t0+2000, 2, scheduler.StatusCompleted, 200), "tenant:1"))
	got := get(t, s, testApp, "fk-pending")
	if got.FlowKey != "tenant:1" || got.Status != scheduler.StatusCompleted {
		t.Fatalf("finished run: flow key %q, status %s; want tenant:1, COMPLETED", got.FlowKey, got.Status)
	}
	page := search(t, s, scheduler.SearchQuery{App: testApp, Q: "fk-"})
	keys := map[string]string{}
	for _, ev := range page.Events {
		keys[ev.ID] = ev.FlowKey
	}
	if want := map[string]string{"fk-pending": "tenant:1", "fk-none": ""}; !maps.Equal(keys, want) {
		t.Fatalf("search flow keys %v, want %v", keys, want)
	}

	// A create and its final record in one batch (coalesced into one row).
	write(t, s, withFlowKey(createRec(testApp, "fk-batch", t0), "b"),
		withFlowKey(finalRec(testApp, "fk-batch", t0, t0+500, 1, scheduler.StatusCompleted, 200), "b"))
	if got := get(t, s, testApp, "fk-batch").FlowKey; got != "b" {
		t.Fatalf("create and final in one batch: flow key %q, want b", got)
	}

	// A pending occurrence replaced by a template without a key keeps its
	// run (same creation time) and writes a newer create: the key goes.
	write(t, s, withFlowKey(createRec(testApp, "fk-replaced", t0), "old"))
	replaced := createRec(testApp, "fk-replaced", t0)
	replaced.UpdatedMS = t0 + 5000
	write(t, s, replaced)
	if got := get(t, s, testApp, "fk-replaced").FlowKey; got != "" {
		t.Fatalf("replaced without a key: flow key %q, want none", got)
	}
	// An older record arriving late does not bring it back.
	write(t, s, withFlowKey(createRec(testApp, "fk-replaced", t0), "old"))
	if got := get(t, s, testApp, "fk-replaced").FlowKey; got != "" {
		t.Fatalf("after a late older create: flow key %q, want none", got)
	}
}

// testFlowKeyMigrationRunAgain: migration 0004 applied but not recorded (a
// crash between the DDL, which MySQL commits at once, and the version row)
// runs again without error and keeps the data.
func testFlowKeyMigrationRunAgain(t *testing.T, s *archive.Store) {
	ctx := context.Background()
	write(t, s, withFlowKey(createRec(testApp, "m4", t0), "k"))
	if _, err := s.DB().ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = 4"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate with 0004 applied but not recorded: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v < 4 {
		t.Fatalf("SchemaVersion = %d, %v; want at least 4", v, err)
	}
	if got := get(t, s, testApp, "m4").FlowKey; got != "k" {
		t.Fatalf("flow key after the migration ran again: %q, want k", got)
	}
}

// testStatusMoves follows runs through their statuses: every change moves
// the run between the searches by status and between the counts, whether
// or not the status has an index entry (SQLite indexes every status but
// COMPLETED, migration 0005).
func testStatusMoves(t *testing.T, s *archive.Store) {
	ctx := context.Background()
	byStatus := func(st scheduler.Status) []string {
		t.Helper()
		return ids(search(t, s, scheduler.SearchQuery{Status: st}).Events)
	}
	check := func(step string, want map[scheduler.Status][]string) {
		t.Helper()
		wantCounts := map[scheduler.Status]int64{}
		for _, st := range scheduler.Statuses {
			if got := byStatus(st); !slices.Equal(got, want[st]) {
				t.Errorf("%s: status %s finds %v, want %v", step, st, got, want[st])
			}
			if n := len(want[st]); n > 0 {
				wantCounts[st] = int64(n)
			}
		}
		got, err := s.Counts(ctx)
		if err != nil {
			t.Fatalf("%s: Counts: %v", step, err)
		}
		if !maps.Equal(got, wantCounts) {
			t.Errorf("%s: Counts = %v, want %v", step, got, wantCounts)
		}
	}
	check("empty", nil)

	// One batch: archived (seq) in the order blog/c, shop/a, shop/b.
	write(t, s, createRec(testApp, "a", t0), createRec(testApp, "b", t0+1), createRec("blog", "c", t0+2))
	check("created", map[scheduler.Status][]string{scheduler.StatusPending: {"b", "a", "c"}})

	write(t, s, finalRec(testApp, "a", t0, t0+61_000, 1, scheduler.StatusCompleted, 200),
		finalRec(testApp, "b", t0+1, t0+61_001, 1, scheduler.StatusFailed, 404))
	check("finished", map[scheduler.Status][]string{
		scheduler.StatusPending: {"c"}, scheduler.StatusCompleted: {"a"}, scheduler.StatusFailed: {"b"},
	})

	// A completed run retried (e.g. a schedule's) is PENDING again, then
	// fails; the failed one completes after its retry.
	requeue := func(id string, created, at int64) scheduler.Record {
		return scheduler.Record{
			Kind: scheduler.RecordRequeue, App: testApp, ID: id, CreatedMS: created, UpdatedMS: at,
			Status: scheduler.StatusPending, Event: &scheduler.Event{DueAt: ms(at)},
		}
	}
	write(t, s, requeue("a", t0, t0+90_000), requeue("b", t0+1, t0+90_000))
	check("requeued", map[scheduler.Status][]string{scheduler.StatusPending: {"b", "a", "c"}})
	if got := ids(search(t, s, scheduler.SearchQuery{App: testApp, Statuses: []scheduler.Status{scheduler.StatusPending, scheduler.StatusFailed}}).Events); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("requeued: app and statuses find %v, want [b a]", got)
	}
	write(t, s, finalRec(testApp, "a", t0, t0+91_000, 2, scheduler.StatusFailed, 410),
		finalRec(testApp, "b", t0+1, t0+91_000, 2, scheduler.StatusCompleted, 200),
		finalRec("blog", "c", t0+2, t0+91_000, 1, scheduler.StatusCancelled, 0))
	check("finished again", map[scheduler.Status][]string{
		scheduler.StatusCompleted: {"b"}, scheduler.StatusFailed: {"a"}, scheduler.StatusCancelled: {"c"},
	})
}

// testLeanIndexesMigrationRunAgain: migration 0005 applied but not recorded
// (on MySQL the DROP INDEX committed, then the process died) runs again
// without error, and search by status still works.
func testLeanIndexesMigrationRunAgain(t *testing.T, s *archive.Store) {
	ctx := context.Background()
	write(t, s, createRec(testApp, "m5", t0))
	if _, err := s.DB().ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = 5"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate with 0005 applied but not recorded: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v < 5 {
		t.Fatalf("SchemaVersion = %d, %v; want at least 5", v, err)
	}
	if got := ids(search(t, s, scheduler.SearchQuery{Status: scheduler.StatusPending}).Events); !slices.Equal(got, []string{"m5"}) {
		t.Fatalf("search PENDING after the migration ran again: %v, want [m5]", got)
	}
}

// testUpgradeFrom0004: an archive written before migration 0005 keeps its
// runs and attempts (ids too) through it, and afterwards the same records
// written again still add nothing (the attempts key is rebuilt, not lost).
func testUpgradeFrom0004(t *testing.T, s *archive.Store) {
	ctx := context.Background()
	if err := s.MigrateTo(ctx, 4); err != nil {
		t.Fatalf("MigrateTo(4): %v", err)
	}
	failed := []scheduler.Record{
		createRec("blog", "u2", t0+5),
		attemptRec("blog", "u2", t0+5, t0+60_000, 1, 500, "boom"),
		finalRec("blog", "u2", t0+5, t0+61_000, 2, scheduler.StatusFailed, 404),
	}
	batch := append(lifecycle(testApp, "u1", t0), failed...)
	write(t, s, batch...)
	attempts := func() []string {
		t.Helper()
		rows, err := s.DB().QueryContext(ctx, `SELECT id, app, event_id, created_ms, attempt, at_ms, worker FROM attempts ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, created, attempt, at int64
			var app, eventID, worker string
			if err := rows.Scan(&id, &app, &eventID, &created, &attempt, &at, &worker); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s/%s@%d #%d at %d by %s", id, app, eventID, created, attempt, at, worker))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := attempts()
	if len(before) != 4 {
		t.Fatalf("attempts before the upgrade: %v, want 4 rows", before)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 0004: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v < 5 {
		t.Fatalf("SchemaVersion = %d, %v; want at least 5", v, err)
	}
	if after := attempts(); !slices.Equal(after, before) {
		t.Fatalf("attempts after the upgrade:\n  %v\nwant\n  %v", after, before)
	}
	checkCompleted(t, get(t, s, testApp, "u1"), testApp, "u1", t0)
	if ev := get(t, s, "blog", "u2"); ev.Status != scheduler.StatusFailed || len(ev.History) != 2 {
		t.Fatalf("failed run after the upgrade: %s with %d attempts", ev.Status, len(ev.History))
	}

	write(t, s, batch...)
	if after := attempts(); !slices.Equal(after, before) {
		t.Fatalf("the same records written again after the upgrade:\n  %v\nwant\n  %v", after, before)
	}
	for st, want := range map[scheduler.Status][]string{
		scheduler.StatusCompleted: {"u1"}, scheduler.StatusFailed: {"u2"}, scheduler.StatusPending: nil,
	} {
		if got := ids(search(t, s, scheduler.SearchQuery{Status: st}).Events); !slices.Equal(got, want) {
			t.Errorf("search %s after the upgrade: %v, want %v", st, got, want)
		}
	}
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[scheduler.Status]int64{scheduler.StatusCompleted: 1, scheduler.StatusFailed: 1}; !maps.Equal(counts, want) {
		t.Errorf("Counts after the upgrade = %v, want %v", counts, want)
	}
}

// testCreateOnlyRows: rows that tell only what an outbox create tells go
// through the narrow upsert, in batches mixed with other rows; a column the
// narrow statement leaves out reads as "not told" on both databases, even
// when the record is the newest.
func testCreateOnlyRows(t *testing.T, s *archive.Store) {
	write(t, s, outboxCreateRec(testApp, "lean-1", t0), outboxCreateRec(testApp, "lean-2", t0+1),
		finalRec(testApp, "wide", t0, t0+500, 1, scheduler.StatusCompleted, 200),
		withFlowKey(outboxCreateRec(testApp, "lean-3", t0+2), "k1"))
	ev := get(t, s, testApp, "lean-1")
	if ev.Status != scheduler.StatusPending || ev.URL != "https://example.com/hooks/lean-1" || ev.Method != "POST" ||
		ev.DueAt != ms(t0+60_000) || ev.Attempts != 0 || ev.Headers != nil || ev.MaxAttempts != 0 {
		t.Fatalf("create-only row: %+v", ev)
	}
	if ev := get(t, s, testApp, "lean-3"); ev.FlowKey != "k1" {
		t.Fatalf("create-only row lost its flow key: %+v", ev)
	}
	if ev := get(t, s, testApp, "wide"); ev.Status != scheduler.StatusCompleted || string(ev.Body) != testBody {
		t.Fatalf("the other row of the batch: %+v", ev)
	}
	// The final fills in the rest; the create replayed after it (older)
	// changes nothing.
	write(t, s, finalRec(testApp, "lean-1", t0, t0+61_000, 1, scheduler.StatusCompleted, 200))
	write(t, s, outboxCreateRec(testApp, "lean-1", t0))
	ev = get(t, s, testApp, "lean-1")
	if ev.Status != scheduler.StatusCompleted || string(ev.Body) != testBody || ev.Headers["X-Trace"] != "lean-1" ||
		ev.MaxAttempts != 5 || ev.LastStatusCode != 200 || ev.Worker != "w2" || ev.FinishedAt != ms(t0+61_000) {
		t.Fatalf("create replayed after the final: %+v", ev)
	}
	// A create-only record newer than the row (the shape of a requeue with
	// the url) moves what it tells and no other column.
	newer := outboxCreateRec(testApp, "lean-1", t0)
	newer.UpdatedMS = t0 + 90_000
	newer.Event.DueAt = ms(t0 + 95_000)
	write(t, s, newer)
	ev = get(t, s, testApp, "lean-1")
	if ev.Status != scheduler.StatusPending || ev.DueAt != ms(t0+95_000) || ev.UpdatedAt != ms(t0+90_000) ||
		string(ev.Body) != testBody || ev.Headers["X-Trace"] != "lean-1" || ev.MaxAttempts != 5 ||
		ev.LastStatusCode != 200 || ev.Worker != "w2" || !ev.FinishedAt.IsZero() {
		t.Fatalf("newer create-only record: %+v", ev)
	}
}
