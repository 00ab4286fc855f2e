package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// schedulesEnv is a logged-in UI with Schedules over fakes.
type schedulesEnv struct {
	*testEnv
	store *fakeScheduleStore
}

func setupSchedules(t *testing.T) *schedulesEnv {
	t.Helper()
	se := &schedulesEnv{}
	se.testEnv = setup(t, withSchedules(&se.store))
	se.login()
	return se
}

// schedule stores a schedule as the API would create it: every hour by
// default, to https://example.com/<id>.
func (se *schedulesEnv) schedule(sc schedule.Schedule) *schedule.State {
	se.t.Helper()
	if sc.Every == "" && sc.Cron == "" {
		sc.Every = "1h"
	}
	if sc.URL == "" {
		sc.URL = "https://example.com/" + sc.ID
	}
	st, _, err := se.ui.cfg.Schedules.(*schedule.Schedules).Create(context.Background(), &sc)
	if err != nil {
		se.t.Fatalf("create schedule %s: %v", sc.ID, err)
	}
	return st
}

func (se *schedulesEnv) trigger(app, id string) *scheduler.Event {
	se.t.Helper()
	_, ev, err := se.ui.cfg.Schedules.Trigger(context.Background(), app, id)
	if err != nil {
		se.t.Fatalf("trigger %s: %v", id, err)
	}
	return ev
}

func TestSchedulesNotEnabled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	r := e.get("/admin/schedules")
	wantStatus(t, r, http.StatusOK)
	if got := text(byID(t, r.doc, "schedules-disabled")); !strings.Contains(got, "not enabled") {
		t.Errorf("note %q", got)
	}
	if l := links(r.doc, "Schedules"); len(l) != 1 || l[0] != "/admin/schedules" {
		t.Errorf("Schedules nav links %v", l)
	}
	if r := e.get("/admin/schedules/shop/nightly"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a schedule page without Schedules: %d, want 404", r.StatusCode)
	}
}

func TestSchedulesPage(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	now := se.clock.Now()
	se.schedule(schedule.Schedule{App: "shop", ID: "hourly"})
	se.schedule(schedule.Schedule{App: "shop", ID: "berlin", Every: "30m", Timezone: "Europe/Berlin"})
	se.schedule(schedule.Schedule{App: "blog", ID: "digest", Every: "24h", Paused: true})
	ev := se.trigger("shop", "hourly")
	se.fb.mu.Lock()
	se.fb.find("shop", ev.ID).Status = scheduler.StatusCompleted
	se.fb.mu.Unlock()

	r := se.get("/admin/schedules")
	wantStatus(t, r, http.StatusOK)
	if got := tableHeader(t, r.doc, "schedules"); fmt.Sprint(got) != "[Application ID Cron / interval Time zone Status Next occurrence Last run]" {
		t.Errorf("columns %q", got)
	}
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(timeLayout) }
	want := [][]string{
		{"blog", "digest", "every 24h", "UTC", "paused", "—", "—"},
		{"shop", "berlin", "every 30m", "Europe/Berlin", "active", at(30*time.Minute) + " in 30m", "—"},
		{"shop", "hourly", "every 1h", "UTC", "active", at(time.Hour) + " in 1h", at(0) + " now COMPLETED"},
	}
	if got := tableRows(t, r.doc, "schedules"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schedules\n%q\nwant\n%q", got, want)
	}
	if l := links(r.doc, "berlin"); fmt.Sprint(l) != "[/admin/schedules/shop/berlin]" {
		t.Errorf("berlin links %v", l)
	}
	nav := findAll(r.doc, tag("nav"))[0]
	var cur []string
	for _, a := range findAll(nav, tag("a")) {
		if v, _ := attr(a, "aria-current"); v == "page" {
			cur = append(cur, text(a))
		}
	}
	if fmt.Sprint(cur) != "[Schedules]" {
		t.Errorf("current nav link %v", cur)
	}
	if hasID(r.doc, "schedules-disabled") || len(findAll(r.doc, func(n *htmlNode) bool { c, _ := attr(n, "class"); return c == "pager" })) != 0 {
		t.Error("one page of schedules shows a pager or the disabled note")
	}

	// Filtered by application.
	r = se.get("/admin/schedules?app=shop")
	if got := tableRows(t, r.doc, "schedules"); len(got) != 2 || got[0][1] != "berlin" || got[1][1] != "hourly" {
		t.Errorf("schedules of shop %q", got)
	}
	if v := formValues(formOf(t, r.doc, "Show")).Get("app"); v != "shop" {
		t.Errorf("the filter shows app=%q", v)
	}
	r = se.get("/admin/schedules?app=nobody")
	if got := text(findAll(r.doc, func(n *htmlNode) bool { c, _ := attr(n, "class"); return c == "empty" })[0]); got != "No schedules." {
		t.Errorf("empty list says %q", got)
	}
	r = se.get("/admin/schedules?app=" + url.QueryEscape("bad app"))
	wantStatus(t, r, http.StatusBadRequest)
	if got := flashText(t, r.doc); !strings.Contains(got, "app") {
		t.Errorf("flash %q", got)
	}

	// Storage trouble is a 503 page, as elsewhere.
	se.store.err = fmt.Errorf("redis: %w", scheduler.ErrUnavailable)
	if r := se.get("/admin/schedules"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Redis down: %d", r.StatusCode)
	}
}

