package main

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/store/archive"
)

func TestStreamIDTime(t *testing.T) {
	t.Parallel()
	got, ok := streamIDTime("1795000000123-7")
	if !ok || !got.Equal(time.UnixMilli(1795000000123)) {
		t.Errorf("streamIDTime = %v, %v", got, ok)
	}
	for _, bad := range []string{"", "-", "x-1", "0-1", "-5"} {
		if _, ok := streamIDTime(bad); ok {
			t.Errorf("streamIDTime(%q) should fail", bad)
		}
	}
}

func TestOutboxStreamNames(t *testing.T) {
	t.Parallel()
	got := outboxStreamNames("bench3", 3)
	want := []string{"bench3:{bench3:0}:out", "bench3:{bench3:1}:out", "bench3:{bench3:2}:out"}
	if !slices.Equal(got, want) {
		t.Errorf("outboxStreamNames = %q, want %q", got, want)
	}
}

func TestNewLagSample(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(10_000)
	if s := newLagSample(at, outboxState{Entries: 3, Oldest: time.UnixMilli(9_750)}); s.Lag != 250*time.Millisecond || s.Entries != 3 {
		t.Errorf("sample = %+v, want 3 entries, lag 250ms", s)
	}
	// Empty outbox: no lag, whatever Oldest says.
	if s := newLagSample(at, outboxState{Entries: 0, Oldest: time.UnixMilli(1)}); s.Lag != 0 {
		t.Errorf("empty outbox lag = %v, want 0", s.Lag)
	}
	// An entry stamped after the sample (clock granularity): never negative.
	if s := newLagSample(at, outboxState{Entries: 1, Oldest: time.UnixMilli(10_001)}); s.Lag != 0 {
		t.Errorf("future entry lag = %v, want 0", s.Lag)
	}
}

func TestSummarizeLag(t *testing.T) {
	t.Parallel()
	if s := summarizeLag(nil); s.Samples != 0 || s.Max != 0 {
		t.Errorf("no samples: %+v", s)
	}
	t0 := time.UnixMilli(1_000_000)
	var samples []lagSample
	// 100 samples: lag 1..100 ms, entries 10× the lag, the peak (100 ms)
	// in the middle.
	for i := range 100 {
		lag := i + 1
		if i == 50 {
			lag = 100
		} else if i == 99 {
			lag = 51
		}
		samples = append(samples, lagSample{At: t0.Add(time.Duration(i) * 100 * time.Millisecond),
			Entries: int64(10 * lag), Lag: time.Duration(lag) * time.Millisecond})
	}
	s := summarizeLag(samples)
	if s.Samples != 100 || s.MaxEntries != 1000 || s.Max != 100*time.Millisecond {
		t.Errorf("summary = %+v, want 100 samples, max 1000 entries and 100ms", s)
	}
	if want := t0.Add(5 * time.Second); !s.MaxAt.Equal(want) || !s.MaxEntriesAt.Equal(want) {
		t.Errorf("peak at %v / %v, want %v", s.MaxAt, s.MaxEntriesAt, want)
	}
	// The lags are 1..100 ms in another order: nearest rank 50 and 99.
	if s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond {
		t.Errorf("p50 = %v, p99 = %v; want 50ms and 99ms", s.P50, s.P99)
	}
}

func TestOutboxDrained(t *testing.T) {
	t.Parallel()
	tests := []struct {
		st              outboxState
		added0, expects int64
		want            bool
	}{
		{outboxState{Entries: 0, Added: 150}, 100, 50, true},
		{outboxState{Entries: 0, Added: 104}, 100, 50, true},             // packed entries: a batch's finals in one
		{outboxState{Entries: 0, Added: 149, Leases: 1}, 100, 50, false}, // the last outcome is not recorded yet
		{outboxState{Entries: 0, Added: 100}, 100, 50, false},            // nor any
		{outboxState{Entries: 1, Added: 150}, 100, 50, false},
		{outboxState{Entries: 0, Added: 100}, 100, 0, true}, // nothing delivered
	}
	for _, tc := range tests {
		if got := outboxDrained(tc.st, tc.added0, tc.expects); got != tc.want {
			t.Errorf("outboxDrained(%+v, %d, %d) = %v, want %v", tc.st, tc.added0, tc.expects, got, tc.want)
		}
	}
}

func TestArchiveFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.archive != archiveSQLite || o.archiveRate != 5000 || o.archiveSpan != 10*time.Second || archiveEvents(o) != 50_000 {
		t.Errorf("archive defaults = %q %d %s (%d events)", o.archive, o.archiveRate, o.archiveSpan, archiveEvents(o))
	}
	o, err = parseFlags([]string{"--archive", "mysql", "--only", "archive", "--archive-rate", "200", "--archive-span", "1500ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.archive != archiveMySQL || !slices.Equal(o.only, []string{"archive"}) || archiveEvents(o) != 300 {
		t.Errorf("parsed = %q %q, %d events", o.archive, o.only, archiveEvents(o))
	}
	for _, bad := range [][]string{
		{"--archive", "postgres"}, {"--archive", ""}, {"--archive-rate", "0"}, {"--archive-span", "0s"},
		{"--archive-rate", "1", "--archive-span", "10ms"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) should fail", bad)
		}
	}
}

func TestArchiveDSN(t *testing.T) {
	t.Parallel()
	b := &bench{opts: options{archive: archiveSQLite}, tmp: "/tmp/cb"}
	if got := b.archiveDSN("bench2"); got != "sqlite:///tmp/cb/bench2-archive.db" {
		t.Errorf("archiveDSN = %q", got)
	}
	if got := b.archiveName(); got != "sqlite" {
		t.Errorf("archiveName = %q", got)
	}
	if err := b.prepareArchive(context.Background(), "bench2"); err != nil {
		t.Errorf("prepareArchive for SQLite: %v", err)
	}
}

