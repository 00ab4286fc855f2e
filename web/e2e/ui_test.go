package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cassata/cassata/scheduler"
)

// The UI tests follow /work/spec/ui-spec.md (routes, labels, ids, field
// names) and act as an operator would: typing, clicking, reading what the
// page shows. The scheduler is consulted only to prepare data and to check
// that what the page claims really happened.

const app = "shop"

// login signs in through the form, starting from a page that needs a login.
func (tb *tab) login() {
	tb.t.Helper()
	tb.navigate("/admin/")
	if p := tb.path(); !strings.HasPrefix(p, "/admin/login") {
		tb.t.Fatalf("/admin/ without a session shows %s, want the login page", p)
	}
	tb.typeInto(field("username"), "admin")
	tb.typeInto(field("password"), adminPassword)
	tb.click(button("Log in"))
	tb.waitVisible(heading("Events by status"))
}

// textNode finds the element whose own text contains s.
func textNode(s string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//*[text()[contains(normalize-space(.), '%s')]]`, s))
}

// markPage tags the current document, so that stillSamePage can tell an
// in-place update from a page load.
func (tb *tab) markPage() {
	tb.t.Helper()
	tb.do("mark page", chromedp.Evaluate[chromedp.Void](`window.cassataE2E = "same document"`))
}

func (tb *tab) stillSamePage() bool {
	tb.t.Helper()
	v, err := chromedp.Run(tb.timeout(), chromedp.Evaluate[string](`window.cassataE2E || ""`))
	if err != nil {
		tb.t.Fatalf("read page mark: %v", err)
	}
	return v == "same document"
}