func TestSchedulesPaging(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	n := schedule.DefaultListLimit + 3
	for i := range n {
		se.schedule(schedule.Schedule{App: "shop", ID: fmt.Sprintf("s%03d", i)})
	}
	se.schedule(schedule.Schedule{App: "blog", ID: "other"})
	r := se.get("/admin/schedules?app=shop")
	rows := tableRows(t, r.doc, "schedules")
	if len(rows) != schedule.DefaultListLimit || rows[0][1] != "s000" {
		t.Fatalf("first page: %d rows from %q", len(rows), rows[0])
	}
	next := links(r.doc, "Next page")
	if len(next) != 1 || len(links(r.doc, "First page")) != 0 {
		t.Fatalf("first page: Next page %v", next)
	}
	if u, _ := url.Parse(next[0]); u.Path != "/admin/schedules" || u.Query().Get("app") != "shop" || u.Query().Get("cursor") == "" {
		t.Errorf("Next page link %q", next[0])
	}
	r = se.get(next[0])
	wantStatus(t, r, http.StatusOK)
	rows = tableRows(t, r.doc, "schedules")
	if len(rows) != 3 || rows[0][1] != fmt.Sprintf("s%03d", schedule.DefaultListLimit) {
		t.Errorf("second page %q", rows)
	}
	if len(links(r.doc, "Next page")) != 0 || fmt.Sprint(links(r.doc, "First page")) != "[/admin/schedules?app=shop]" {
		t.Errorf("second page: Next %v, First %v", links(r.doc, "Next page"), links(r.doc, "First page"))
	}
	r = se.get("/admin/schedules?cursor=garbage")
	wantStatus(t, r, http.StatusBadRequest)
	if got := flashText(t, r.doc); !strings.Contains(got, "cursor") {
		t.Errorf("bad cursor flash %q", got)
	}
}

