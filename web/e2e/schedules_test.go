package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// scheduleRow finds the row of a schedule in the schedules list.
func scheduleRow(id string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='schedules']//tr[td[2][normalize-space(.)='%s']]`, id))
}

// runRow finds the row of a run on a schedule's page.
func runRow(eventID string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//table[@id='runs']//tr[td[1][normalize-space(.)='%s']]`, eventID))
}

// detail finds the value of a field of the Details list.
func detail(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//dl[@id='fields']//div[dt[normalize-space(.)='%s']]/dd`, label))
}

// upcoming reads the UTC times of the next occurrences a schedule's page shows.
func (tb *tab) upcoming() []time.Time {
	tb.t.Helper()
	isos, err := chromedp.Run(tb.timeout(), chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#upcoming tbody tr td:nth-child(2) time')).map(t => t.getAttribute('datetime'))`))
	if err != nil {
		tb.t.Fatalf("read the next occurrences: %v", err)
	}
	var out []time.Time
	for _, s := range isos {
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			tb.t.Fatalf("next occurrence %q: %v", s, err)
		}
		out = append(out, at)
	}
	return out
}

// createSchedule creates a schedule through the JSON API, as a client would.
func (s *system) createSchedule(req map[string]any) {
	s.t.Helper()
	body, _ := json.Marshal(req)
	res, err := s.srv.Client().Post(s.srv.URL+"/v1/schedules", "application/json", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		s.t.Fatalf("POST /v1/schedules %s: %d %s", body, res.StatusCode, b)
	}
}