func eventPath(app, id string) string {
	return "/admin/events/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }

// TestLoginDashboardLogout: the login form turns a wrong password away and
// lets admin in; the dashboard shows the counts per status and the other
// sections of the spec; logging out ends the session.
func TestLoginDashboardLogout(t *testing.T) {
	t.Parallel()
	s := setup(t)
	now := time.Now()
	for i := range 3 {
		s.create(app, fmt.Sprintf("ok-%d", i), "/ok", now, 1)
	}
	for i := range 2 {
		s.create(app, fmt.Sprintf("fail-%d", i), "/fail", now, 1)
	}
	s.create(app, "reject-0", "/reject", now, 1)
	for i := range 2 {
		s.create(app, fmt.Sprintf("later-%d", i), "/ok", now.Add(time.Hour), 1)
	}
	for i := range 3 {
		s.waitStatus(app, fmt.Sprintf("ok-%d", i), scheduler.StatusCompleted)
	}
	for i := range 2 {
		s.waitStatus(app, fmt.Sprintf("fail-%d", i), scheduler.StatusServiceUnavailable)
	}
	s.waitStatus(app, "reject-0", scheduler.StatusFailed)
	s.waitSearchable(scheduler.SearchQuery{App: app, Statuses: []scheduler.Status{
		scheduler.StatusCompleted, scheduler.StatusFailed, scheduler.StatusServiceUnavailable}}, 6)

	tb := newTab(t, s.srv.URL)
	tb.navigate("/")
	if p := tb.path(); !strings.HasPrefix(p, "/admin/login") {
		t.Fatalf("/ without a session ends at %s, want /admin/login?next=...", p)
	}
	tb.waitVisible(button("Log in"))
	tb.screenshot("login")

	tb.typeInto(field("username"), "admin")
	tb.typeInto(field("password"), "not-the-password")
	tb.click(button("Log in"))
	tb.waitVisible(textNode("Invalid username or password"))
	if tb.has(heading("Events by status")) {
		t.Fatal("a wrong password shows the dashboard")
	}

	tb.typeInto(field("username"), "admin")
	tb.typeInto(field("password"), adminPassword)
	tb.click(button("Log in"))
	tb.waitVisible(heading("Events by status"))
	if p := tb.path(); p != "/admin/" {
		t.Errorf("after login the browser is at %s, want /admin/", p)
	}

	for _, l := range []string{"Dashboard", "Events", "Failures"} {
		if !tb.has(navLink(l)) {
			t.Errorf("nav bar has no link %q", l)
		}
	}
	for _, h := range []string{"Due soon", "Deliveries per minute", "Workers", "Archive"} {
		if !tb.has(heading(h)) {
			t.Errorf("dashboard has no heading %q", h)
		}
	}
	// One row per status with its count: live ones from Redis, finished
	// ones from the archive.
	for st, n := range map[scheduler.Status]int{
		scheduler.StatusPending: 2, scheduler.StatusCompleted: 3, scheduler.StatusFailed: 1,
		scheduler.StatusServiceUnavailable: 2, scheduler.StatusCancelled: 0,
	} {
		row := tb.text(chromedp.Search(fmt.Sprintf(`//tr[*[normalize-space(.)='%s']]`, st)))
		if f := strings.Fields(row); len(f) < 2 || f[len(f)-1] != strconv.Itoa(n) {
			t.Errorf("Events by status: row %q, want %s with count %d", row, st, n)
		}
	}
	if !tb.has(`//*[local-name()='svg']//*[local-name()='title']`) {
		t.Error("Deliveries per minute: no <svg> chart with a <title> per bar")
	}
	if !tb.has(`//tr[*[contains(normalize-space(.), 'e2e-worker')]]`) {
		t.Error("Workers: the running worker e2e-worker is not listed")
	}
	tb.screenshot("dashboard")
	tb.setViewport(mobileWidth, mobileHeight, true)
	tb.navigate("/admin/")
	tb.waitVisible(heading("Events by status"))
	if w, err := chromedp.Run(tb.timeout(), chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil {
		t.Fatal(err)
	} else if w > mobileWidth {
		t.Errorf("dashboard at %dpx is %dpx wide: it scrolls sideways on a phone", mobileWidth, w)
	}
	tb.screenshot("dashboard-mobile")
	tb.setViewport(desktopWidth, desktopHeight, false)

	tb.click(button("Log out"))
	tb.waitVisible(button("Log in"))
	tb.navigate("/admin/events")
	if p := tb.path(); !strings.HasPrefix(p, "/admin/login") {
		t.Errorf("after logout /admin/events shows %s, want the login page", p)
	}
}

// TestSearchOpenCancel: find a pending event by an id prefix, open it from
// the results and cancel it; the status changes in place.
func TestSearchOpenCancel(t *testing.T) {
	t.Parallel()
	s := setup(t)
	later := time.Now().Add(time.Hour)
	const id = "order-4711-a"
	s.create(app, id, "/ok", later, 0)
	s.create(app, "order-4711-b", "/ok", later.Add(time.Minute), 0)
	s.create(app, "invoice-0815", "/ok", later, 0)
	s.waitSearchable(scheduler.SearchQuery{App: app}, 3)

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Events"))
	tb.waitVisible(field("q"))
	tb.typeInto(field("q"), "order-4711")
	tb.click(button("Search"))
	// The unfiltered list already shows order-4711-b: wait for the search's
	// own page (its URL carries q) before reading the results.
	tb.waitPath("the search page", func(p string) bool { return strings.Contains(p, "q=order-4711") })
	tb.waitText(chromedp.Search(`//table[@id='events']`), "search results", func(s string) bool {
		return strings.Contains(s, "order-4711-b")
	})
	results := tb.text(chromedp.Search(`//table[@id='events']`))
	if !strings.Contains(results, id) || strings.Contains(results, "invoice-0815") {
		t.Errorf("search for order-4711 shows:\n%s\nwant %s and order-4711-b, not invoice-0815", results, id)
	}
	for _, h := range []string{"ID", "Application", "Status", "Due", "Attempts", "Last response"} {
		if !tb.has(chromedp.Search(fmt.Sprintf(`//table[@id='events']//th[normalize-space(.)='%s']`, h))) {
			t.Errorf("results table has no column %q", h)
		}
	}
	if q, err := url.ParseQuery(strings.TrimPrefix(tb.path(), "/admin/events?")); err != nil || q.Get("q") != "order-4711" {
		t.Errorf("search page URL %s does not carry q=order-4711", tb.path())
	}
	tb.screenshot("events")

	tb.click(chromedp.Search(fmt.Sprintf(`//table[@id='events']//a[normalize-space(.)='%s']`, id)))
	tb.waitVisible(heading(id))
	if p := tb.path(); p != eventPath(app, id) {
		t.Errorf("the id links to %s, want %s", p, eventPath(app, id))
	}
	tb.waitText(byID("status"), "status before cancel", equals("PENDING"))
	for _, dt := range []string{"Application", "ID", "Status", "URL", "Method", "Due", "Created", "Attempts", "Max attempts"} {
		if !tb.has(chromedp.Search(fmt.Sprintf(`//dl//dt[normalize-space(.)='%s']`, dt))) {
			t.Errorf("event page has no field %q", dt)
		}
	}
	if !tb.has(button("Run now")) || tb.has(button("Retry")) {
		t.Error("a PENDING event should offer Run now and not Retry")
	}
	if body := tb.text(`//pre`); !strings.Contains(body, `{"order":4711}`) {
		t.Errorf("body preview shows %q, want the event's body", body)
	}
	tb.screenshot("event")

	tb.markPage()
	tb.click(button("Cancel"))
	tb.waitText(byID("status"), "status after Cancel", equals("CANCELLED"))
	if !tb.stillSamePage() {
		t.Error("Cancel reloaded the page; the spec wants the result shown in place (htmx swap of #event-actions)")
	}
	if got := s.status(app, id); got != scheduler.StatusCancelled {
		t.Errorf("after Cancel the scheduler has %s/%s as %s", app, id, got)
	}
	if got := s.status(app, "order-4711-b"); got != scheduler.StatusPending {
		t.Errorf("cancel touched the other event: it is %s", got)
	}
	tb.waitVisible(button("Retry")) // CANCELLED can be retried
	if tb.has(button("Cancel")) {
		t.Error("a CANCELLED event still offers Cancel")
	}
}

// TestRetryFailed: an event that ended after its one attempt — 500, so
// SERVICE_UNAVAILABLE, or 400, so FAILED — shows that attempt, and Retry
// puts it back to PENDING in place.
func TestRetryFailed(t *testing.T) {
	t.Parallel()
	s := setup(t)
	cases := []struct {
		id, path string
		status   scheduler.Status
		code     string
	}{
		{"pay-1", "/fail", scheduler.StatusServiceUnavailable, "500"},
		{"pay-2", "/reject", scheduler.StatusFailed, "400"},
	}
	for _, c := range cases {
		s.create(app, c.id, c.path, time.Now(), 1)
	}
	for _, c := range cases {
		s.waitStatus(app, c.id, c.status)
	}
	s.waitSearchable(scheduler.SearchQuery{App: app, Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}}, len(cases))
	s.stopWorker() // so the retried events stay PENDING for the check

	tb := newTab(t, s.srv.URL)
	tb.login()
	for _, c := range cases {
		tb.navigate(eventPath(app, c.id))
		tb.waitText(byID("status"), "status of "+c.id, equals(string(c.status)))
		if history := tb.text(`//table[@id='history']`); !strings.Contains(history, c.code) {
			t.Errorf("%s: history table does not show the %s:\n%s", c.id, c.code, history)
		}
		if tb.has(button("Cancel")) || tb.has(button("Run now")) {
			t.Errorf("%s: a %s event offers Cancel or Run now", c.id, c.status)
		}
		if c.id == "pay-1" {
			tb.screenshot("event-failed")
		}

		tb.markPage()
		tb.click(button("Retry"))
		tb.waitText(byID("status"), c.id+" after Retry", equals("PENDING"))
		if !tb.stillSamePage() {
			t.Errorf("%s: Retry reloaded the page; the spec wants the result shown in place", c.id)
		}
		if got := s.status(app, c.id); got != scheduler.StatusPending {
			t.Errorf("%s: after Retry the scheduler has the event as %s", c.id, got)
		}
	}
}

// TestBulkRetry: on Failures, "Retry all matching" asks for confirmation
// with the count, and Confirm retries exactly the failed events matching the
// filter, saying how many.
func TestBulkRetry(t *testing.T) {
	t.Parallel()
	s := setup(t)
	const failed = 4
	now := time.Now()
	for i := range failed { // half FAILED (400), half SERVICE_UNAVAILABLE (500)
		s.create(app, fmt.Sprintf("bulk-%d", i), []string{"/reject", "/fail"}[i%2], now, 1)
	}
	s.create("other", "other-0", "/fail", now, 1)                 // failed, but another application
	s.create(app, "bulk-cancelled", "/ok", now.Add(time.Hour), 0) // not a failure: Failures must leave it alone
	if _, err := s.sched.Cancel(context.Background(), app, "bulk-cancelled"); err != nil {
		t.Fatal(err)
	}
	for i := range failed {
		s.waitStatus(app, fmt.Sprintf("bulk-%d", i), []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}[i%2])
	}
	s.waitStatus("other", "other-0", scheduler.StatusServiceUnavailable)
	s.waitSearchable(scheduler.SearchQuery{Statuses: []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}}, failed+1)
	s.waitSearchable(scheduler.SearchQuery{Status: scheduler.StatusCancelled}, 1)
	s.stopWorker()

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Failures"))
	tb.waitText(chromedp.Search(`//table[@id='events']`), "failures list", func(s string) bool {
		return strings.Contains(s, "other-0") && strings.Contains(s, "bulk-3")
	})
	if list := tb.text(`//table[@id='events']`); strings.Contains(list, "bulk-cancelled") {
		t.Errorf("Failures lists a CANCELLED event:\n%s", list)
	}
	tb.screenshot("failures")

	// Narrow to one application, as an operator would before a bulk action.
	tb.navigate("/admin/failures?app=" + app)
	tb.waitText(chromedp.Search(`//table[@id='events']`), "failures of "+app, func(s string) bool {
		return strings.Contains(s, "bulk-0") && !strings.Contains(s, "other-0")
	})
	tb.click(button("Retry all matching"))
	want := fmt.Sprintf("Retry %d matching events?", failed)
	tb.waitVisible(textNode(want))
	tb.screenshot("failures-confirm")
	tb.click(button("Confirm"))
	tb.waitText(byID("flash"), "result of bulk retry", func(s string) bool { return strings.Contains(s, "Retried") })
	if got, want := tb.text(byID("flash")), fmt.Sprintf("Retried %d events.", failed); !strings.Contains(got, want) {
		t.Errorf("#flash says %q, want %q", got, want)
	}
	for i := range failed {
		if got := s.status(app, fmt.Sprintf("bulk-%d", i)); got != scheduler.StatusPending {
			t.Errorf("bulk-%d is %s after the bulk retry, want PENDING", i, got)
		}
	}
	if got := s.status("other", "other-0"); got != scheduler.StatusServiceUnavailable {
		t.Errorf("the other application's failure is %s: the bulk retry ignored the app filter", got)
	}
	if got := s.status(app, "bulk-cancelled"); got != scheduler.StatusCancelled {
		t.Errorf("the cancelled event is %s: Retry all matching on Failures retried a non-failure", got)
	}
}

