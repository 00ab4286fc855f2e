package legacy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/store/legacy"
)

// run is one import run against a fresh connection to the source.
type runResult struct {
	sum     legacy.Summary
	err     error
	invalid map[int64]legacy.Invalid
	logs    string
}

type runOpts struct {
	dryRun     bool
	pageSize   int
	onProgress func(legacy.Progress)
	ctx        context.Context
}

func runImport(t *testing.T, srcDSN string, d *dest, o runOpts) runResult {
	t.Helper()
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	src, err := legacy.OpenSource(ctx, srcDSN)
	if err != nil {
		t.Fatalf("OpenSource: %v", err)
	}
	defer src.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	res := runResult{invalid: map[int64]legacy.Invalid{}}
	cfg := legacy.Config{
		Archive: d.arch, Limits: scheduler.Limits{MaxBodyBytes: testMaxBody}, Guard: d.guard,
		PageSize: o.pageSize, DryRun: o.dryRun, OnProgress: o.onProgress,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnInvalid: func(iv legacy.Invalid) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := res.invalid[iv.SourceID]; dup {
				t.Errorf("row %d reported twice", iv.SourceID)
			}
			res.invalid[iv.SourceID] = iv
		},
	}
	if !o.dryRun {
		cfg.Scheduler = d.sched
	}
	im, err := legacy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res.sum, res.err = im.Run(ctx, src)
	res.logs = logs.String()
	return res
}

// expected counts what a run over rows must report.
func expected(rows []srcRow) legacy.Summary {
	var s legacy.Summary
	for _, r := range rows {
		s.Rows++
		switch r.want {
		case wantLive:
			s.Live++
		case wantArchived:
			s.Archived++
			s.Attempts += int64(len(r.logs))
		case wantDone:
			s.Done++
		case wantInvalid, wantConflict:
			s.Invalid++
		}
		s.LastID = r.id
	}
	return s
}

