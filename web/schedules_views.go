package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler/schedule"
)

// View models of the Schedules pages (schedules.go fills them,
// schedules.templ renders them).

// schedulesView is one page of the schedules list.
type schedulesView struct {
	// App is the application filter as typed.
	App                 string
	Rows                []scheduleRow
	NextPage, FirstPage string // URLs; empty when there is no such page
}

type scheduleRow struct {
	App, ID, Link string
	// When is the cron expression, or "every <interval>".
	When, Timezone    string
	State, StateClass string
	Next              timeView
	// LastRun is nil when the schedule has not run yet.
	LastRun *runRow
}

// runRow is one of a schedule's latest runs: an occurrence's event.
type runRow struct {
	EventID, Link string
	Due           timeView
	// Status is "—" when the event cannot be read (the archive has
	// forgotten it); StatusClass is then empty.
	Status, StatusClass string
}

// scheduleState says whether a schedule makes occurrences: "active",
// "paused", or "ended" (past its end_at: no next occurrence although not
// paused), with its badge class.
func scheduleState(st *schedule.State) (state, class string) {
	switch {
	case st.Paused:
		return "paused", "badge badge-cancelled"
	case st.Next.IsZero():
		return "ended", "badge badge-cancelled"
	}
	return "active", "badge badge-completed"
}

// scheduleWhen is a schedule's timing as a person reads it.
func scheduleWhen(s *schedule.Schedule) string {
	if s.Every != "" {
		return "every " + s.Every
	}
	return s.Cron
}

func timezoneName(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

func newRunRow(app string, r schedule.Run, now time.Time) runRow {
	row := runRow{EventID: r.EventID, Link: eventPath(app, r.EventID), Due: newTime(r.DueAt, now), Status: "—"}
	if r.Status != "" {
		row.Status, row.StatusClass = string(r.Status), statusClass(r.Status)
	}
	return row
}

func newScheduleRow(st *schedule.State, last *schedule.Run, now time.Time) scheduleRow {
	r := scheduleRow{App: st.App, ID: st.ID, Link: schedulePath(st.App, st.ID),
		When: scheduleWhen(st.Schedule), Timezone: timezoneName(st.Timezone), Next: newTime(st.Next, now)}
	r.State, r.StateClass = scheduleState(st)
	if last != nil {
		rr := newRunRow(st.App, *last, now)
		r.LastRun = &rr
	}
	return r
}

// scheduleView is one schedule's page.
type scheduleView struct {
	App, ID           string
	State, StateClass string
	Paused            bool
	Fields            []field
	Headers           []header
	Body, BodyNote    string
	// Timezone names the zone of the Local column of Upcoming, which is
	// shown (ShowLocal) unless the zone is UTC.
	Timezone  string
	ShowLocal bool
	Upcoming  []occurrenceRow
	Runs      []runRow
	// Path is the schedule's page; the actions post to Path + "/pause" etc.
	Path string
}

// occurrenceRow is one of the next occurrences, in UTC and in the
// schedule's time zone.
type occurrenceRow struct {
	N     string
	At    timeView
	Local string
}

// localLayout shows a wall-clock time with its zone's abbreviation, which
// tells the two sides of a daylight-saving change apart.
const localLayout = "2006-01-02 15:04:05 MST"

func newScheduleView(st *schedule.State, runs []schedule.Run, upcoming []time.Time, now time.Time) scheduleView {
	at := func(t time.Time) *timeView { tv := newTime(t, now); return &tv }
	v := scheduleView{App: st.App, ID: st.ID, Paused: st.Paused, Timezone: timezoneName(st.Timezone),
		Path: schedulePath(st.App, st.ID)}
	v.ShowLocal = v.Timezone != "UTC"
	v.State, v.StateClass = scheduleState(st)
	timing := field{Label: "Cron", Value: st.Cron, Mono: true}
	if st.Every != "" {
		timing = field{Label: "Interval", Value: scheduleWhen(st.Schedule), Mono: true}
	}
	maxAttempts := "default"
	if st.MaxAttempts > 0 {
		maxAttempts = strconv.Itoa(st.MaxAttempts)
	}
	paused := "no"
	if st.Paused {
		paused = "yes"
	}
	v.Fields = []field{
		{Label: "Application", Value: st.App, Mono: true},
		{Label: "ID", Value: st.ID, Mono: true},
		timing,
		{Label: "Time zone", Value: v.Timezone, Mono: true},
		{Label: "Start at", Time: at(st.StartAt)},
		{Label: "End at", Time: at(st.EndAt)},
		{Label: "Paused", Value: paused},
		{Label: "Next occurrence", Time: at(st.Next)},
		{Label: "URL", Value: st.URL, Mono: true},
		{Label: "Method", Value: st.Method, Mono: true},
		{Label: "Max attempts", Value: maxAttempts},
	}
	for _, o := range []struct {
		label string
		d     time.Duration
	}{{"Timeout", st.Timeout}, {"Min backoff", st.MinBackoff}, {"Max backoff", st.MaxBackoff}} {
		val := "default"
		if o.d > 0 {
			val = o.d.String()
		}
		v.Fields = append(v.Fields, field{Label: o.label, Value: val})
	}
	v.Fields = append(v.Fields,
		field{Label: "Callback URL", Value: orDash(st.CallbackURL), Mono: true},
		field{Label: "Failure callback URL", Value: orDash(st.FailureCallbackURL), Mono: true},
		field{Label: "Flow key", Value: orDash(st.FlowKey), Mono: true},
		field{Label: "Created", Time: at(st.CreatedAt)},
		field{Label: "Updated", Time: at(st.UpdatedAt)},
		field{Label: "Revision", Value: strconv.FormatInt(st.Rev, 10)},
	)
	for name, value := range st.Headers {
		v.Headers = append(v.Headers, header{name, value})
	}
	sortHeaders(v.Headers)
	if len(st.Body) == 0 {
		v.BodyNote = "(empty)"
	} else {
		body := st.Body
		if len(body) > bodyPreviewBytes {
			body = body[:bodyPreviewBytes]
			v.BodyNote = fmt.Sprintf("First %d of %d bytes.", len(body), len(st.Body))
		}
		v.Body = strings.ToValidUTF8(string(body), "\uFFFD")
	}
	loc, err := time.LoadLocation(v.Timezone)
	if err != nil {
		loc = nil // shown as "—": the zone was valid when stored, this binary may lack it
	}
	for i, t := range upcoming {
		row := occurrenceRow{N: strconv.Itoa(i + 1), At: newTime(t, now), Local: "—"}
		if loc != nil {
			row.Local = t.In(loc).Format(localLayout)
		}
		v.Upcoming = append(v.Upcoming, row)
	}
	for _, r := range runs {
		v.Runs = append(v.Runs, newRunRow(st.App, r, now))
	}
	return v
}