func TestWriteArchiveTable(t *testing.T) {
	t.Parallel()
	rows := []row{
		{Workload: "burst", DeliveriesPerSec: some(15000), Errors: some(0)},
		{Workload: "archive", DeliveriesPerSec: some(4998), Errors: some(0), OutboxMax: some(1234),
			LagP50: some(31.26), LagP99: some(74.2), LagMax: some(75.9), CatchUp: some(12.3),
			RowsPerSec: some(9898.4), Unarchived: some(0)},
	}
	var b strings.Builder
	if err := writeTable(&b, archiveColumns, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header, rule and the archive row only, got:\n%s", b.String())
	}
	var cells []string
	for _, c := range strings.Split(lines[2], "|") {
		cells = append(cells, strings.TrimSpace(c))
	}
	want := []string{"archive", "1,234", "31.3", "74.2", "75.9", "12.3", "9,898", "0"}
	if !slices.Equal(cells, want) {
		t.Errorf("archive row = %q, want %q", cells, want)
	}
	b.Reset()
	if err := writeTable(&b, archiveColumns, rows[:1]); err != nil || b.Len() != 0 {
		t.Errorf("no row measures the archive: wrote %q, %v; want nothing", b.String(), err)
	}
	if (row{Unarchived: some(1)}).failed() == false {
		t.Error("a row with unarchived events should fail")
	}
}

// TestOutboxState checks outbox against a real redis-server: lengths,
// entries-added and the oldest id over several streams, one of them absent.
func TestOutboxState(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	r := &redisServer{client: redis.NewClient(&redis.Options{Addr: srv.Addr()})}
	t.Cleanup(func() { _ = r.client.Close() })

	if err := r.client.HSet(ctx, "ns:meta", "shards", 3).Err(); err != nil {
		t.Fatal(err)
	}
	streams, err := r.outboxStreams(ctx, "ns")
	if err != nil || len(streams) != 3 {
		t.Fatalf("outboxStreams = %q, %v", streams, err)
	}
	add := func(stream, id string) {
		t.Helper()
		if err := r.client.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: id, Values: []string{"k", "final"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add(streams[0], "1000-0")
	add(streams[0], "3000-0")
	add(streams[1], "2000-0")
	add(streams[1], "2500-0")
	// streams[2] never exists: a shard nothing was written to.
	if err := r.client.XDel(ctx, streams[0], "1000-0").Err(); err != nil { // archived
		t.Fatal(err)
	}
	st, err := r.outbox(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 3 || st.Added != 4 || !st.Oldest.Equal(time.UnixMilli(2000)) {
		t.Errorf("outbox = %+v, want 3 entries, 4 added, oldest at 2000 ms", st)
	}
	for _, id := range []string{"2000-0", "2500-0"} {
		r.client.XDel(ctx, streams[1], id)
	}
	r.client.XDel(ctx, streams[0], "3000-0")
	st, err = r.outbox(ctx, streams)
	if err != nil || st.Entries != 0 || st.Added != 4 || !st.Oldest.IsZero() {
		t.Errorf("emptied outbox = %+v, %v; want 0 entries, 4 added, no oldest", st, err)
	}
}

// TestCountArchivedSQLite counts rows in a real SQLite archive, opened
// read-only the way the bench does.
func TestCountArchivedSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := &bench{opts: options{archive: archiveSQLite}, tmp: t.TempDir()}
	a, err := archive.Open(ctx, b.archiveDSN("bench1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	created := time.Now().UnixMilli()
	var recs []scheduler.Record
	for i, id := range []string{"a", "b", "c"} {
		ev := &scheduler.Event{App: appArchive, ID: id, URL: "http://127.0.0.1:9/sink", Method: "POST",
			Status: scheduler.StatusPending, CreatedAt: time.UnixMilli(created), UpdatedAt: time.UnixMilli(created)}
		recs = append(recs, scheduler.Record{Kind: scheduler.RecordCreate, App: appArchive, ID: id,
			CreatedMS: created, UpdatedMS: created, Status: scheduler.StatusPending, Event: ev})
		if i < 2 { // two of them delivered
			done := *ev
			done.Status, done.Attempts = scheduler.StatusCompleted, 1
			recs = append(recs, scheduler.Record{Kind: scheduler.RecordFinal, App: appArchive, ID: id,
				CreatedMS: created, UpdatedMS: created + 5, Status: scheduler.StatusCompleted, Event: &done,
				Attempt: &scheduler.Attempt{Attempt: 1, At: created + 5, StatusCode: 200, Worker: "w"}})
		}
	}
	otherEv := &scheduler.Event{App: "other", ID: "x", URL: "http://127.0.0.1:9/sink", Method: "POST",
		Status: scheduler.StatusPending, CreatedAt: time.UnixMilli(created), UpdatedAt: time.UnixMilli(created)}
	recs = append(recs, scheduler.Record{Kind: scheduler.RecordCreate, App: "other", ID: "x",
		CreatedMS: created, UpdatedMS: created, Status: scheduler.StatusPending, Event: otherEv})
	if err := a.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	events, attempts, err := b.countArchived(ctx, "bench1", appArchive)
	if err != nil || events != 3 || attempts != 2 {
		t.Errorf("countArchived = %d events, %d attempts, %v; want 3 and 2", events, attempts, err)
	}
	if _, _, err := b.countArchived(ctx, "nope", appArchive); err == nil {
		t.Error("counting a missing archive file should fail, not create it")
	}
	if _, err := os.Stat(b.sqlitePath("nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("countArchived created %s: %v", b.sqlitePath("nope"), err)
	}
}
