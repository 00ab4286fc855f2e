package web

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cassata/cassata/scheduler"
)

// View models: handlers fill them, templ components render them. Every
// value a component shows is already formatted here, so components hold no
// logic beyond loops and conditions.

// page is what the layout needs on every page.
type page struct {
	Title string
	// Prefix is BasePath + "/admin": every link and form starts with it.
	Prefix string
	CSRF   string
	// Nav names the current section: "dashboard", "events", "failures", "topics",
	// "schedules", "flows", "apps" or "".
	Nav string
	// Apps shows the Applications link (the UI has an AppLister).
	Apps bool
	// LoggedIn shows the Log out button.
	LoggedIn bool
	// Flash is the result message of the last action, if any.
	Flash *flash
	// CSS and JS are the versioned asset URLs.
	CSS, JS string
}

// HXHeaders is the JSON of the hx-headers attribute: htmx sends the CSRF
// token with every request it makes.
func (p page) HXHeaders() string {
	b, _ := json.Marshal(map[string]string{csrfHeader: p.CSRF})
	return string(b)
}

// URL joins the prefix and a path of the UI.
func (p page) URL(path string) string { return p.Prefix + path }

// flash is a result message; Error marks failures.
type flash struct {
	Text  string
	Error bool
}

// timeView shows one instant: UTC RFC 3339 with milliseconds, and relative to now.
type timeView struct {
	ISO string // datetime attribute
	Abs string // shown text
	Rel string // "in 5m", "3m ago"; empty for zero times
}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func newTime(t, now time.Time) timeView {
	if t.IsZero() {
		return timeView{Abs: "—"}
	}
	t = t.UTC()
	return timeView{ISO: t.Format(timeLayout), Abs: t.Format(timeLayout), Rel: relative(t, now)}
}