func TestSchedulePage(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	now := se.clock.Now() // 2025-03-14T15:09:26.535Z: Berlin is on CET (UTC+1)
	se.schedule(schedule.Schedule{App: "shop", ID: "berlin", Every: "1h", Timezone: "Europe/Berlin",
		URL: "https://shop.example/tick", Method: "PUT", Headers: map[string]string{"X-Team": "ops"}, Body: []byte(`{"tick":true}`),
		MaxAttempts: 3, Timeout: 5 * time.Second, FlowKey: "ticks", CallbackURL: "https://shop.example/cb"})
	first := se.trigger("shop", "berlin")
	se.clock.Advance(2 * time.Second)
	second := se.trigger("shop", "berlin")
	se.fb.mu.Lock()
	se.fb.find("shop", first.ID).Status = scheduler.StatusFailed
	se.fb.mu.Unlock()

	r := se.get("/admin/schedules/shop/berlin")
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "berlin" {
		t.Errorf("heading %q", h)
	}
	if got := text(byID(t, r.doc, "status")); got != "active" {
		t.Errorf("status %q", got)
	}
	var rows []string
	for _, row := range findAll(byID(t, r.doc, "fields"), func(n *htmlNode) bool { c, _ := attr(n, "class"); return c == "row" }) {
		var cells []string
		for _, c := range findAll(row, func(n *htmlNode) bool { return n.Data == "dt" || n.Data == "dd" }) {
			cells = append(cells, text(c))
		}
		rows = append(rows, strings.Join(cells, " "))
	}
	fields := strings.Join(rows, "\n")
	next := now.Add(time.Hour).Truncate(time.Millisecond)
	for _, want := range []string{"Application shop", "ID berlin", "Interval every 1h", "Time zone Europe/Berlin",
		"Start at —", "End at —", "Paused no", "Next occurrence " + next.Format(timeLayout), "URL https://shop.example/tick",
		"Method PUT", "Max attempts 3", "Timeout 5s", "Min backoff default", "Callback URL https://shop.example/cb",
		"Failure callback URL —", "Flow key ticks", "Created " + now.Format(timeLayout), "Revision 3"} {
		if !strings.Contains(fields, want) {
			t.Errorf("fields lack %q:\n%s", want, fields)
		}
	}
	if got := tableRows(t, r.doc, "headers"); fmt.Sprint(got) != "[[X-Team ops]]" {
		t.Errorf("headers %q", got)
	}
	if got := text(byID(t, r.doc, "body")); got != `{"tick":true}` {
		t.Errorf("body %q", got)
	}

	// The next five occurrences, an hour apart, in UTC and in Berlin.
	if got := tableHeader(t, r.doc, "upcoming"); fmt.Sprint(got) != "[# UTC Local (Europe/Berlin)]" {
		t.Errorf("upcoming columns %q", got)
	}
	up := tableRows(t, r.doc, "upcoming")
	if len(up) != 5 {
		t.Fatalf("%d upcoming occurrences, want 5: %q", len(up), up)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for i, row := range up {
		at := next.Add(time.Duration(i) * time.Hour)
		if row[0] != fmt.Sprint(i+1) || !strings.HasPrefix(row[1], at.Format(timeLayout)+" in ") ||
			row[2] != at.In(berlin).Format("2006-01-02 15:04:05")+" CET" {
			t.Errorf("occurrence %d: %q, want %s", i+1, row, at)
		}
	}

	// The last runs, newest first, with their statuses and links to their events.
	if got := tableHeader(t, r.doc, "runs"); fmt.Sprint(got) != "[Event Due Status]" {
		t.Errorf("runs columns %q", got)
	}
	runs := tableRows(t, r.doc, "runs")
	if len(runs) != 2 || runs[0][0] != second.ID || runs[0][2] != "PENDING" || runs[1][0] != first.ID || runs[1][2] != "FAILED" {
		t.Errorf("runs %q", runs)
	}
	if !strings.HasPrefix(first.ID, "berlin@") || !strings.HasPrefix(runs[1][1], first.DueAt.UTC().Format(timeLayout)) {
		t.Errorf("first run %q (event %s due %s)", runs[1], first.ID, first.DueAt)
	}
	l := links(r.doc, first.ID)
	if fmt.Sprint(l) != "[/admin/events/shop/"+first.ID+"]" {
		t.Fatalf("run links %v", l)
	}
	er := se.get(l[0])
	wantStatus(t, er, http.StatusOK)
	if h := text(findAll(er.doc, tag("h1"))[0]); h != first.ID {
		t.Errorf("the run's link opens event %q", h)
	}
	if got := buttons(r.doc); !hasText(strings.Join(got, ","), "Pause", "Trigger now", "Delete") || strings.Contains(strings.Join(got, ","), "Resume") {
		t.Errorf("an active schedule's buttons %q", got)
	}

	// A run the events no longer know shows without a status.
	se.fb.mu.Lock()
	se.fb.events = se.fb.events[:0]
	se.fb.mu.Unlock()
	if runs := tableRows(t, se.get("/admin/schedules/shop/berlin").doc, "runs"); runs[1][2] != "—" {
		t.Errorf("run of a forgotten event %q", runs[1])
	}

	// Not found: an unknown id, an id or application the rules refuse.
	for _, path := range []string{"/admin/schedules/shop/nope", "/admin/schedules/" + url.PathEscape("bad app") + "/berlin",
		"/admin/schedules/shop/" + url.PathEscape("a b"), "/admin/schedules/blog/berlin"} {
		r := se.get(path)
		wantStatus(t, r, http.StatusNotFound)
		if h := text(findAll(r.doc, tag("h1"))[0]); h != "Schedule not found" {
			t.Errorf("%s: heading %q", path, h)
		}
	}
	se.store.err = fmt.Errorf("redis: %w", scheduler.ErrUnavailable)
	if r := se.get("/admin/schedules/shop/berlin"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Redis down: %d", r.StatusCode)
	}
}

func TestScheduleActions(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	st := se.schedule(schedule.Schedule{App: "shop", ID: "hourly"})
	head := schedule.OccurrenceID("hourly", st.Next)
	if se.fb.status("shop", head) != scheduler.StatusPending {
		t.Fatal("the first occurrence was not made")
	}
	page := "/admin/schedules/shop/hourly"

	// Pause: the pending occurrence is cancelled, nothing is upcoming.
	form := formOf(t, se.get(page).doc, "Pause")
	action, _ := attr(form, "action")
	if action != page+"/pause" {
		t.Errorf("Pause posts to %q", action)
	}
	wantRedirect(t, se.post(action, formValues(form)), http.StatusSeeOther, page)
	if got := se.store.get("shop", "hourly"); !got.Paused || !got.Next.IsZero() {
		t.Fatalf("after Pause: paused %v, next %v", got.Paused, got.Next)
	}
	if got := se.fb.status("shop", head); got != scheduler.StatusCancelled {
		t.Errorf("the pending occurrence is %s after Pause", got)
	}
	r := se.get(page)
	if got := flashText(t, r.doc); got != "Schedule hourly paused: no occurrences until it is resumed." {
		t.Errorf("flash %q", got)
	}
	if got := text(byID(t, r.doc, "status")); got != "paused" {
		t.Errorf("status %q", got)
	}
	if got := text(byID(t, r.doc, "no-upcoming")); got != "None while paused." || hasID(r.doc, "upcoming") {
		t.Errorf("upcoming while paused: %q", got)
	}
	if got := buttons(r.doc); strings.Contains(strings.Join(got, ","), "Pause") {
		t.Errorf("a paused schedule's buttons %q", got)
	}
	if row := tableRows(t, se.get("/admin/schedules").doc, "schedules")[0]; row[4] != "paused" || row[5] != "—" {
		t.Errorf("list row of a paused schedule %q", row)
	}

	// Resume, an hour on: the next occurrence is in the future again.
	se.clock.Advance(90 * time.Minute)
	form = formOf(t, r.doc, "Resume")
	action, _ = attr(form, "action")
	wantRedirect(t, se.post(action, formValues(form)), http.StatusSeeOther, page)
	got := se.store.get("shop", "hourly")
	if got.Paused || !got.Next.After(se.clock.Now()) {
		t.Fatalf("after Resume: paused %v, next %v (now %v)", got.Paused, got.Next, se.clock.Now())
	}
	r = se.get(page)
	if got := flashText(t, r.doc); got != "Schedule hourly resumed from its next occurrence." {
		t.Errorf("flash %q", got)
	}
	if got := text(byID(t, r.doc, "status")); got != "active" || len(tableRows(t, r.doc, "upcoming")) != 5 {
		t.Errorf("after Resume: status %q", got)
	}
	if got := tableHeader(t, r.doc, "upcoming"); fmt.Sprint(got) != "[# UTC]" {
		t.Errorf("upcoming columns of a UTC schedule %q: no second column for the same zone", got)
	}
	if !hasID(r.doc, "no-runs") {
		t.Error("no runs yet, and the page does not say so")
	}

	// Trigger now: one extra occurrence, due now; next_at unchanged.
	form = formOf(t, r.doc, "Trigger now")
	action, _ = attr(form, "action")
	wantRedirect(t, se.post(action, formValues(form)), http.StatusSeeOther, page)
	runID := schedule.OccurrenceID("hourly", se.clock.Now())
	if se.fb.status("shop", runID) != scheduler.StatusPending {
		t.Fatalf("no occurrence %s after Trigger now", runID)
	}
	if after := se.store.get("shop", "hourly"); !after.Next.Equal(got.Next) {
		t.Errorf("Trigger moved next from %v to %v", got.Next, after.Next)
	}
	r = se.get(page)
	if got := flashText(t, r.doc); got != "Triggered schedule hourly: occurrence "+runID+" is due now." {
		t.Errorf("flash %q", got)
	}
	if runs := tableRows(t, r.doc, "runs"); len(runs) != 1 || runs[0][0] != runID || runs[0][2] != "PENDING" {
		t.Errorf("runs %q", runs)
	}

	// Delete asks first.
	form = formOf(t, r.doc, "Delete")
	action, _ = attr(form, "action")
	r = se.post(action, formValues(form))
	wantStatus(t, r, http.StatusOK)
	if h := text(byID(t, r.doc, "h-confirm")); h != "Delete schedule hourly?" {
		t.Errorf("confirmation %q", h)
	}
	if se.store.get("shop", "hourly") == nil {
		t.Fatal("deleted before confirming")
	}
	if l := links(r.doc, "Back"); fmt.Sprint(l) != "["+page+"]" {
		t.Errorf("Back links %v", l)
	}
	pending := schedule.OccurrenceID("hourly", got.Next)
	wantRedirect(t, se.post(action, formValues(formOf(t, r.doc, "Confirm"))), http.StatusSeeOther, "/admin/schedules")
	if se.store.get("shop", "hourly") != nil {
		t.Fatal("not deleted")
	}
	if st := se.fb.status("shop", pending); st != scheduler.StatusCancelled {
		t.Errorf("the pending occurrence is %s after Delete", st)
	}
	r = se.get("/admin/schedules")
	if got := flashText(t, r.doc); got != "Schedule hourly deleted." {
		t.Errorf("flash %q", got)
	}
	if rows := tableRows(t, r.doc, "schedules"); len(rows) != 0 {
		t.Errorf("the deleted schedule is still listed: %q", rows)
	}

	// Every action on a schedule that is gone: the not-found page.
	for _, a := range []string{"pause", "resume", "trigger", "delete"} {
		r := se.post(page+"/"+a, url.Values{"confirm": {"yes"}})
		wantStatus(t, r, http.StatusNotFound)
		if h := text(findAll(r.doc, tag("h1"))[0]); h != "Schedule not found" {
			t.Errorf("%s of a deleted schedule: %q", a, h)
		}
	}
	// Storage trouble during an action: 503, no flash set.
	se.schedule(schedule.Schedule{App: "shop", ID: "again"})
	se.store.err = fmt.Errorf("redis: %w", scheduler.ErrUnavailable)
	if r := se.post("/admin/schedules/shop/again/pause", nil); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("pause with Redis down: %d", r.StatusCode)
	}
}