// TestSchedules: an operator finds the schedules made through the API in
// the list, opens one and sees its next five occurrences, triggers it (the
// destination gets the request, the run shows with its status), pauses it
// (no next occurrence), resumes it and deletes it (after confirming; the
// list no longer shows it).
func TestSchedules(t *testing.T) {
	t.Parallel()
	s := setup(t)
	var mu sync.Mutex
	var got []*http.Request
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(dest.Close)
	received := func() []*http.Request {
		mu.Lock()
		defer mu.Unlock()
		return append([]*http.Request(nil), got...)
	}

	s.createSchedule(map[string]any{"app": app, "id": "hourly", "every": "1h", "url": dest.URL + "/hourly",
		"headers": map[string]string{"X-Job": "hourly"}, "body": map[string]any{"report": "hourly"}})
	s.createSchedule(map[string]any{"app": app, "id": "nightly", "every": "24h", "timezone": "Europe/Berlin",
		"url": dest.URL + "/nightly"})
	created := time.Now()

	tb := newTab(t, s.srv.URL)
	tb.login()
	tb.click(navLink("Schedules"))
	tb.landOn("/admin/schedules", heading("Schedules"))
	for id, want := range map[string][]string{
		"hourly":  {app, "hourly", "every 1h", "UTC", "active", "in ", "—"},
		"nightly": {app, "nightly", "every 24h", "Europe/Berlin", "active", "in ", "—"},
	} {
		row := tb.text(scheduleRow(id))
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("list row of %s %q lacks %q", id, row, w)
			}
		}
	}
	tb.screenshot("schedules")

	// One schedule's page: every field, the next five occurrences.
	tb.click(link("hourly"))
	tb.landOn("/admin/schedules/shop/hourly", heading("hourly"))
	tb.waitText(byID("status"), "status", equals("active"))
	if v := tb.text(detail("Interval")); v != "every 1h" {
		t.Errorf("Interval %q", v)
	}
	if v := tb.text(detail("URL")); v != dest.URL+"/hourly" {
		t.Errorf("URL %q", v)
	}
	next := tb.upcoming()
	if len(next) != 5 {
		t.Fatalf("%d next occurrences shown, want 5", len(next))
	}
	if d := next[0].Sub(created); d < 59*time.Minute || d > time.Hour {
		t.Errorf("first occurrence %s is %s after the create, want about an hour", next[0], d)
	}
	for i := 1; i < len(next); i++ {
		if d := next[i].Sub(next[i-1]); d != time.Hour {
			t.Errorf("occurrences %d and %d are %s apart, want 1h (%v)", i, i+1, d, next)
		}
	}
	if !strings.Contains(tb.text(byID("no-runs")), "No runs yet") {
		t.Error("a schedule that has not run does not say so")
	}

	// Trigger now: the destination gets one request, the run shows.
	tb.click(button("Trigger now"))
	flash := tb.waitText(byID("flash"), "trigger", func(s string) bool { return strings.HasPrefix(s, "Triggered schedule hourly: occurrence hourly@") })
	runID := strings.TrimSuffix(strings.TrimPrefix(flash, "Triggered schedule hourly: occurrence "), " is due now.")
	if _, _, ok := schedule.ParseOccurrenceID(runID); !ok {
		t.Fatalf("flash %q names no occurrence", flash)
	}
	run := tb.text(runRow(runID))
	if !strings.Contains(run, runID) {
		t.Errorf("runs row %q", run)
	}
	s.waitStatus(app, runID, scheduler.StatusCompleted)
	if reqs := received(); len(reqs) != 1 || reqs[0].URL.Path != "/hourly" ||
		reqs[0].Header.Get(schedule.HeaderScheduleID) != "hourly" || reqs[0].Header.Get("X-Job") != "hourly" {
		t.Errorf("the destination got %d requests (want one to /hourly with the schedule's headers)", len(reqs))
	}
	// The run's event has a page of its own; back on the schedule's page
	// the run shows its outcome.
	tb.click(link(runID))
	tb.landOn(eventPath(app, runID), heading(runID))
	tb.waitText(byID("status"), "the run's event", equals("COMPLETED"))
	tb.click(navLink("Schedules"))
	tb.landOn("/admin/schedules", heading("Schedules"))
	if row := tb.text(scheduleRow("hourly")); !strings.Contains(row, "COMPLETED") {
		t.Errorf("list row after the run %q lacks its status", row)
	}
	tb.click(link("hourly"))
	tb.landOn("/admin/schedules/shop/hourly", heading("hourly"))
	if run := tb.text(runRow(runID)); !strings.Contains(run, "COMPLETED") {
		t.Errorf("runs row %q, want COMPLETED", run)
	}
	if now := tb.upcoming(); len(now) != 5 || !now[0].Equal(next[0]) {
		t.Errorf("next occurrences after Trigger now %v, want them unchanged from %v", now, next)
	}
	tb.screenshot("schedule")

	// Pause: no next occurrence.
	tb.click(button("Pause"))
	tb.waitText(byID("flash"), "pause", equals("Schedule hourly paused: no occurrences until it is resumed."))
	tb.waitText(byID("status"), "status after Pause", equals("paused"))
	if v := tb.text(detail("Next occurrence")); v != "—" {
		t.Errorf("Next occurrence while paused %q, want —", v)
	}
	if v := tb.text(byID("no-upcoming")); v != "None while paused." {
		t.Errorf("next occurrences while paused %q", v)
	}
	if st, err := s.schedules.Get(context.Background(), app, "hourly"); err != nil || !st.Paused || !st.Next.IsZero() {
		t.Errorf("after Pause the schedule is %+v (%v)", st, err)
	}
	if tb.has(button("Pause")) {
		t.Error("a paused schedule offers Pause")
	}

	// Resume: active again, from the next occurrence.
	tb.click(button("Resume"))
	tb.waitText(byID("flash"), "resume", equals("Schedule hourly resumed from its next occurrence."))
	tb.waitText(byID("status"), "status after Resume", equals("active"))
	if now := tb.upcoming(); len(now) != 5 || !now[0].After(time.Now()) {
		t.Errorf("next occurrences after Resume %v", now)
	}
	if st, err := s.schedules.Get(context.Background(), app, "hourly"); err != nil || st.Paused || st.Next.IsZero() {
		t.Errorf("after Resume the schedule is %+v (%v)", st, err)
	}

	// Delete asks first, then the list no longer shows it.
	tb.click(button("Delete"))
	tb.landOn("/admin/schedules/shop/hourly/delete", heading("Delete schedule hourly?"))
	tb.click(button("Confirm"))
	tb.waitText(byID("flash"), "delete", equals("Schedule hourly deleted."))
	tb.waitPath("back to the list", func(p string) bool { return p == "/admin/schedules" })
	if tb.has(scheduleRow("hourly")) {
		t.Error("hourly is still listed after Delete")
	}
	if !tb.has(scheduleRow("nightly")) {
		t.Error("nightly is no longer listed")
	}
	if _, err := s.schedules.Get(context.Background(), app, "hourly"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("hourly still stored after Delete (err %v)", err)
	}
	if n := len(received()); n != 1 {
		t.Errorf("the destination got %d requests in all, want the one triggered", n)
	}
}
