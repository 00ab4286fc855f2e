package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// failPathHandler answers 404 to paths under /fail/ and 200 otherwise.
func failPathHandler(w http.ResponseWriter, r *http.Request, a arrival) {
	if strings.Contains(a.Path, "/fail/") {
		http.Error(w, "gone", http.StatusNotFound)
		return
	}
	ok(w, r, a)
}

// searchFixture is a set of finished, archived events of two applications
// with due times one minute apart, for the filter tests.
type searchFixture struct {
	base time.Time // due time of index 0
	// ids by application; due index i is base + i minutes.
	shop, billing []string
	shopFailed    []string
	dueIndex      map[string]int
}

// scheduleSearchFixture creates (in app shop) ord-00..19 (200) and
// inv-00..09 (URL under /special/fail/: 404 → FAILED), and (in app
// billing) ord-00..09 (200); every due time is in the past, a minute apart,
// and waits until all are archived.
func (e *archEnv) scheduleSearchFixture() searchFixture {
	e.t.Helper()
	f := searchFixture{base: time.Now().Add(-2 * time.Hour).Truncate(time.Second), dueIndex: map[string]int{}}
	var evs []*scheduler.Event
	add := func(app, id, path string, i int) {
		evs = append(evs, &scheduler.Event{App: app, ID: id, URL: e.dest.URL(path), DueAt: f.base.Add(time.Duration(i) * time.Minute)})
		if app == "shop" {
			f.dueIndex[id] = i
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("ord-%02d", i)
		add("shop", id, "/orders/"+id, i)
		f.shop = append(f.shop, id)
	}
	for i := range 10 {
		id := fmt.Sprintf("inv-%02d", i)
		add("shop", id, "/special/fail/"+id, 20+i)
		f.shop = append(f.shop, id)
		f.shopFailed = append(f.shopFailed, id)
	}
	for i := range 10 {
		id := fmt.Sprintf("ord-%02d", i)
		add("billing", id, "/billing/"+id, i)
		f.billing = append(f.billing, id)
	}
	e.scheduleAll(evs)
	e.waitArchived(len(evs), len(evs), 20*time.Second)
	return f
}

// sameIDs fails unless got holds exactly want, each once.
func sameIDs(t testing.TB, what string, got []string, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d events %v, want %d %v", what, len(got), got, len(want), want)
	}
}