// precreate gives Cassata the identities the fixture says it already has:
// s-same exactly as the import makes it, s-conflict with another URL.
func precreate(t *testing.T, d *dest, rows []srcRow) {
	t.Helper()
	for _, r := range rows {
		if r.want != wantDone && r.want != wantConflict {
			continue
		}
		ev := &scheduler.Event{App: *r.app, ID: *r.eventID, URL: *r.url, Method: r.wantMethod, Headers: r.wantHeaders,
			Body: []byte(r.body), DueAt: r.expiry}
		if r.want == wantConflict {
			ev.URL = "https://example.com/another"
		}
		if _, _, err := d.sched.Create(context.Background(), ev, scheduler.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImport imports a few thousand rows of every kind and checks every one
// of them through the scheduler (as the API reads them), then that a second
// run changes nothing, even once Redis has forgotten every live event.
func TestImport(t *testing.T) {
	t.Parallel()
	base := time.Now().UTC().Truncate(time.Second)
	rows := fixture(2000, base)
	src := newSource(t, rows)
	d := newDest(t, &delivery.AddressGuard{})
	precreate(t, d, rows)
	sourceBefore := src.checksum(t)
	ctx := context.Background()

	// A dry run counts and writes nothing. It does not ask Redis, so the
	// identities Cassata already has count as live.
	before := d.state(t)
	dry := runImport(t, src.readOnly, d, runOpts{dryRun: true, pageSize: 200})
	if dry.err != nil {
		t.Fatalf("dry run: %v", dry.err)
	}
	want := expected(rows)
	wantDry := want
	wantDry.Live += want.Done + 1 // s-same, s-conflict
	wantDry.Done, wantDry.Invalid, wantDry.DryRun = 0, want.Invalid-1, true
	if dry.sum != wantDry {
		t.Errorf("dry run summary = %+v\nwant %+v", dry.sum, wantDry)
	}
	if after := d.state(t); after != before {
		t.Fatalf("dry run changed the destination:\n before %s\n after  %s", before, after)
	}

	start := time.Now()
	res := runImport(t, src.readOnly, d, runOpts{pageSize: 200})
	if res.err != nil {
		t.Fatalf("import: %v", res.err)
	}
	t.Logf("imported %d rows in %s (%.0f rows/s)", res.sum.Rows, time.Since(start).Round(time.Millisecond),
		float64(res.sum.Rows)/time.Since(start).Seconds())
	if res.sum != want {
		t.Errorf("summary = %+v\nwant %+v", res.sum, want)
	}
	if strings.Contains(res.logs, "p@ss") {
		t.Errorf("the logs show the source's password:\n%s", res.logs)
	}

	// Every row: live events due at expiry with the request as /cassata/add
	// would make it; finished rows archived with their history; invalid
	// rows reported by id and column.
	for _, r := range rows {
		checkRow(t, d, r, res.invalid)
	}
	if len(res.invalid) != int(want.Invalid) {
		t.Errorf("%d rows reported invalid, want %d", len(res.invalid), want.Invalid)
	}
	// Past expiries are due at once: every PENDING row whose expiry passed,
	// and every PROCESSING row. Redis also has s-same and s-conflict's
	// other event, created before (due later).
	var dueNow int64
	for _, r := range rows {
		if r.want == wantLive && !r.expiry.After(base) {
			dueNow++
		}
	}
	live, err := d.store.Live(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if live.DueSoon != dueNow || live.Pending != want.Live+2 {
		t.Errorf("Redis: %d pending, %d due now; want %d, %d", live.Pending, live.DueSoon, want.Live+2, dueNow)
	}
	// Search (the archive) finds the archived runs.
	checkSearch(t, d, rows, "app-1", scheduler.StatusServiceUnavailable)
	checkSearch(t, d, rows, "app-2", scheduler.StatusCompleted)

	// A second run changes nothing.
	before = d.state(t)
	again := runImport(t, src.readOnly, d, runOpts{pageSize: 500})
	if again.err != nil {
		t.Fatalf("second run: %v", again.err)
	}
	wantAgain := legacy.Summary{Rows: want.Rows, Done: want.Live + want.Archived + want.Done, Invalid: want.Invalid, LastID: want.LastID}
	if again.sum != wantAgain {
		t.Errorf("second run summary = %+v\nwant %+v", again.sum, wantAgain)
	}
	if after := d.state(t); after != before {
		t.Errorf("second run changed the destination:\n before %s\n after  %s", before, after)
	}
	if !maps.EqualFunc(again.invalid, res.invalid, func(a, b legacy.Invalid) bool { return a == b }) {
		t.Errorf("second run reported other invalid rows")
	}

	// The live events were delivered and Redis forgot them (retention):
	// the ledger, not Redis's dedup, keeps them from being scheduled
	// again. Only s-conflict, never imported, is created now that Cassata's
	// other event under its identity is gone.
	if err := d.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	third := runImport(t, src.readOnly, d, runOpts{})
	wantThird := wantAgain
	wantThird.Live, wantThird.Invalid = 1, want.Invalid-1
	if third.err != nil || third.sum != wantThird {
		t.Errorf("run after Redis forgot the events: %+v, %v; want %+v", third.sum, third.err, wantThird)
	}
	if live, err := d.store.Live(ctx, time.Now()); err != nil || live.Pending != 1 {
		t.Errorf("after the run Redis has %d pending events (%v); want only s-conflict", live.Pending, err)
	}
	if ev, err := d.sched.Get(ctx, "app-1", "s-conflict"); err != nil || ev.URL != "https://example.com/special" {
		t.Errorf("s-conflict: %+v, %v; want imported", ev, err)
	}

	if after := src.checksum(t); after != sourceBefore {
		t.Errorf("the source changed: %s, was %s", after, sourceBefore)
	}
}

// checkRow checks what one source row became.
func checkRow(t *testing.T, d *dest, r srcRow, invalid map[int64]legacy.Invalid) {
	t.Helper()
	iv, reported := invalid[r.id]
	switch r.want {
	case wantInvalid, wantConflict:
		if !reported {
			t.Errorf("row %d (%v/%v) was not reported invalid", r.id, deref(r.app), deref(r.eventID))
			return
		}
		if iv.Column != r.wantColumn || iv.Reason == "" {
			t.Errorf("row %d reported as %q: %q; want column %q", r.id, iv.Column, iv.Reason, r.wantColumn)
		}
		if r.want == wantInvalid && r.app != nil && r.eventID != nil && scheduler.ValidApp(*r.app) && scheduler.ValidID(*r.eventID) {
			if _, err := d.sched.Get(context.Background(), *r.app, *r.eventID); !errors.Is(err, scheduler.ErrNotFound) {
				t.Errorf("invalid row %d: Get = %v, want not found", r.id, err)
			}
		}
		if r.want == wantConflict {
			ev, err := d.sched.Get(context.Background(), *r.app, *r.eventID)
			if err != nil || ev.URL != "https://example.com/another" {
				t.Errorf("conflicting row %d: Cassata's event changed: %+v, %v", r.id, ev, err)
			}
		}
		return
	}
	if reported {
		t.Errorf("row %d reported invalid: %v", r.id, iv)
		return
	}
	ev, err := d.sched.Get(context.Background(), *r.app, *r.eventID)
	if err != nil {
		t.Errorf("row %d: Get(%s/%s): %v", r.id, *r.app, *r.eventID, err)
		return
	}
	var problems []string
	check := func(what string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			problems = append(problems, fmt.Sprintf("%s = %v, want %v", what, got, want))
		}
	}
	check("status", ev.Status, r.wantStatus)
	check("url", ev.URL, *r.url)
	check("method", ev.Method, r.wantMethod)
	check("body", string(ev.Body), r.body)
	check("due", ev.DueAt.UTC(), r.expiry)
	if !maps.Equal(ev.Headers, r.wantHeaders) {
		problems = append(problems, fmt.Sprintf("headers = %v, want %v", ev.Headers, r.wantHeaders))
	}
	switch r.want {
	case wantLive, wantDone:
		check("attempts", ev.Attempts, 0)
	case wantArchived:
		check("attempts", ev.Attempts, len(r.logs))
		check("created", ev.CreatedAt.UTC(), r.createdAt)
		var history []string
		for _, a := range ev.History {
			history = append(history, fmt.Sprintf("#%d at=%d code=%d err=%q resp=%q worker=%s", a.Attempt, a.At, a.StatusCode, a.Error, a.Response, a.Worker))
		}
		var wantHistory []string
		for i, l := range r.logs {
			resp := ""
			if l.resp != nil {
				resp = *l.resp
			}
			code, errText := l.code, ""
			if code < 100 || code > 599 {
				code, resp, errText = 0, "", resp
				if errText == "" {
					errText = fmt.Sprintf("no HTTP answer (the original logged code %d)", l.code)
				}
			}
			wantHistory = append(wantHistory, fmt.Sprintf("#%d at=%d code=%d err=%q resp=%q worker=%s", i+1, l.at.UnixMilli(), code, errText, resp, legacy.ImportWorker))
		}
		if !slices.Equal(history, wantHistory) {
			problems = append(problems, fmt.Sprintf("history =\n  %s\nwant\n  %s", strings.Join(history, "\n  "), strings.Join(wantHistory, "\n  ")))
		}
	}
	if len(problems) > 0 {
		t.Errorf("row %d (%s, %s/%s):\n%s", r.id, r.status, *r.app, *r.eventID, strings.Join(problems, "\n"))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<NULL>"
	}
	return *s
}

// checkSearch checks that search finds exactly the archived rows of an
// application and status.
func checkSearch(t *testing.T, d *dest, rows []srcRow, app string, st scheduler.Status) {
	t.Helper()
	var want []string
	for _, r := range rows {
		if r.want == wantArchived && *r.app == app && r.wantStatus == st {
			want = append(want, *r.eventID)
		}
	}
	var got []string
	q := scheduler.SearchQuery{App: app, Status: st, Limit: scheduler.MaxSearchLimit}
	for {
		page, err := d.sched.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		for _, ev := range page.Events {
			got = append(got, ev.ID)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("search app=%s status=%s found %d events, want %d", app, st, len(got), len(want))
	}
}

// TestImportResumes interrupts runs twice, once by cancelling the context
// and once by stopping Redis midway, and checks that the runs together did
// exactly what one run does: every row once, nothing twice.
func TestImportResumes(t *testing.T) {
	t.Parallel()
	base := time.Now().UTC().Truncate(time.Second)
	rows := fixture(800, base)
	rows = slices.DeleteFunc(rows, func(r srcRow) bool { return r.want == wantDone || r.want == wantConflict })
	src := newSource(t, rows)
	d := newDest(t, &delivery.AddressGuard{}, redistest.WithAOF())
	want := expected(rows)

	// 1: cancelled after the third page.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pages := 0
	first := runImport(t, src.readOnly, d, runOpts{ctx: ctx, pageSize: 100, onProgress: func(legacy.Progress) {
		if pages++; pages == 3 {
			cancel()
		}
	}})
	if !errors.Is(first.err, context.Canceled) || first.sum.LastID != 300 {
		t.Fatalf("cancelled run: %+v, %v; want stopped after id 300 with context.Canceled", first.sum, first.err)
	}

	// 2: Redis stops after two more pages; the next page's creates fail.
	pages = 0
	second := runImport(t, src.readOnly, d, runOpts{pageSize: 100, onProgress: func(legacy.Progress) {
		if pages++; pages == 5 {
			d.redis.Stop()
		}
	}})
	if second.err == nil || !errors.Is(second.err, scheduler.ErrUnavailable) {
		t.Fatalf("run with Redis stopping: %+v, %v; want an unavailable error", second.sum, second.err)
	}
	if second.sum.Done != first.sum.Live+first.sum.Archived {
		t.Errorf("second run skipped %d rows as done, want the first run's %d", second.sum.Done, first.sum.Live+first.sum.Archived)
	}
	var creating int
	if err := d.arch.DB().QueryRow("SELECT COUNT(*) FROM legacy_imports WHERE state = 'creating'").Scan(&creating); err != nil {
		t.Fatal(err)
	}
	if creating == 0 {
		t.Errorf("the failed page left no write-ahead entries: the test no longer covers resuming them")
	}
	d.redis.Restart(t)

	// 3: runs to the end.
	third := runImport(t, src.readOnly, d, runOpts{pageSize: 100})
	if third.err != nil {
		t.Fatalf("resumed run: %v", third.err)
	}
	total := legacy.Summary{
		Rows:     third.sum.Rows,
		Live:     first.sum.Live + second.sum.Live + third.sum.Live,
		Archived: first.sum.Archived + second.sum.Archived + third.sum.Archived,
		Attempts: first.sum.Attempts + second.sum.Attempts + third.sum.Attempts,
		Invalid:  third.sum.Invalid,
		LastID:   third.sum.LastID,
	}
	if total != want {
		t.Errorf("the runs together: %+v\nwant %+v", total, want)
	}
	if third.sum.Done != want.Live+want.Archived-third.sum.Live-third.sum.Archived {
		t.Errorf("resumed run: %+v", third.sum)
	}
	live, err := d.store.Live(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if live.Pending != want.Live {
		t.Errorf("Redis has %d pending events, want %d", live.Pending, want.Live)
	}
	for _, q := range []struct {
		sql  string
		want int64
	}{
		{"SELECT COUNT(*) FROM events", want.Archived},
		{"SELECT COUNT(*) FROM attempts", want.Attempts},
		{"SELECT COUNT(*) FROM legacy_imports WHERE state = 'live'", want.Live},
		{"SELECT COUNT(*) FROM legacy_imports WHERE state = 'archived'", want.Archived},
		{"SELECT COUNT(*) FROM legacy_imports WHERE state = 'creating'", 0},
	} {
		var n int64
		if err := d.arch.DB().QueryRow(q.sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != q.want {
			t.Errorf("%s = %d, want %d", q.sql, n, q.want)
		}
	}
	for _, r := range rows {
		checkRow(t, d, r, third.invalid)
	}
}

// TestImportSettlesWriteAheadEntries covers a run that died between its
// creates and recording them: the next run finds the events in Cassata
// (live, or only archived once delivered and dropped from Redis) and
// records them without creating them again; one that never got created is
// created.
func TestImportSettlesWriteAheadEntries(t *testing.T) {
	t.Parallel()
	base := time.Now().UTC().Truncate(time.Second)
	var rows []srcRow
	for _, r := range fixture(16, base) {
		if r.want == wantLive {
			rows = append(rows, r)
		}
	}
	rows = rows[:3]
	for i := range rows {
		rows[i].id = int64(i + 1)
	}
	src := newSource(t, rows)
	d := newDest(t, nil)
	ctx := context.Background()

	// rows[0]: created and still live; rows[1]: created, delivered, only
	// archived now; rows[2]: the run died before creating it.
	for i, r := range rows {
		if _, err := d.arch.DB().Exec(`INSERT INTO legacy_imports (app, event_id, source_id, source_status, state, updated_ms)
VALUES (?, ?, ?, ?, 'creating', 1)`, *r.app, *r.eventID, r.id, r.status); err != nil {
			t.Fatal(err)
		}
		ev := &scheduler.Event{App: *r.app, ID: *r.eventID, URL: *r.url, Method: r.wantMethod, Headers: r.wantHeaders,
			Body: []byte(r.body), DueAt: r.expiry}
		switch i {
		case 0:
			if _, _, err := d.sched.Create(ctx, ev, scheduler.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case 1:
			ev.Status, ev.Attempts, ev.CreatedAt, ev.UpdatedAt = scheduler.StatusCompleted, 1, base, base
			if err := d.arch.Write(ctx, []scheduler.Record{{Kind: scheduler.RecordFinal, App: ev.App, ID: ev.ID,
				CreatedMS: base.UnixMilli(), UpdatedMS: base.UnixMilli(), Status: scheduler.StatusCompleted, Event: ev}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, err := d.store.Live(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res := runImport(t, src.readOnly, d, runOpts{})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := (legacy.Summary{Rows: 3, Live: 3, LastID: 3}); res.sum != want {
		t.Errorf("summary = %+v, want %+v", res.sum, want)
	}
	after, err := d.store.Live(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if after.Pending != before.Pending+1 {
		t.Errorf("Redis went from %d to %d pending events; want only rows[2] created", before.Pending, after.Pending)
	}
	if ev, err := d.sched.Get(ctx, *rows[1].app, *rows[1].eventID); err != nil || ev.Status != scheduler.StatusCompleted {
		t.Errorf("the delivered event: %+v, %v; want it left COMPLETED in the archive", ev, err)
	}
	var creating int
	if err := d.arch.DB().QueryRow("SELECT COUNT(*) FROM legacy_imports WHERE state <> 'live'").Scan(&creating); err != nil || creating != 0 {
		t.Errorf("%d ledger entries are not live (%v)", creating, err)
	}
}

// TestImportDelivers runs a worker over imported events: a past expiry is
// delivered at once, with the original's body byte for byte, its method and
// its headers as /cassata/add reads them; a future one waits.
func TestImportDelivers(t *testing.T) {
	t.Parallel()
	base := time.Now().UTC().Truncate(time.Second)
	dst := newRecorder(t)
	var rows []srcRow
	for i, h := range headerVariants {
		rows = append(rows, srcRow{
			id: int64(i + 1), app: ptr("deliver"), eventID: ptr(fmt.Sprintf("d-%d", i)),
			body: fmt.Sprintf(`{"i": %d,  "spaced" : "é"}`, i), method: ptr([]string{"POST", "put", "PATCH"}[i%3]),
			headers: h.json, url: ptr(dst.URL(fmt.Sprintf("/d/%d", i))), status: []string{"PENDING", "PROCESSING"}[i%2],
			expiry: base.Add(-time.Duration(i+1) * time.Hour), createdAt: base.Add(-48 * time.Hour),
			want: wantLive, wantHeaders: h.want, wantMethod: []string{"POST", "PUT", "PATCH"}[i%3],
		})
	}
	rows = append(rows, srcRow{id: int64(len(rows) + 1), app: ptr("deliver"), eventID: ptr("later"), body: `{}`,
		url: ptr(dst.URL("/later")), status: "PENDING", expiry: base.Add(time.Hour), createdAt: base, want: wantLive})
	src := newSource(t, rows)
	d := newDest(t, nil)
	res := runImport(t, src.readOnly, d, runOpts{})
	if res.err != nil || res.sum.Live != int64(len(rows)) {
		t.Fatalf("import: %+v, %v", res.sum, res.err)
	}
	stop := d.startWorker(t)
	defer stop()
	got := dst.wait(t, len(rows)-1, 15*time.Second)
	for _, r := range rows[:len(rows)-1] {
		a, ok := got["/d/"+strings.TrimPrefix(*r.eventID, "d-")]
		if !ok {
			t.Errorf("%s was not delivered", *r.eventID)
			continue
		}
		if a.Method != r.wantMethod || string(a.Body) != r.body {
			t.Errorf("%s arrived as %s %q, want %s %q", *r.eventID, a.Method, a.Body, r.wantMethod, r.body)
		}
		for name, value := range r.wantHeaders {
			if a.Header.Get(name) != value {
				t.Errorf("%s: header %s = %q, want %q", *r.eventID, name, a.Header.Get(name), value)
			}
		}
		for _, name := range []string{"Connection", "Proxy-Authorization", "Transfer-Encoding"} {
			if v := a.Header.Get(name); v != "" && r.headers != nil && strings.Contains(*r.headers, name) {
				t.Errorf("%s: the hop-by-hop header %s was forwarded: %q", *r.eventID, name, v)
			}
		}
		if a.Host != strings.TrimPrefix(dst.URL(""), "http://") {
			t.Errorf("%s: Host = %q: the original's Host header was forwarded", *r.eventID, a.Host)
		}
		if a.Header.Get("Cassata-Event-Id") != *r.eventID || a.Header.Get("Cassata-Application-Id") != "deliver" {
			t.Errorf("%s: Cassata headers %v", *r.eventID, a.Header)
		}
	}
	if _, early := got["/later"]; early {
		t.Errorf("the event due in an hour was delivered now")
	}
}
