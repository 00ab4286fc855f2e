package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cassata/cassata/scheduler"
)

func TestActionsWithoutJavaScript(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from   scheduler.Status
		button string
		to     scheduler.Status
		flash  string
	}{
		{scheduler.StatusPending, "Cancel", scheduler.StatusCancelled, "Event cancelled."},
		{scheduler.StatusPending, "Run now", scheduler.StatusPending, "Event is due now: a worker will deliver it shortly."},
		{scheduler.StatusFailed, "Retry", scheduler.StatusPending, "Event retried: it is PENDING and due now."},
		{scheduler.StatusServiceUnavailable, "Retry", scheduler.StatusPending, "Event retried: it is PENDING and due now."},
		{scheduler.StatusCancelled, "Retry", scheduler.StatusPending, "Event retried: it is PENDING and due now."},
	}
	e := setup(t)
	e.login()
	for i, tc := range cases {
		id := fmt.Sprintf("ev-%d", i)
		e.fb.add(ev("app", id, tc.from))
		page := "/admin/events/app/" + id
		r := e.get(page)
		form := formOf(t, r.doc, tc.button)
		action, _ := attr(form, "action")
		if m, _ := attr(form, "method"); m != "post" {
			t.Errorf("%s form method %q", tc.button, m)
		}
		if hx, _ := attr(form, "hx-post"); hx != action {
			t.Errorf("%s: hx-post %q, action %q", tc.button, hx, action)
		}
		r = e.post(action, formValues(form))
		wantRedirect(t, r, http.StatusSeeOther, page)
		if st := e.fb.status("app", id); st != tc.to {
			t.Errorf("%s on %s: now %s, want %s", tc.button, tc.from, st, tc.to)
		}
		r = e.get(page)
		wantStatus(t, r, http.StatusOK)
		if got := flashText(t, r.doc); got != tc.flash {
			t.Errorf("%s: flash %q, want %q", tc.button, got, tc.flash)
		}
		if got := text(byID(t, r.doc, "status")); got != string(tc.to) {
			t.Errorf("%s: #status %q", tc.button, got)
		}
		// The flash is shown once.
		if r := e.get(page); hasID(r.doc, "flash") {
			t.Errorf("%s: flash shown again on reload", tc.button)
		}
	}
}

func TestActionConflict(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	e.fb.add(ev("app", "done", scheduler.StatusCompleted))
	for _, op := range []string{"cancel", "retry", "run"} {
		r := e.post("/admin/events/app/done/"+op, nil)
		wantStatus(t, r, http.StatusConflict)
		verb := map[string]string{"cancel": "cancel", "retry": "retry", "run": "run"}[op]
		if got, want := flashText(t, r.doc), "Cannot "+verb+" this event: it is COMPLETED."; got != want {
			t.Errorf("%s: flash %q, want %q", op, got, want)
		}
		if got := text(byID(t, r.doc, "status")); got != "COMPLETED" {
			t.Errorf("#status %q", got)
		}
		if e.fb.status("app", "done") != scheduler.StatusCompleted {
			t.Fatal("status changed")
		}
	}
}