// TestSearchFilters: Scheduler.Search with the archive filters by
// application, status, id prefix, URL substring and due range, across
// pages of 10.
func TestSearchFilters(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, failPathHandler, db, redisstore.Config{})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		f := e.scheduleSearchFixture()

		var shopOrd, shopOrd1x []string
		for _, id := range f.shop {
			if strings.HasPrefix(id, "ord-") {
				shopOrd = append(shopOrd, id)
			}
			if strings.HasPrefix(id, "ord-1") {
				shopOrd1x = append(shopOrd1x, id)
			}
		}
		var inRange []string
		for id, i := range f.dueIndex {
			if i >= 5 && i < 25 {
				inRange = append(inRange, id)
			}
		}
		for _, c := range []struct {
			name string
			q    scheduler.SearchQuery
			want []string
		}{
			{"app", scheduler.SearchQuery{App: "shop"}, f.shop},
			{"other app", scheduler.SearchQuery{App: "billing"}, f.billing},
			{"status", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusFailed}, f.shopFailed},
			{"status nowhere", scheduler.SearchQuery{App: "billing", Status: scheduler.StatusFailed}, nil},
			{"completed", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusCompleted}, shopOrd},
			{"id prefix", scheduler.SearchQuery{App: "shop", Q: "ord-"}, shopOrd},
			{"longer id prefix", scheduler.SearchQuery{App: "shop", Q: "ord-1"}, shopOrd1x},
			{"url substring", scheduler.SearchQuery{Q: "/special/"}, f.shopFailed},
			{"url substring is not an id prefix", scheduler.SearchQuery{App: "shop", Q: "rd-0"}, []string{
				// "rd-0" is no id prefix, but /orders/ord-0x contains it.
				"ord-00", "ord-01", "ord-02", "ord-03", "ord-04", "ord-05", "ord-06", "ord-07", "ord-08", "ord-09"}},
			{"due range", scheduler.SearchQuery{App: "shop", From: f.base.Add(5 * time.Minute), To: f.base.Add(25 * time.Minute)}, inRange},
			{"due from", scheduler.SearchQuery{App: "shop", From: f.base.Add(25 * time.Minute)}, []string{"inv-05", "inv-06", "inv-07", "inv-08", "inv-09"}},
			{"due to", scheduler.SearchQuery{App: "shop", To: f.base.Add(2 * time.Minute)}, []string{"ord-00", "ord-01"}},
			{"everything combined", scheduler.SearchQuery{App: "shop", Status: scheduler.StatusFailed, Q: "inv-0",
				From: f.base.Add(22 * time.Minute), To: f.base.Add(24 * time.Minute)}, []string{"inv-02", "inv-03"}},
			{"no match", scheduler.SearchQuery{Q: "nothing-like-this"}, nil},
		} {
			q := c.q
			q.Limit = 10
			got := e.searchAll(q)
			sameIDs(t, c.name, idsOf(got), c.want)
			for _, ev := range got {
				if c.q.App != "" && ev.App != c.q.App || c.q.Status != "" && ev.Status != c.q.Status {
					t.Errorf("%s: %s/%s (%s) does not match %+v", c.name, ev.App, ev.ID, ev.Status, c.q)
				}
			}
		}
		// Both apps' ord-03 are found by id prefix, and they are different runs.
		got := e.searchAll(scheduler.SearchQuery{Q: "ord-03"})
		if len(got) != 2 || got[0].App == got[1].App {
			t.Errorf("ord-03 in both apps: got %v", got)
		}
	})
}

// TestSearchPaginationWhileEventsArrive pages through 120 archived events
// 10 at a time while new events of the same application are created,
// delivered and archived between page fetches: every pre-existing event
// comes exactly once, and none of the new ones shows up on a later page.
func TestSearchPaginationWhileEventsArrive(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		const n, limit = 120, 10
		e := setupArchive(t, nil, db, redisstore.Config{})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		var evs []*scheduler.Event
		pre := map[string]bool{}
		for i := range n {
			ev := e.event(fmt.Sprintf("page-%03d", i))
			evs = append(evs, ev)
			pre[ev.ID] = true
		}
		e.scheduleAll(evs)
		e.waitArchived(n, n, 20*time.Second)

		seen := map[string]int{}
		q := scheduler.SearchQuery{App: testApp, Limit: limit}
		pages, created := 0, 0
		for {
			page := e.search(q)
			pages++
			if len(page.Events) > limit {
				t.Fatalf("page %d holds %d events, limit %d", pages, len(page.Events), limit)
			}
			for _, ev := range page.Events {
				seen[ev.ID]++
				if !pre[ev.ID] {
					t.Errorf("page %d shows %s, created after the first page", pages, ev.ID)
				}
			}
			if page.NextCursor == "" {
				break
			}
			if pages > n {
				t.Fatal("pagination does not end")
			}
			q.Cursor = page.NextCursor
			// New events arrive: created, delivered and archived before the next page.
			for range 3 {
				e.schedule(e.event(fmt.Sprintf("new-%03d", created)))
				created++
			}
			e.waitArchived(n+created, n+created, 10*time.Second)
		}
		for id := range pre {
			if seen[id] != 1 {
				t.Errorf("%s seen %d times across the pages", id, seen[id])
			}
		}
		if pages != n/limit {
			t.Errorf("%d pages, want %d", pages, n/limit)
		}
		// A fresh search sees the new ones first (newest first).
		first := e.search(scheduler.SearchQuery{App: testApp, Limit: 3})
		for _, ev := range first.Events {
			if !strings.HasPrefix(ev.ID, "new-") {
				t.Errorf("a fresh first page starts with %s, want the newest events", ev.ID)
			}
		}
		t.Logf("%d pages; %d events created meanwhile", pages, created)
	})
}

