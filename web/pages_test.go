package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// ev is a test event.
func ev(app, id string, status scheduler.Status) *scheduler.Event {
	return &scheduler.Event{App: app, ID: id, Status: status}
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	now := e.clock.Now()
	e.fb.dash = scheduler.Dashboard{
		Counts: map[scheduler.Status]int64{
			scheduler.StatusPending: 12, scheduler.StatusProcessing: 3, scheduler.StatusCompleted: 1000,
			scheduler.StatusFailed: 7, scheduler.StatusServiceUnavailable: 2, scheduler.StatusCancelled: 1,
		},
		DueSoon: 4,
		PerMinute: []scheduler.MinuteStat{
			{Minute: now.Truncate(time.Minute).Add(-2 * time.Minute), Deliveries: 40, Failures: 3},
			{Minute: now.Truncate(time.Minute), Deliveries: 10},
		},
		Workers:       []scheduler.WorkerInfo{{ID: "w-1", Host: "box", PID: 42, InFlight: 5, Heartbeat: now.Add(-2 * time.Second), Started: now.Add(-time.Hour)}},
		OutboxEntries: 17, ArchiveLag: 1500 * time.Millisecond,
	}
	r := e.get("/admin/")
	wantStatus(t, r, http.StatusOK)
	var headings []string
	for _, h := range findAll(r.doc, tag("h2")) {
		headings = append(headings, text(h))
	}
	for _, want := range []string{"Events by status", "Due soon", "Deliveries per minute", "Workers", "Archive"} {
		if !slices.Contains(headings, want) {
			t.Errorf("no section %q in %v", want, headings)
		}
	}
	counts := map[string]string{}
	for _, table := range findAll(r.doc, func(n *htmlNode) bool { c, _ := attr(n, "class"); return c == "counts" }) {
		for _, tr := range findAll(table, tag("tr"))[1:] {
			cells := findAll(tr, func(n *htmlNode) bool { return n.Data == "td" || n.Data == "th" })
			counts[text(cells[0])] = text(cells[1])
		}
	}
	want := map[string]string{"PENDING": "12", "PROCESSING": "3", "COMPLETED": "1000", "FAILED": "7", "SERVICE_UNAVAILABLE": "2", "CANCELLED": "1"}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	page := text(r.doc)
	for _, want := range []string{"4", "17", "1.5s"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	// The chart: inline SVG, a <title> per bar, sized by attributes, not styles.
	svg := findAll(r.doc, tag("svg"))
	if len(svg) != 1 {
		t.Fatalf("%d <svg>, want 1", len(svg))
	}
	rects := findAll(svg[0], tag("rect"))
	if len(rects) < 60 {
		t.Errorf("%d bars, want one per minute at least", len(rects))
	}
	var titles []string
	for _, rc := range rects {
		ts := findAll(rc, tag("title"))
		if len(ts) != 1 {
			t.Fatal("a bar without a <title>")
		}
		titles = append(titles, text(ts[0]))
	}
	twoAgo := now.Truncate(time.Minute).Add(-2 * time.Minute).Format("15:04")
	if !slices.Contains(titles, twoAgo+" UTC: 40 deliveries, 3 failed") {
		t.Errorf("no bar title for %s in %v", twoAgo, titles[len(titles)-4:])
	}
	rows := tableRows(t, r.doc, "workers")
	if len(rows) != 1 || rows[0][0] != "w-1" || rows[0][3] != "5" || !strings.HasPrefix(rows[0][4], "2025-03-14T15:09:24.535Z 2s ago") {
		t.Errorf("workers %q", rows)
	}
	if hasID(r.doc, "archive-note") {
		t.Error("archive note shown with a working archive")
	}
}

func TestDashboardArchiveUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	e.fb.dash = scheduler.Dashboard{
		Counts:     map[scheduler.Status]int64{scheduler.StatusPending: 1, scheduler.StatusProcessing: 0},
		ArchiveErr: errors.New("dial tcp 10.0.0.9:3306: connection refused (secret detail)"),
	}
	r := e.get("/admin/")
	wantStatus(t, r, http.StatusOK)
	if note := text(byID(t, r.doc, "archive-note")); !strings.Contains(note, "archive database cannot be read") {
		t.Errorf("archive note %q", note)
	}
	if strings.Contains(r.body, "secret detail") {
		t.Error("the archive error's text reached the page")
	}
	e.fb.dash.ArchiveErr = scheduler.ErrNoArchive
	r = e.get("/admin/")
	if note := text(byID(t, r.doc, "archive-note")); !strings.Contains(note, "CASSATA_ARCHIVE_DSN") {
		t.Errorf("archive note %q", note)
	}
}

func TestBackendUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	e.fb.dashErr = fmt.Errorf("redis: %w: dial 10.1.1.1: secret", scheduler.ErrUnavailable)
	r := e.get("/admin/")
	wantStatus(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(text(r.doc), "cannot be reached") || strings.Contains(r.body, "secret") {
		t.Errorf("503 page: %s", text(r.doc))
	}
	e.fb.searchErr = scheduler.ErrNoArchive
	r = e.get("/admin/events")
	wantStatus(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(text(r.doc), "CASSATA_ARCHIVE_DSN") {
		t.Errorf("no-archive page: %s", text(r.doc))
	}
	e.fb.getErr = errors.New("boom: goroutine 1 [running]")
	r = e.get("/admin/events/a/b")
	wantStatus(t, r, http.StatusInternalServerError)
	if strings.Contains(r.body, "goroutine") || strings.Contains(r.body, "boom") {
		t.Error("internal error details reached the page")
	}
}

func TestEventsPage(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	for i := range 60 {
		st := []scheduler.Status{scheduler.StatusPending, scheduler.StatusCompleted, scheduler.StatusFailed}[i%3]
		x := ev("shop", fmt.Sprintf("ev-%03d", i), st)
		if st == scheduler.StatusFailed {
			x.Attempts, x.LastStatusCode, x.LastError = 3, 502, "bad gateway"
		}
		e.fb.add(x)
	}
	e.fb.add(ev("other", "zz-1", scheduler.StatusPending))
	r := e.get("/admin/events")
	wantStatus(t, r, http.StatusOK)
	if got := strings.Join(tableHeader(t, r.doc, "events"), ","); got != "ID,Application,Status,Due,Attempts,Last response" {
		t.Errorf("header %q", got)
	}
	rows := tableRows(t, r.doc, "events")
	if len(rows) != scheduler.DefaultSearchLimit {
		t.Fatalf("%d rows, want a page of %d", len(rows), scheduler.DefaultSearchLimit)
	}
	if rows[0][0] != "zz-1" || rows[1][0] != "ev-059" {
		t.Errorf("not newest first: %q, %q", rows[0], rows[1])
	}
	if got := rows[1]; got[2] != "FAILED" || got[4] != "3" || got[5] != "502 · bad gateway" || !strings.HasPrefix(got[3], "2025-03-14T15:14:26.535Z in 5m") {
		t.Errorf("row %q", got)
	}
	if l := links(r.doc, "zz-1"); len(l) != 1 || l[0] != "/admin/events/other/zz-1" {
		t.Errorf("id link %v", l)
	}
	// The search form.
	form := formOf(t, r.doc, "Search")
	if m, _ := attr(form, "method"); m != "get" {
		t.Errorf("search form method %q", m)
	}
	v := formValues(form)
	for _, name := range []string{"q", "app", "from", "to"} {
		if _, ok := v[name]; !ok {
			t.Errorf("no input %q", name)
		}
	}
	var options []string
	for _, o := range findAll(form, tag("option")) {
		options = append(options, text(o))
	}
	if strings.Join(options, ",") != "Any,PENDING,PROCESSING,COMPLETED,FAILED,SERVICE_UNAVAILABLE,CANCELLED" {
		t.Errorf("status options %v", options)
	}
	// Next page, then a last page without one.
	next := links(r.doc, "Next page")
	if len(next) != 1 {
		t.Fatalf("Next page links %v", next)
	}
	r = e.get(next[0])
	wantStatus(t, r, http.StatusOK)
	if rows := tableRows(t, r.doc, "events"); len(rows) != 11 {
		t.Errorf("second page %d rows, want 11", len(rows))
	}
	if len(links(r.doc, "Next page")) != 0 || len(links(r.doc, "First page")) != 1 {
		t.Error("last page links wrong")
	}

	// Filters: they reach the search and stay in the form and the pager.
	r = e.get("/admin/events?" + url.Values{"status": {"FAILED"}, "app": {"shop"}, "q": {"ev-05"}}.Encode())
	rows = tableRows(t, r.doc, "events")
	if len(rows) != 4 || rows[0][0] != "ev-059" || rows[3][0] != "ev-050" {
		t.Errorf("filtered rows %q", rows)
	}
	v = formValues(formOf(t, r.doc, "Search"))
	if v.Get("q") != "ev-05" || v.Get("app") != "shop" {
		t.Errorf("form lost the filters: %v", v)
	}
	sel := findAll(formOf(t, r.doc, "Search"), func(n *htmlNode) bool { _, ok := attr(n, "selected"); return n.Data == "option" && ok })
	if len(sel) != 1 || text(sel[0]) != "FAILED" {
		t.Error("status not selected")
	}
	// URL substring search.
	r = e.get("/admin/events?q=" + url.QueryEscape("hook/zz"))
	if rows := tableRows(t, r.doc, "events"); len(rows) != 1 || rows[0][0] != "zz-1" {
		t.Errorf("URL search rows %q", rows)
	}
	// Due time range, datetime-local (UTC) and RFC 3339.
	r = e.get("/admin/events?from=2025-03-14T15:14&to=" + url.QueryEscape("2025-03-14T15:15:00Z"))
	wantStatus(t, r, http.StatusOK)
	if rows := tableRows(t, r.doc, "events"); len(rows) == 0 {
		t.Error("time range finds nothing")
	}
	r = e.get("/admin/events?from=2025-03-14T15:20")
	if rows := tableRows(t, r.doc, "events"); len(rows) != 0 {
		t.Errorf("from after every due time finds %d", len(rows))
	}
	r = e.get("/admin/events?from=yesterday")
	wantStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(flashText(t, r.doc), "yesterday") {
		t.Error("bad time not explained")
	}
	r = e.get("/admin/events?status=BOGUS")
	wantStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(flashText(t, r.doc), "unknown status") {
		t.Error("bad status not explained")
	}
}

func TestFailuresPage(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	e.fb.add(ev("a", "f1", scheduler.StatusFailed))
	e.fb.add(ev("a", "ok", scheduler.StatusCompleted))
	e.fb.add(ev("a", "su", scheduler.StatusServiceUnavailable))
	e.fb.add(ev("b", "f2", scheduler.StatusFailed))
	e.fb.add(ev("a", "c1", scheduler.StatusCancelled))
	r := e.get("/admin/failures")
	wantStatus(t, r, http.StatusOK)
	var ids []string
	for _, row := range tableRows(t, r.doc, "events") {
		ids = append(ids, row[0])
	}
	if strings.Join(ids, ",") != "f2,su,f1" {
		t.Errorf("failures %v, want newest first f2,su,f1", ids)
	}
	r = e.get("/admin/failures?app=a")
	ids = ids[:0]
	for _, row := range tableRows(t, r.doc, "events") {
		ids = append(ids, row[0])
	}
	if strings.Join(ids, ",") != "su,f1" {
		t.Errorf("failures of a: %v", ids)
	}
	v := formValues(formOf(t, r.doc, "Retry all matching"))
	if v.Get("app") != "a" || v.Get("csrf") == "" {
		t.Errorf("bulk retry form %v", v)
	}
}

func TestEventPage(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	now := e.clock.Now()
	x := ev("shop", "order-1", scheduler.StatusFailed)
	x.URL, x.Method = "https://shop.example/hooks?x=1", "PUT"
	x.Headers = map[string]string{"X-B": "2", "Content-Type": "application/json"}
	x.Body = []byte(`{"order":1}`)
	x.Attempts, x.MaxAttempts, x.LastStatusCode, x.LastError = 2, 5, 500, "server error"
	x.FinishedAt = now.Add(-time.Minute)
	x.FlowKey = "tenant:1"
	x.History = []scheduler.Attempt{
		{Attempt: 1, At: now.Add(-3 * time.Minute).UnixMilli(), Error: "dial tcp: refused", DurationMS: 0, Worker: "w1"},
		{Attempt: 2, At: now.Add(-time.Minute).UnixMilli(), StatusCode: 500, Error: "server error", DurationMS: 345, Worker: "w2", Response: "oops"},
	}
	e.fb.add(x)
	r := e.get("/admin/events/shop/order-1")
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "order-1" {
		t.Errorf("heading %q", h)
	}
	fields := map[string]string{}
	for _, dt := range findAll(byID(t, r.doc, "fields"), tag("dt")) {
		dd := dt.NextSibling
		for dd != nil && dd.Data != "dd" {
			dd = dd.NextSibling
		}
		fields[text(dt)] = text(dd)
	}
	for label, want := range map[string]string{
		"Application": "shop", "ID": "order-1", "Status": "FAILED", "URL": "https://shop.example/hooks?x=1", "Method": "PUT",
		"Due": "2025-03-14T15:14:26.535Z in 5m", "Finished": "2025-03-14T15:08:26.535Z 1m ago",
		"Attempts": "2", "Max attempts": "5", "Last status code": "500", "Last error": "server error",
		"Flow key": "tenant:1",
	} {
		if fields[label] != want {
			t.Errorf("field %s = %q, want %q", label, fields[label], want)
		}
	}
	for _, label := range []string{"Created", "Updated"} {
		if _, ok := fields[label]; !ok {
			t.Errorf("no field %s", label)
		}
	}
	if got := tableRows(t, r.doc, "headers"); fmt.Sprint(got) != "[[Content-Type application/json] [X-B 2]]" {
		t.Errorf("headers %q", got)
	}
	if got := text(byID(t, r.doc, "body")); got != `{"order":1}` {
		t.Errorf("body %q", got)
	}
	if got := strings.Join(tableHeader(t, r.doc, "history"), ","); got != "#,At,Status code,Error,Duration,Worker" {
		t.Errorf("history header %q", got)
	}
	hist := tableRows(t, r.doc, "history")
	if len(hist) != 2 || hist[0][0] != "2" || hist[0][2] != "500" || hist[0][4] != "345 ms" || hist[0][5] != "w2" ||
		!strings.Contains(hist[0][3], "oops") || hist[1][3] != "dial tcp: refused" || hist[1][2] != "—" || hist[1][4] != "<1 ms" {
		t.Errorf("history %q", hist)
	}
	if got := text(byID(t, r.doc, "status")); got != "FAILED" {
		t.Errorf("#status %q", got)
	}
}

func TestEventPageButtonsPerStatus(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	want := map[scheduler.Status]string{
		scheduler.StatusPending:            "Run now,Cancel",
		scheduler.StatusProcessing:         "",
		scheduler.StatusCompleted:          "",
		scheduler.StatusFailed:             "Retry",
		scheduler.StatusServiceUnavailable: "Retry",
		scheduler.StatusCancelled:          "Retry",
	}
	for st, buttonsWant := range want {
		e.fb.add(ev("a", "e-"+string(st), st))
		r := e.get("/admin/events/a/e-" + string(st))
		wantStatus(t, r, http.StatusOK)
		got := strings.Join(buttons(byID(t, r.doc, "event-actions")), ",")
		if got != buttonsWant {
			t.Errorf("%s: buttons %q, want %q", st, got, buttonsWant)
		}
	}
}

func TestEventBody(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	dropped := ev("a", "dropped", scheduler.StatusCompleted)
	dropped.BodyDropped = true
	e.fb.add(dropped)
	e.fb.add(ev("a", "empty", scheduler.StatusPending))
	big := ev("a", "big", scheduler.StatusPending)
	big.Body = []byte(strings.Repeat("é", 3000)) // 6000 bytes
	e.fb.add(big)
	if got := text(byID(t, e.get("/admin/events/a/dropped").doc, "body")); got != "(not stored)" {
		t.Errorf("dropped body %q", got)
	}
	if got := text(byID(t, e.get("/admin/events/a/empty").doc, "body")); got != "(empty)" {
		t.Errorf("empty body %q", got)
	}
	r := e.get("/admin/events/a/big")
	if got := text(byID(t, r.doc, "body")); got != strings.Repeat("é", 2048) {
		t.Errorf("big body preview: %d bytes", len(got))
	}
	if !strings.Contains(text(r.doc), "First 4096 of 6000 bytes.") {
		t.Error("truncation not said")
	}
}

func TestEventNotFound(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	r := e.get("/admin/events/a/missing")
	wantStatus(t, r, http.StatusNotFound)
	if !strings.Contains(text(r.doc), "Event not found") {
		t.Errorf("404 page: %s", text(r.doc))
	}
	// Actions on it too.
	wantStatus(t, e.post("/admin/events/a/missing/cancel", nil), http.StatusNotFound)
}

func TestOddIDs(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	for _, id := range []string{"a?b#c", "100%", "x&y=z", "semi;colon", "ünï"} {
		e.fb.add(ev("a", id, scheduler.StatusPending))
		r := e.get("/admin/events")
		l := links(r.doc, id)
		if len(l) != 1 {
			t.Fatalf("%q: links %v", id, l)
		}
		r = e.get(l[0])
		wantStatus(t, r, http.StatusOK)
		if h := text(findAll(r.doc, tag("h1"))[0]); h != id {
			t.Errorf("%q: heading %q", id, h)
		}
		form := formOf(t, r.doc, "Cancel")
		action, _ := attr(form, "action")
		r = e.post(action, formValues(form))
		wantRedirect(t, r, http.StatusSeeOther, l[0])
		if st := e.fb.status("a", id); st != scheduler.StatusCancelled {
			t.Errorf("%q: status %s after cancel", id, st)
		}
	}
}

func TestXSSEscaped(t *testing.T) {
	t.Parallel()
	e := setup(t, open)
	const evil = `<script>alert(1)<`
	x := ev("a", evil, scheduler.StatusFailed)
	x.Body = []byte(`</pre><script>alert(2)</script>`)
	x.Headers = map[string]string{"X-<script>": `"><script>alert(3)</script>`}
	x.URL = `javascript:alert(4)`
	x.LastError = `<img src=x onerror=alert(5)>`
	x.History = []scheduler.Attempt{{Attempt: 1, Error: `<script>alert(6)</script>`, Response: `<b onmouseover=alert(7)>`}}
	e.fb.add(x)
	for _, path := range []string{"/admin/events", "/admin/failures", "/admin/events/a/" + url.PathEscape(evil),
		"/admin/events?q=" + url.QueryEscape(`"><script>alert(8)</script>`)} {
		r := e.get(path)
		wantStatus(t, r, http.StatusOK)
		if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "<img") || strings.Contains(r.body, "<b ") {
			t.Errorf("%s: unescaped markup in the page", path)
		}
		scripts := findAll(r.doc, tag("script"))
		if len(scripts) != 1 {
			t.Errorf("%s: %d <script> elements, want only htmx", path, len(scripts))
		}
		for _, n := range findAll(r.doc, func(*htmlNode) bool { return true }) {
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: event handler attribute %s", path, a.Key)
				}
			}
		}
	}
	r := e.get("/admin/events/a/" + url.PathEscape(evil))
	if got := text(byID(t, r.doc, "body")); got != `</pre><script>alert(2)</script>` {
		t.Errorf("body shown as %q", got)
	}
	if h := text(findAll(r.doc, tag("h1"))[0]); h != evil {
		t.Errorf("heading %q", h)
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.get("/admin/login")
	var css, js string
	for _, l := range findAll(r.doc, tag("link")) {
		css, _ = attr(l, "href")
	}
	for _, s := range findAll(r.doc, tag("script")) {
		js, _ = attr(s, "src")
	}
	if !strings.HasPrefix(css, "/admin/static/cassata.css?v=") || !strings.HasPrefix(js, "/admin/static/htmx.min.js?v=") {
		t.Fatalf("asset URLs %q %q", css, js)
	}
	for path, ctype := range map[string]string{css: "text/css", js: "javascript"} {
		r := e.get(path)
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: Content-Type %q", path, r.Header.Get("Content-Type"))
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=86400") {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		if len(r.body) < 1000 {
			t.Errorf("%s: %d bytes", path, len(r.body))
		}
	}
	wantStatus(t, e.get("/admin/static/nope.js"), http.StatusNotFound)
	// The htmx config keeps it within the CSP.
	meta := findAll(r.doc, func(n *htmlNode) bool { v, _ := attr(n, "name"); return n.Data == "meta" && v == "htmx-config" })
	if len(meta) != 1 {
		t.Fatal("no htmx-config meta")
	}
	if c, _ := attr(meta[0], "content"); !strings.Contains(c, `"includeIndicatorStyles":false`) {
		t.Errorf("htmx config %s", c)
	}
}

func TestRelativeTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0: "now", 5 * time.Minute: "in 5m", -3 * time.Minute: "3m ago", 90 * time.Second: "in 1m",
		-30 * time.Second: "30s ago", 5 * time.Hour: "in 5h", -72 * time.Hour: "3d ago",
	} {
		if got := relative(now.Add(d), now); got != want {
			t.Errorf("relative(%v) = %q, want %q", d, got, want)
		}
	}
	tv := newTime(time.Date(2025, 1, 1, 1, 2, 3, 4_000_000, time.FixedZone("X", 3600)), now)
	if tv.Abs != "2025-01-01T00:02:03.004Z" {
		t.Errorf("absolute time %q", tv.Abs)
	}
}