func TestActionsWithHTMX(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	e.fb.add(ev("app", "p", scheduler.StatusPending))
	htmx := []string{"HX-Request", "true", "X-CSRF-Token", e.csrf()}
	r := e.post("/admin/events/app/p/cancel", url.Values{"csrf": {""}}, htmx...)
	wantStatus(t, r, http.StatusOK)
	// A fragment: the panel, with the fields and history out of band; no page around it.
	if len(findAll(r.doc, tag("nav"))) != 0 || len(findAll(r.doc, tag("h1"))) != 0 {
		t.Error("htmx answer is a whole page")
	}
	panel := byID(t, r.doc, "event-actions")
	if got := text(byID(t, panel, "status")); got != "CANCELLED" {
		t.Errorf("#status %q", got)
	}
	if got := flashText(t, panel); got != "Event cancelled." {
		t.Errorf("flash %q", got)
	}
	if got := strings.Join(buttons(panel), ","); got != "Retry" {
		t.Errorf("buttons after cancel %q", got)
	}
	for _, id := range []string{"fields", "history-section"} {
		if oob, _ := attr(byID(t, r.doc, id), "hx-swap-oob"); oob != "true" {
			t.Errorf("#%s not swapped out of band", id)
		}
	}
	// Again: 409 with the message in the panel, which htmx is told to swap.
	r = e.post("/admin/events/app/p/cancel", url.Values{"csrf": {""}}, htmx...)
	wantStatus(t, r, http.StatusConflict)
	if got := flashText(t, byID(t, r.doc, "event-actions")); got != "Cannot cancel this event: it is CANCELLED." {
		t.Errorf("conflict flash %q", got)
	}
	// Retry brings it back, in place.
	r = e.post("/admin/events/app/p/retry", url.Values{"csrf": {""}}, htmx...)
	wantStatus(t, r, http.StatusOK)
	if got := text(byID(t, r.doc, "status")); got != "PENDING" {
		t.Errorf("#status after retry %q", got)
	}
	// Unknown event: 404 with a message for the panel.
	r = e.post("/admin/events/app/nope/run", url.Values{"csrf": {""}}, htmx...)
	wantStatus(t, r, http.StatusNotFound)
	if got := flashText(t, byID(t, r.doc, "event-actions")); !strings.Contains(got, "Event not found") {
		t.Errorf("404 flash %q", got)
	}
	// Storage down: 503, nothing changed, no details.
	e.fb.actErr = fmt.Errorf("%w: dial 10.0.0.1", scheduler.ErrUnavailable)
	r = e.post("/admin/events/app/p/cancel", url.Values{"csrf": {""}}, htmx...)
	wantStatus(t, r, http.StatusServiceUnavailable)
	if strings.Contains(r.body, "10.0.0.1") {
		t.Error("error details in the answer")
	}
	r = e.post("/admin/events/app/p/cancel", nil)
	wantStatus(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(text(r.doc), "Storage unavailable") {
		t.Errorf("503 page %q", text(r.doc))
	}
}

func TestBulkRetry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	// More than one search page, so the count pages through.
	for i := range 620 {
		e.fb.add(ev("big", fmt.Sprintf("f-%d", i), scheduler.StatusFailed))
	}
	e.fb.add(ev("a", "f1", scheduler.StatusFailed))
	e.fb.add(ev("a", "s1", scheduler.StatusServiceUnavailable))
	e.fb.add(ev("a", "c1", scheduler.StatusCancelled)) // not a failure: not on this page, not retried
	e.fb.add(ev("a", "ok", scheduler.StatusCompleted))
	e.fb.add(ev("b", "f2", scheduler.StatusFailed))

	r := e.get("/admin/failures?app=a")
	form := formOf(t, r.doc, "Retry all matching")
	action, _ := attr(form, "action")
	if action != "/admin/failures/retry" {
		t.Fatalf("bulk retry action %q", action)
	}
	r = e.post(action, formValues(form))
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "Retry 2 matching events?" {
		t.Errorf("confirmation %q", h)
	}
	if e.fb.status("a", "f1") != scheduler.StatusFailed {
		t.Fatal("changed before confirmation")
	}
	confirm := formOf(t, r.doc, "Confirm")
	v := formValues(confirm)
	if v.Get("confirm") != "yes" || v.Get("app") != "a" || v.Get("csrf") == "" {
		t.Errorf("confirm form %v", v)
	}
	r = e.post(action, v)
	wantRedirect(t, r, http.StatusSeeOther, "/admin/failures?app=a")
	r = e.get("/admin/failures?app=a")
	if got := flashText(t, r.doc); got != "Retried 2 events." {
		t.Errorf("result %q", got)
	}
	for id, want := range map[string]scheduler.Status{"f1": "PENDING", "s1": "PENDING", "c1": "CANCELLED", "ok": "COMPLETED"} {
		if st := e.fb.status("a", id); st != want {
			t.Errorf("%s: %s, want %s", id, st, want)
		}
	}
	if e.fb.status("b", "f2") != scheduler.StatusFailed {
		t.Error("retried an event of another application")
	}

	// The count pages through the search.
	r = e.post(action, url.Values{"app": {"big"}})
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "Retry 620 matching events?" {
		t.Errorf("confirmation %q", h)
	}
	// Nothing matching: nothing to confirm.
	r = e.post(action, url.Values{"app": {"none"}})
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(strings.Join(buttons(r.doc), ","), "Confirm") {
		t.Error("Confirm offered for nothing")
	}
}

func TestBulkCancel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.login()
	e.fb.add(ev("a", "job-1", scheduler.StatusPending))
	e.fb.add(ev("a", "job-2", scheduler.StatusPending))
	e.fb.add(ev("a", "job-3", scheduler.StatusFailed))
	e.fb.add(ev("a", "other", scheduler.StatusPending))
	r := e.get("/admin/events?q=job&status=PENDING")
	form := formOf(t, r.doc, "Cancel all matching pending")
	action, _ := attr(form, "action")
	if action != "/admin/events/cancel" {
		t.Fatalf("bulk cancel action %q", action)
	}
	r = e.post(action, formValues(form))
	wantStatus(t, r, http.StatusOK)
	if h := text(findAll(r.doc, tag("h1"))[0]); h != "Cancel 2 matching events?" {
		t.Errorf("confirmation %q", h)
	}
	r = e.post(action, formValues(formOf(t, r.doc, "Confirm")))
	wantRedirect(t, r, http.StatusSeeOther, "/admin/events?q=job")
	r = e.get("/admin/events?q=job")
	if got := flashText(t, r.doc); got != "Cancelled 2 events." {
		t.Errorf("result %q", got)
	}
	for id, want := range map[string]scheduler.Status{"job-1": "CANCELLED", "job-2": "CANCELLED", "job-3": "FAILED", "other": "PENDING"} {
		if st := e.fb.status("a", id); st != want {
			t.Errorf("%s: %s, want %s", id, st, want)
		}
	}
	// One left: singular.
	r = e.post(action, url.Values{"q": {"oth"}, "confirm": {"yes"}})
	wantStatus(t, r, http.StatusSeeOther)
	if got := flashText(t, e.get("/admin/events").doc); got != "Cancelled 1 event." {
		t.Errorf("result %q", got)
	}
	// Bulk actions need CSRF like the rest.
	wantStatus(t, e.post(action, url.Values{"csrf": {"bad"}, "confirm": {"yes"}}), http.StatusForbidden)
}