// TestSearchMergesLiveAndArchived: one query finds an event still PENDING
// in Redis and one that only the archive still has; an event the archive
// still shows PENDING (the archiver is behind) but Redis has COMPLETED is
// shown COMPLETED and left out of status=PENDING.
func TestSearchMergesLiveAndArchived(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		const consumer = "merge-archiver"
		e := setupArchive(t, nil, db, redisstore.Config{Retention: time.Second})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		arch := e.startArchiver(nil, nil, worker.ArchiverConfig{Consumer: consumer})

		pending := e.event("live-pending")
		pending.DueAt = time.Now().Add(time.Hour)
		e.schedule(pending)
		lagging := e.event("live-lagging")
		lagging.DueAt = time.Now().Add(time.Hour)
		e.schedule(lagging)
		e.schedule(e.event("gone-done"))
		e.waitStatus("gone-done", scheduler.StatusCompleted, 10*time.Second)
		e.waitArchived(3, 1, 10*time.Second)
		e.waitGoneFromRedis(testApp, "gone-done", 10*time.Second)

		byID := func(evs []*scheduler.Event) map[string]*scheduler.Event {
			m := map[string]*scheduler.Event{}
			for _, ev := range evs {
				m[ev.ID] = ev
			}
			return m
		}
		all := byID(e.searchAll(scheduler.SearchQuery{App: testApp}))
		if ev := all["live-pending"]; ev == nil || ev.Status != scheduler.StatusPending || !ev.DueAt.Equal(pending.DueAt) {
			t.Errorf("live-pending: %+v, want PENDING due %s", ev, pending.DueAt)
		}
		if ev := all["gone-done"]; ev == nil || ev.Status != scheduler.StatusCompleted || ev.Attempts != 1 {
			t.Errorf("gone-done (archive only): %+v, want COMPLETED after 1 attempt", ev)
		}
		if len(all) != 3 {
			t.Errorf("found %d events, want 3", len(all))
		}

		// The archiver falls behind: live-lagging is delivered, Redis says
		// COMPLETED, the archive still PENDING.
		arch.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := e.sched.RunNow(ctx, testApp, "live-lagging"); err != nil {
			t.Fatalf("RunNow: %v", err)
		}
		e.waitStatus("live-lagging", scheduler.StatusCompleted, 10*time.Second)
		if old, err := db.Get(ctx, testApp, "live-lagging"); err != nil || old.Status != scheduler.StatusPending {
			t.Fatalf("archive row of live-lagging: %+v, %v; want PENDING (the archiver is stopped)", old, err)
		}
		got := e.searchAll(scheduler.SearchQuery{App: testApp, Q: "live-lagging"})
		if len(got) != 1 || got[0].Status != scheduler.StatusCompleted || got[0].Attempts != 1 || got[0].LastStatusCode != 200 {
			t.Errorf("live-lagging while the archive lags: %+v, want COMPLETED with 1 attempt and status code 200", got)
		}
		pend := byID(e.searchAll(scheduler.SearchQuery{App: testApp, Status: scheduler.StatusPending}))
		if pend["live-lagging"] != nil {
			t.Errorf("live-lagging (COMPLETED in Redis) listed under status=PENDING")
		}
		if pend["live-pending"] == nil || len(pend) != 1 {
			t.Errorf("status=PENDING: %v, want live-pending alone", idsOf(e.searchAll(scheduler.SearchQuery{App: testApp, Status: scheduler.StatusPending})))
		}

		// The archiver catches up: the archive agrees.
		e.startArchiver(nil, nil, worker.ArchiverConfig{Consumer: consumer})
		e.waitArchived(3, 2, 10*time.Second)
		done := byID(e.searchAll(scheduler.SearchQuery{App: testApp, Status: scheduler.StatusCompleted}))
		if done["live-lagging"] == nil || done["gone-done"] == nil || len(done) != 2 {
			t.Errorf("status=COMPLETED after catching up: %v", done)
		}
	})
}