// relative says how far t is from now in the largest whole unit.
func relative(t, now time.Time) string {
	d := t.Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	if d < time.Second {
		return "now"
	}
	var s string
	switch {
	case d < time.Minute:
		s = strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// statusClass is the CSS class of a status badge.
func statusClass(s scheduler.Status) string {
	return "badge badge-" + strings.ToLower(strings.ReplaceAll(string(s), "_", "-"))
}

// eventPath is the event page's path under the prefix; the id is escaped so
// any printable id but '/' survives the trip.
func eventPath(app, id string) string {
	return "/events/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

// ---- dashboard

type dashboardView struct {
	Counts        []statusCount
	DueSoon       string
	Chart         chartView
	Workers       []workerRow
	OutboxEntries string
	ArchiveLag    string
	// ArchiveNote explains why archive figures are missing.
	ArchiveNote string
	// ArchiveState is "up", "down" or "not configured"; "" shows no line.
	ArchiveState string
	// ArchiveStateClass styles it; ArchiveSince is when it changed.
	ArchiveStateClass string
	ArchiveSince      timeView
	HasArchiveSince   bool
}

type statusCount struct {
	Status string
	Class  string
	Count  string
	// Link lists the events in this status.
	Link string
}

type workerRow struct {
	ID, Host, PID, InFlight string
	Heartbeat, Started      timeView
}

// chartView is the deliveries-per-minute bar chart, laid out in SVG user units.
type chartView struct {
	Width, Height string // viewBox size
	Bars          []chartBar
	// Labels are the times under the left end, the middle and the right end.
	Labels     []string
	Max        string // the top of the scale
	Deliveries string // totals over the window
	Failures   string
	Empty      bool
}

// chartBar is one minute: the successful part and the failed part on top.
type chartBar struct {
	X, W          string
	OKY, OKH      string
	FailY, FailH  string
	HasOK, HasBad bool
	Title         string
}

// Chart geometry.
const (
	chartW       = 720
	chartH       = 160
	chartTop     = 4 // headroom above the highest bar
	chartMinutes = int(scheduler.DashboardWindow / time.Minute)
)

func newChart(stats []scheduler.MinuteStat, now time.Time) chartView {
	end := now.UTC().Truncate(time.Minute)
	start := end.Add(-time.Duration(chartMinutes-1) * time.Minute)
	type slot struct{ ok, bad int64 }
	slots := make([]slot, chartMinutes)
	var total, failed, peak int64
	for _, s := range stats {
		i := int(s.Minute.UTC().Truncate(time.Minute).Sub(start) / time.Minute)
		if i < 0 || i >= chartMinutes {
			continue
		}
		slots[i].ok += max(0, s.Deliveries-s.Failures)
		slots[i].bad += s.Failures
		total += s.Deliveries
		failed += s.Failures
	}
	for _, s := range slots {
		peak = max(peak, s.ok+s.bad)
	}
	cv := chartView{
		Width: strconv.Itoa(chartW), Height: strconv.Itoa(chartH),
		Max: strconv.FormatInt(peak, 10), Deliveries: strconv.FormatInt(total, 10), Failures: strconv.FormatInt(failed, 10),
		Empty: total == 0,
	}
	plot := float64(chartH - chartTop)
	base := float64(chartH)
	step := float64(chartW) / float64(chartMinutes)
	scale := 0.0
	if peak > 0 {
		scale = plot / float64(peak)
	}
	for i, s := range slots {
		minute := start.Add(time.Duration(i) * time.Minute)
		okH := float64(s.ok) * scale
		badH := float64(s.bad) * scale
		b := chartBar{
			X: f1(float64(i)*step + 1), W: f1(step - 2),
			OKY: f1(base - okH), OKH: f1(okH),
			FailY: f1(base - okH - badH), FailH: f1(badH),
			HasOK: s.ok > 0, HasBad: s.bad > 0,
			Title: fmt.Sprintf("%s UTC: %d deliveries, %d failed", minute.Format("15:04"), s.ok+s.bad, s.bad),
		}
		if !b.HasOK && !b.HasBad {
			// An empty minute still gets a hairline, so the time axis reads.
			b.OKY, b.OKH, b.HasOK = f1(base-1), "1", true
		}
		cv.Bars = append(cv.Bars, b)
	}
	for _, i := range []int{0, chartMinutes / 2, chartMinutes - 1} {
		cv.Labels = append(cv.Labels, start.Add(time.Duration(i)*time.Minute).Format("15:04"))
	}
	return cv
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// ---- events and failures lists

type listView struct {
	Filters   filters
	Statuses  []string
	Rows      []eventRow
	NextPage  string // URL, empty on the last page
	FirstPage string // URL, set when not on the first page
	// Failures is the failures page (no status and time filters).
	Failures bool
}

// filters are the search form's fields as the user typed them.
type filters struct {
	Q, App, Status, From, To string
}

type eventRow struct {
	ID, App, Link       string
	Status, StatusClass string
	Due                 timeView
	Attempts            string
	LastResponse        string
}

func newEventRow(ev *scheduler.Event, now time.Time) eventRow {
	return eventRow{
		ID: ev.ID, App: ev.App, Link: eventPath(ev.App, ev.ID),
		Status: string(ev.Status), StatusClass: statusClass(ev.Status),
		Due: newTime(ev.DueAt, now), Attempts: strconv.Itoa(ev.Attempts),
		LastResponse: lastResponse(ev.LastStatusCode, ev.LastError),
	}
}

func lastResponse(code int, errText string) string {
	switch {
	case code != 0 && errText != "":
		return strconv.Itoa(code) + " · " + errText
	case code != 0:
		return strconv.Itoa(code)
	case errText != "":
		return errText
	}
	return "—"
}

// ---- event page

type eventView struct {
	App, ID string
	Fields  []field
	Headers []header
	Body    string
	// BodyNote says what the preview shows: "(not stored)", "(empty)", or
	// that it was cut.
	BodyNote string
	History  []attemptRow
	Actions  actionsView
}

type field struct {
	Label, Value string
	// Time, when set, is shown instead of Value.
	Time *timeView
	Mono bool
}

type header struct{ Name, Value string }

type attemptRow struct {
	N          string
	At         timeView
	StatusCode string
	Error      string
	Response   string
	Duration   string
	Worker     string
	Stale      bool
}

// actionsView is the status and action buttons panel (#event-actions),
// swapped in place by htmx after an action.
type actionsView struct {
	Prefix, CSRF        string
	Path                string // the event page's path under the prefix
	Status, StatusClass string
	CanCancel, CanRetry bool
	CanRunNow           bool
	Flash               *flash
}

// bodyPreviewBytes bounds the body preview.
const bodyPreviewBytes = 4 << 10

func newEventView(p page, ev *scheduler.Event, now time.Time, fl *flash) eventView {
	v := eventView{App: ev.App, ID: ev.ID}
	at := func(t time.Time) *timeView { tv := newTime(t, now); return &tv }
	maxAttempts := "default"
	if ev.MaxAttempts > 0 {
		maxAttempts = strconv.Itoa(ev.MaxAttempts)
	}
	lastCode := "—"
	if ev.LastStatusCode != 0 {
		lastCode = strconv.Itoa(ev.LastStatusCode)
	}
	v.Fields = []field{
		{Label: "Application", Value: ev.App, Mono: true},
		{Label: "ID", Value: ev.ID, Mono: true},
		{Label: "Status", Value: string(ev.Status)},
		{Label: "URL", Value: ev.URL, Mono: true},
		{Label: "Method", Value: ev.Method, Mono: true},
		{Label: "Due", Time: at(ev.DueAt)},
		{Label: "Created", Time: at(ev.CreatedAt)},
		{Label: "Updated", Time: at(ev.UpdatedAt)},
		{Label: "Finished", Time: at(ev.FinishedAt)},
		{Label: "Attempts", Value: strconv.Itoa(ev.Attempts)},
		{Label: "Max attempts", Value: maxAttempts},
		{Label: "Last status code", Value: lastCode},
		{Label: "Last error", Value: orDash(ev.LastError)},
	}
	for _, o := range []struct {
		label string
		d     time.Duration
	}{{"Timeout", ev.Timeout}, {"Min backoff", ev.MinBackoff}, {"Max backoff", ev.MaxBackoff}} {
		val := "default"
		if o.d > 0 {
			val = o.d.String()
		}
		v.Fields = append(v.Fields, field{Label: o.label, Value: val})
	}
	if ev.FlowKey != "" {
		v.Fields = append(v.Fields, field{Label: "Flow key", Value: ev.FlowKey, Mono: true})
	}
	if ev.Worker != "" {
		v.Fields = append(v.Fields, field{Label: "Worker", Value: ev.Worker, Mono: true})
	}
	for name, value := range ev.Headers {
		v.Headers = append(v.Headers, header{name, value})
	}
	sortHeaders(v.Headers)
	switch {
	case ev.BodyDropped:
		v.BodyNote = "(not stored)"
	case len(ev.Body) == 0:
		v.BodyNote = "(empty)"
	default:
		body := ev.Body
		if len(body) > bodyPreviewBytes {
			body = body[:bodyPreviewBytes]
			// Do not split the last character.
			for i := 0; i < utf8.UTFMax-1 && len(body) > 0; i++ {
				if r, size := utf8.DecodeLastRune(body); r != utf8.RuneError || size != 1 {
					break
				}
				body = body[:len(body)-1]
			}
			v.BodyNote = fmt.Sprintf("First %d of %d bytes.", len(body), len(ev.Body))
		}
		v.Body = strings.ToValidUTF8(string(body), "\uFFFD")
	}
	for i := len(ev.History) - 1; i >= 0; i-- { // newest first
		a := ev.History[i]
		code := "—"
		if a.StatusCode != 0 {
			code = strconv.Itoa(a.StatusCode)
		}
		v.History = append(v.History, attemptRow{
			N: strconv.Itoa(a.Attempt), At: newTime(a.AtTime(), now), StatusCode: code,
			Error: orDash(a.Error), Response: a.Response, Duration: durationMS(a.DurationMS),
			Worker: orDash(a.Worker), Stale: a.Stale,
		})
	}
	v.Actions = newActions(p, ev, fl)
	return v
}

func newActions(p page, ev *scheduler.Event, fl *flash) actionsView {
	return actionsView{
		Prefix: p.Prefix, CSRF: p.CSRF, Path: eventPath(ev.App, ev.ID),
		Status: string(ev.Status), StatusClass: statusClass(ev.Status),
		CanCancel: ev.Status == scheduler.StatusPending,
		CanRunNow: ev.Status == scheduler.StatusPending,
		CanRetry:  ev.Status.Retryable(),
		Flash:     fl,
	}
}

func sortHeaders(h []header) {
	slices.SortFunc(h, func(a, b header) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name))
	})
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// ---- login, confirmation, errors

type loginView struct {
	Next     string
	Username string
	Error    string
}

// confirmView asks before a bulk action.
type confirmView struct {
	Heading string // "Retry 12 matching events?"
	Detail  string
	Action  string // form action, under the prefix
	Back    string // the list to go back to
	Fields  []header
	None    bool // nothing matches: no Confirm button
}

type errorView struct {
	Title   string
	Message string
	// Back, when set, links back to a page under the prefix.
	Back string
}

func statusClassOf(s string) string { return statusClass(scheduler.Status(s)) }

// durationMS is an attempt's duration in whole milliseconds, as recorded;
// a fast local answer records 0, which reads better as "<1".
func durationMS(ms int64) string {
	if ms <= 0 {
		return "<1"
	}
	return strconv.FormatInt(ms, 10)
}