func TestScheduleFlashIsChecked(t *testing.T) {
	t.Parallel()
	cases := map[[2]string]string{
		{"sch-pause", "<b>x</b>"}:      "Schedule  paused: no occurrences until it is resumed.",
		{"sch-trigger", "nope"}:        "Triggered: one extra occurrence is due now.",
		{"sch-trigger", "a@123"}:       "Triggered schedule a: occurrence a@123 is due now.",
		{"sch-trigger", "<x>@1"}:       "Triggered: one extra occurrence is due now.",
		{"sch-delete", "nightly.v2"}:   "Schedule nightly.v2 deleted.",
		{"sch-unknown", "nightly"}:     "",
		{"sub-created", "not-a-sched"}: "",
	}
	for in, want := range cases {
		f := scheduleFlash(in[0], in[1])
		got := ""
		if f != nil {
			got = f.Text
		}
		if got != want {
			t.Errorf("scheduleFlash(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

func TestSchedulesCSRF(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	se.schedule(schedule.Schedule{App: "shop", ID: "hourly"})
	for _, a := range []string{"pause", "resume", "trigger", "delete"} {
		path := "/admin/schedules/shop/hourly/" + a
		if r := se.post(path, url.Values{"csrf": {""}, "confirm": {"yes"}}); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a token: %d, want 403", path, r.StatusCode)
		}
		if r := se.post(path, url.Values{"confirm": {"yes"}}, "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s from another origin: %d, want 403", path, r.StatusCode)
		}
	}
	if st := se.store.get("shop", "hourly"); st == nil || st.Paused || len(st.Runs) != 0 || st.Rev != 1 {
		t.Errorf("a refused POST changed the schedule: %+v", st)
	}
	// And every Schedules page needs a login.
	anon := setup(t, withSchedules(new(*fakeScheduleStore)))
	for _, path := range []string{"/admin/schedules", "/admin/schedules/shop/hourly"} {
		if r := anon.get(path); r.StatusCode != http.StatusFound {
			t.Errorf("%s without a session: %d, want a redirect to the login", path, r.StatusCode)
		}
	}
	if r := anon.post("/admin/schedules/shop/hourly/pause", nil); r.StatusCode != http.StatusFound {
		t.Errorf("an action without a session: %d, want a redirect to the login", r.StatusCode)
	}
}

func TestSchedulesXSSEscaped(t *testing.T) {
	t.Parallel()
	se := setupSchedules(t)
	const evil = `"><script>alert(1)</script>`
	se.schedule(schedule.Schedule{App: "shop", ID: "x", URL: "https://example.com/?q=" + url.QueryEscape(evil),
		Headers: map[string]string{"X-Evil": evil}, Body: []byte(evil)})
	for _, r := range []*response{se.get("/admin/schedules"), se.get("/admin/schedules/shop/x"),
		se.get("/admin/schedules?app=" + url.QueryEscape(evil))} {
		if strings.Contains(r.body, "<script>alert") {
			t.Errorf("%s: unescaped markup", r.Request.URL)
		}
		if n := len(findAll(r.doc, tag("script"))); n != 1 {
			t.Errorf("%s: %d <script> elements, want only htmx", r.Request.URL, n)
		}
	}
}