// TestSearchOverHTTP: GET /v1/events with filters and next_cursor
// pagination, on the archive behind a real scheduler and worker.
func TestSearchOverHTTP(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, failPathHandler, db, redisstore.Config{})
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		f := e.scheduleSearchFixture()
		future := &scheduler.Event{App: "shop", ID: "later-1", URL: e.dest.URL("/later"), DueAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
		e.schedule(future)
		e.waitArchived(41, 40, 10*time.Second)
		srv := e.apiServer()

		get := func(params ...string) []api.EventView {
			t.Helper()
			var out []api.EventView
			qs := query(append(params, "limit", "10")...)
			for page := 0; ; page++ {
				var resp api.SearchResponse
				callJSON(t, "GET", srv.URL+"/v1/events?"+qs, http.StatusOK, &resp)
				if len(resp.Events) > 10 {
					t.Fatalf("%d events on a page of 10", len(resp.Events))
				}
				out = append(out, resp.Events...)
				if resp.NextCursor == nil {
					return out
				}
				if page > 20 {
					t.Fatal("pagination does not end")
				}
				qs = query(append(params, "limit", "10", "cursor", *resp.NextCursor)...)
			}
		}
		ids := func(evs []api.EventView) []string {
			out := make([]string, len(evs))
			for i, ev := range evs {
				out[i] = ev.ID
			}
			return out
		}
		sameIDs(t, "app=shop", ids(get("app", "shop")), append(slices.Clone(f.shop), "later-1"))
		sameIDs(t, "app=billing", ids(get("app", "billing")), f.billing)
		sameIDs(t, "status=FAILED", ids(get("app", "shop", "status", "FAILED")), f.shopFailed)
		pend := get("status", "PENDING")
		sameIDs(t, "status=PENDING", ids(pend), []string{"later-1"})
		if len(pend) == 1 && (pend[0].DueAt != future.DueAt.UTC().Format("2006-01-02T15:04:05.000Z07:00") || pend[0].URL != future.URL) {
			t.Errorf("later-1 over HTTP: %+v", pend[0])
		}
		sameIDs(t, "q=inv-0 (id prefix)", ids(get("app", "shop", "q", "inv-0")), f.shopFailed)
		sameIDs(t, "q=/billing/ (url)", ids(get("q", "/billing/")), f.billing)
		sameIDs(t, "from/to", ids(get("app", "billing",
			"from", f.base.Add(3*time.Minute).Format(time.RFC3339Nano),
			"to", f.base.Add(6*time.Minute).Format(time.RFC3339Nano))), []string{"ord-03", "ord-04", "ord-05"})
		failed := get("app", "shop", "status", "FAILED", "q", "inv-07")
		if len(failed) != 1 || failed[0].Status != "FAILED" || failed[0].Attempts != 1 || failed[0].LastStatusCode != 404 {
			t.Errorf("inv-07 over HTTP: %+v", failed)
		}

		// Bad input is a 400 naming the field, never a 500.
		for _, c := range []struct{ qs, field string }{
			{"limit=0", "limit"}, {"limit=501", "limit"}, {"status=DONE", "status"},
			{"cursor=not-a-cursor", "cursor"}, {"from=yesterday", "from"},
		} {
			var body struct {
				Error struct{ Code, Field string }
			}
			callJSON(t, "GET", srv.URL+"/v1/events?"+c.qs, http.StatusBadRequest, &body)
			if body.Error.Field != c.field {
				t.Errorf("GET /v1/events?%s: error field %q, want %q", c.qs, body.Error.Field, c.field)
			}
		}
	})
}