// TestBulkCancel: on Events, "Cancel all matching pending" cancels exactly
// the PENDING events matching the search, after a confirmation.
func TestBulkCancel(t *testing.T) {
	t.Parallel()
	s := setup(t)
	later := time.Now().Add(time.Hour)
	const n = 3
	for i := range n {
		s.create(app, fmt.Sprintf("batch-%d", i), "/ok", later, 0)
	}
	s.create(app, "keep-1", "/ok", later, 0)
	s.waitSearchable(scheduler.SearchQuery{App: app}, n+1)

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Events"))
	tb.typeInto(field("q"), "batch-")
	tb.click(button("Search"))
	tb.waitText(chromedp.Search(`//table[@id='events']`), "search results", func(s string) bool {
		return strings.Contains(s, "batch-2") && !strings.Contains(s, "keep-1")
	})
	tb.click(button("Cancel all matching pending"))
	tb.waitVisible(textNode(fmt.Sprintf("%d matching events?", n)))
	tb.click(button("Confirm"))
	tb.waitText(byID("flash"), "result of bulk cancel", func(s string) bool { return strings.Contains(s, "Cancelled") })
	if got, want := tb.text(byID("flash")), fmt.Sprintf("Cancelled %d events.", n); !strings.Contains(got, want) {
		t.Errorf("#flash says %q, want %q", got, want)
	}
	for i := range n {
		if got := s.status(app, fmt.Sprintf("batch-%d", i)); got != scheduler.StatusCancelled {
			t.Errorf("batch-%d is %s after the bulk cancel, want CANCELLED", i, got)
		}
	}
	if got := s.status(app, "keep-1"); got != scheduler.StatusPending {
		t.Errorf("keep-1 (not matching) is %s after the bulk cancel, want PENDING", got)
	}
}

// TestLoginNextAndNotFound: a page opened without a session comes back
// after the login (next=...); an unknown event is a 404; /admin redirects.
func TestLoginNextAndNotFound(t *testing.T) {
	t.Parallel()
	s := setup(t)
	tb := newTab(t, s.srv.URL)
	tb.navigate("/admin/failures?app=" + app)
	if p := tb.path(); !strings.HasPrefix(p, "/admin/login?next=") {
		t.Fatalf("Failures without a session ends at %s, want /admin/login?next=...", p)
	}
	tb.typeInto(field("username"), "admin")
	tb.typeInto(field("password"), adminPassword)
	tb.click(button("Log in"))
	tb.waitVisible(button("Retry all matching"))
	if p := tb.path(); p != "/admin/failures?app="+app {
		t.Errorf("after login the browser is at %s, want back at /admin/failures?app=%s", p, app)
	}
	if st := tb.navigate(eventPath(app, "no-such-event")); st != http.StatusNotFound {
		t.Errorf("an unknown event: status %d, want 404", st)
	}
	if st := tb.navigate("/admin"); st != http.StatusOK || tb.path() != "/admin/" {
		t.Errorf("/admin: status %d at %s, want the dashboard at /admin/", st, tb.path())
	}
}
