package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNewSchedule(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(newSchedule(shapeSmall, "schedminute", "sc7", everyMinute, "http://127.0.0.1:1/sink"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["app"] != "schedminute" || got["id"] != "sc7" || got["cron"] != "* * * * *" || got["timezone"] != "UTC" ||
		got["method"] != "POST" || got["url"] != "http://127.0.0.1:1/sink" || len(got["body"].(string)) != 100 ||
		got["headers"].(map[string]any)["X-Bench"] != "1" {
		t.Errorf("schedule = %v", got)
	}
	if _, ok := got["every"]; ok {
		t.Errorf("schedule has every beside cron: %v", got)
	}
}

func TestNextMinute(t *testing.T) {
	t.Parallel()
	at := func(h, m, s, ms int) time.Time { return time.Date(2026, 12, 6, h, m, s, ms*1e6, time.UTC) }
	for _, c := range []struct {
		now, want time.Time
	}{
		{at(4, 46, 10, 0), at(4, 47, 0, 0)},
		{at(4, 46, 54, 999), at(4, 47, 0, 0)},                                      // 5.001 s before: enough
		{at(4, 46, 55, 0), at(4, 47, 0, 0)},                                        // exactly 5 s before
		{at(4, 46, 55, 1), at(4, 48, 0, 0)},                                        // less: the following one
		{at(4, 46, 59, 999), at(4, 48, 0, 0)},                                      // just before a boundary
		{at(4, 47, 0, 0), at(4, 48, 0, 0)},                                         // on a boundary
		{at(23, 59, 58, 0), at(24, 1, 0, 0)},                                       // across midnight
		{at(4, 46, 10, 0).In(time.FixedZone("IST", 5*3600+1800)), at(4, 47, 0, 0)}, // zone does not matter
	} {
		if got := nextMinute(c.now, minuteLead); !got.Equal(c.want) {
			t.Errorf("nextMinute(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}

func TestOccurrenceIDs(t *testing.T) {
	t.Parallel()
	m := time.Date(2026, 12, 6, 4, 47, 0, 0, time.UTC)
	if got := scheduleID(3) + occurrenceSuffix(m); got != "sc3@1796532420000" {
		t.Errorf("occurrence id = %q", got)
	}
	for _, c := range []struct {
		id   string
		want time.Time
		ok   bool
	}{
		{"sc3@1796532420000", m, true},
		{"a@b@1796532420000", m, true},
		{"sc3", time.Time{}, false},
		{"sc3@x", time.Time{}, false},
	} {
		got, ok := occurrenceTime(c.id)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("occurrenceTime(%q) = %s, %v; want %s, %v", c.id, got, ok, c.want, c.ok)
		}
	}
}

// TestMinuteRow matches the arrivals of one minute among those of others
// and of other apps: one schedule twice, one never, one early.
func TestMinuteRow(t *testing.T) {
	t.Parallel()
	const app = appSchedMinute
	m := time.Date(2026, 12, 6, 4, 47, 0, 0, time.UTC)
	m1 := m.Add(time.Minute)
	id := func(s string, at time.Time) string { return s + occurrenceSuffix(at) }
	arrivals := []arrival{
		{At: m.Add(-30 * time.Second), App: app, ID: id("sc0", m.Add(-time.Minute))}, // an earlier minute
		{At: m.Add(10 * time.Millisecond), App: app, ID: id("sc0", m)},
		{At: m.Add(-5 * time.Millisecond), App: app, ID: id("sc1", m)}, // early
		{At: m.Add(2 * time.Second), App: app, ID: id("sc0", m)},       // duplicate
		{At: m.Add(3 * time.Second), App: appBurst, ID: "burst-0"},
		{At: m1.Add(time.Second), App: app, ID: id("sc0", m1)},
		{At: m1.Add(2 * time.Second), App: app, ID: id("sc1", m1)},
		{At: m1.Add(3 * time.Second), App: app, ID: id("sc2", m1)},
	}
	ids := []string{"sc0", "sc1", "sc2"}

	r, st := minuteRow("schedules minute", app, ids, m, arrivals)
	if st.Expected != 3 || st.Delivered != 2 || st.Missing != 1 || st.Dups != 1 || st.Early != 1 || st.Unexpected != 0 {
		t.Errorf("minute M stats = %+v", st)
	}
	if !r.DeliveriesPerSec.ok || r.DeliveriesPerSec.v != 200 || r.Errors.v != 0 || r.Workload != "schedules minute" {
		t.Errorf("minute M row = %+v, want 2 deliveries over 10 ms", r)
	}

	r, st = minuteRow("schedules minute+1", app, ids, m1, arrivals)
	if st.Delivered != 3 || st.Missing != 0 || st.Dups != 0 || st.Early != 0 || st.LateMax != 3*time.Second {
		t.Errorf("minute M+1 stats = %+v", st)
	}
	if r.DeliveriesPerSec.v != 1 {
		t.Errorf("minute M+1 deliveries/s = %v, want 3 over 3 s", r.DeliveriesPerSec.v)
	}

	perDue, early := occurrencesByMinute(arrivals, app)
	if early != 1 || perDue[m.Add(-time.Minute)] != 1 || perDue[m] != 3 || perDue[m1] != 3 || len(perDue) != 3 {
		t.Errorf("occurrencesByMinute = %v, %d early", perDue, early)
	}
}

func TestSinkCountSuffix(t *testing.T) {
	t.Parallel()
	s := newSink()
	m := time.Date(2026, 12, 6, 4, 47, 0, 0, time.UTC)
	for _, a := range []arrival{
		{App: appSchedMinute, ID: "sc0" + occurrenceSuffix(m)},
		{App: appSchedMinute, ID: "sc0" + occurrenceSuffix(m)},
		{App: appSchedMinute, ID: "sc1" + occurrenceSuffix(m)},
		{App: appSchedMinute, ID: "sc1" + occurrenceSuffix(m.Add(time.Minute))},
		{App: appBurst, ID: "x" + occurrenceSuffix(m)},
	} {
		s.record(a)
	}
	if got := s.countSuffix(appSchedMinute, occurrenceSuffix(m)); got != 2 {
		t.Errorf("countSuffix = %d, want 2", got)
	}
}
