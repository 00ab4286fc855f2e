package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// Handlers: read the request, ask the Backend, build a view model, render.

// page returns the layout's model for a page.
func (u *UI) page(c *gin.Context, title, nav string) page {
	return page{
		Title: title, Prefix: u.prefix, CSRF: csrfToken(c), Nav: nav,
		LoggedIn: c.GetBool(ctxLoggedIn),
		Apps:     u.cfg.Apps != nil,
		CSS:      u.assets.url(u.prefix, "cassata.css"),
		JS:       u.assets.url(u.prefix, "htmx.min.js"),
	}
}

// render writes a component as the response. It renders into a buffer
// first, so a failing component becomes a clean 500, not half a page.
func (u *UI) render(c *gin.Context, status int, comp templ.Component) {
	var buf bytes.Buffer
	if err := comp.Render(c.Request.Context(), &buf); err != nil {
		u.log.Error("admin UI: render", "path", c.Request.URL.Path, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error\n"))
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

func (u *UI) renderError(c *gin.Context, status int, v errorView) {
	p := u.page(c, v.Title, "")
	if c.GetHeader("HX-Request") == "true" {
		u.render(c, status, actionsError(&flash{Text: v.Title + ": " + v.Message, Error: true}))
		return
	}
	u.render(c, status, errorPage(p, v))
}

// fail shows a Backend error as a page with the matching status. Details
// go to the log, never to the browser.
func (u *UI) fail(c *gin.Context, err error) {
	var ve *scheduler.ValidationError
	switch {
	case errors.Is(err, scheduler.ErrNotFound):
		u.renderError(c, http.StatusNotFound, errorView{Title: "Event not found",
			Message: "No event has that application and id, neither live nor in the archive.", Back: "/events"})
	case errors.Is(err, scheduler.ErrNoArchive):
		u.renderError(c, http.StatusServiceUnavailable, errorView{Title: "No archive configured",
			Message: "Searching events needs the archive database. Set CASSATA_ARCHIVE_DSN (MySQL, MariaDB or SQLite) and restart Cassata."})
	case errors.Is(err, scheduler.ErrUnavailable):
		u.log.Warn("admin UI: storage unavailable", "path", c.Request.URL.Path, "err", err)
		u.renderError(c, http.StatusServiceUnavailable, errorView{Title: "Storage unavailable",
			Message: "Redis or the archive database cannot be reached right now. Nothing was changed; try again in a moment."})
	case errors.As(err, &ve):
		u.renderError(c, http.StatusBadRequest, errorView{Title: "Invalid request", Message: ve.Error()})
	case errors.Is(err, context.Canceled):
		c.Status(499) // the browser went away
	default:
		u.log.Error("admin UI: request failed", "path", c.Request.URL.Path, "err", err)
		u.renderError(c, http.StatusInternalServerError, errorView{Title: "Something went wrong",
			Message: "The request failed; the error has been logged."})
	}
}

// ---- flash messages across a redirect

// flashCookie carries the outcome of a POST to the page the browser is
// redirected to (POST, 303, GET): a code from the list below, never free
// text, read and cleared by the next page.
const flashCookie = "cassata_flash"

func (u *UI) setFlash(c *gin.Context, code string) {
	http.SetCookie(c.Writer, &http.Cookie{Name: flashCookie, Value: code, Path: u.prefix, MaxAge: 60,
		HttpOnly: true, Secure: secureRequest(c.Request), SameSite: http.SameSiteLaxMode})
}

// takeFlash returns the pending flash message, if any, and clears it.
func (u *UI) takeFlash(c *gin.Context) *flash {
	ck, err := c.Request.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: flashCookie, Path: u.prefix, MaxAge: -1,
		HttpOnly: true, Secure: secureRequest(c.Request), SameSite: http.SameSiteLaxMode})
	code, arg, _ := strings.Cut(ck.Value, ":")
	n, _ := strconv.Atoi(arg)
	switch code {
	case "cancel", "retry", "run":
		return &flash{Text: actionDone(code)}
	case "bulk-retry":
		return &flash{Text: "Retried " + countEvents(n) + "."}
	case "bulk-cancel":
		return &flash{Text: "Cancelled " + countEvents(n) + "."}
	}
	if f := scheduleFlash(code, arg); f != nil {
		return f
	}
	if f := flowFlash(code, arg); f != nil {
		return f
	}
	return topicFlash(code, arg)
}

// countEvents says "1 event" or "12 events".
func countEvents(n int) string {
	if n == 1 {
		return "1 event"
	}
	return strconv.Itoa(n) + " events"
}

// ---- dashboard

func (u *UI) dashboard(c *gin.Context) {
	p := u.page(c, "Dashboard", "dashboard")
	p.Flash = u.takeFlash(c)
	d, err := u.b.Dashboard(c.Request.Context())
	if err != nil {
		u.fail(c, err)
		return
	}
	now := u.clock.Now()
	v := dashboardView{
		DueSoon:       strconv.FormatInt(d.DueSoon, 10),
		Chart:         newChart(d.PerMinute, now),
		OutboxEntries: strconv.FormatInt(d.OutboxEntries, 10),
		ArchiveLag:    "none",
	}
	if d.ArchiveLag > 0 {
		v.ArchiveLag = d.ArchiveLag.Round(time.Millisecond).String()
	}
	if u.cfg.ArchiveHealth != nil {
		h := u.cfg.ArchiveHealth(c.Request.Context())
		switch {
		case !h.Configured:
			v.ArchiveState, v.ArchiveStateClass = "not configured", "badge badge-cancelled"
		case h.Up:
			v.ArchiveState, v.ArchiveStateClass = "up", "badge badge-completed"
		default:
			v.ArchiveState, v.ArchiveStateClass = "down", "badge badge-failed"
		}
		if h.Configured && !h.Since.IsZero() {
			v.ArchiveSince, v.HasArchiveSince = newTime(h.Since, now), true
		}
	}
	for _, st := range scheduler.Statuses {
		n, ok := d.Counts[st]
		count := strconv.FormatInt(n, 10)
		if !ok && d.ArchiveErr != nil {
			count = "—"
		}
		v.Counts = append(v.Counts, statusCount{Status: string(st), Class: statusClass(st), Count: count,
			Link: "/events?" + url.Values{"status": {string(st)}}.Encode()})
	}
	for _, w := range d.Workers {
		v.Workers = append(v.Workers, workerRow{
			ID: w.ID, Host: orDash(w.Host), PID: strconv.Itoa(w.PID), InFlight: strconv.Itoa(w.InFlight),
			Heartbeat: newTime(w.Heartbeat, now), Started: newTime(w.Started, now),
		})
	}
	switch {
	case d.ArchiveErr == nil:
	case errors.Is(d.ArchiveErr, scheduler.ErrNoArchive):
		v.ArchiveNote = "No archive is configured (CASSATA_ARCHIVE_DSN), so counts of finished events and the deliveries chart are not available."
	default:
		u.log.Warn("admin UI: dashboard: archive unavailable", "err", d.ArchiveErr)
		v.ArchiveNote = "The archive database cannot be read right now, so counts of finished events and the deliveries chart are missing. Live figures come from Redis and are current."
	}
	u.render(c, http.StatusOK, dashboardPage(p, v))
}

// ---- events and failures

// failureStatuses are what the failures page lists and bulk-retries.
var failureStatuses = []scheduler.Status{scheduler.StatusFailed, scheduler.StatusServiceUnavailable}

// readFilters reads the search fields from the query (GET) or the form
// (POST). withTime also reads status, from and to.
func readFilters(get func(string) string, withTime bool) (filters, scheduler.SearchQuery, error) {
	f := filters{Q: strings.TrimSpace(get("q")), App: strings.TrimSpace(get("app"))}
	q := scheduler.SearchQuery{Q: f.Q, App: f.App}
	if !withTime {
		return f, q, nil
	}
	f.Status, f.From, f.To = strings.TrimSpace(get("status")), strings.TrimSpace(get("from")), strings.TrimSpace(get("to"))
	q.Status = scheduler.Status(f.Status)
	var err error
	if q.From, err = parseFormTime(f.From); err != nil {
		return f, q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseFormTime(f.To); err != nil {
		return f, q, fmt.Errorf("to: %w", err)
	}
	return f, q, nil
}

// parseFormTime reads a datetime-local value (taken as UTC) or RFC 3339.
func parseFormTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2006-01-02T15:04 (UTC) or RFC 3339", s)
}

// listURL is a list page's URL with the filters (and a cursor) as query.
func listURL(path string, f filters, cursor string) string {
	v := url.Values{}
	for k, val := range map[string]string{"q": f.Q, "app": f.App, "status": f.Status, "from": f.From, "to": f.To, "cursor": cursor} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func statusNames() []string {
	out := make([]string, len(scheduler.Statuses))
	for i, s := range scheduler.Statuses {
		out[i] = string(s)
	}
	return out
}

func (u *UI) events(c *gin.Context) { u.list(c, false) }

func (u *UI) failures(c *gin.Context) { u.list(c, true) }

// list renders the events page or, with failuresOnly, the failures page.
func (u *UI) list(c *gin.Context, failuresOnly bool) {
	path, title, nav := "/events", "Events", "events"
	if failuresOnly {
		path, title, nav = "/failures", "Failures", "failures"
	}
	p := u.page(c, title, nav)
	p.Flash = u.takeFlash(c)
	f, q, err := readFilters(c.Query, !failuresOnly)
	v := listView{Filters: f, Statuses: statusNames(), Failures: failuresOnly}
	if err != nil {
		p.Flash = &flash{Text: "Invalid search: " + err.Error(), Error: true}
		u.render(c, http.StatusBadRequest, listPage(p, v))
		return
	}
	if failuresOnly {
		q.Statuses = failureStatuses
	}
	cursor := c.Query("cursor")
	q.Cursor = cursor
	res, err := u.b.Search(c.Request.Context(), q)
	var ve *scheduler.ValidationError
	if errors.As(err, &ve) {
		p.Flash = &flash{Text: "Invalid search: " + ve.Error(), Error: true}
		u.render(c, http.StatusBadRequest, listPage(p, v))
		return
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	now := u.clock.Now()
	for _, ev := range res.Events {
		v.Rows = append(v.Rows, newEventRow(ev, now))
	}
	if res.NextCursor != "" {
		v.NextPage = listURL(path, f, res.NextCursor)
	}
	if cursor != "" {
		v.FirstPage = listURL(path, f, "")
	}
	u.render(c, http.StatusOK, listPage(p, v))
}

// ---- event page and actions

func (u *UI) event(c *gin.Context) {
	p := u.page(c, "Event "+c.Param("id"), "events")
	fl := u.takeFlash(c)
	ev, err := u.b.Get(c.Request.Context(), c.Param("app"), c.Param("id"))
	if err != nil {
		u.fail(c, err)
		return
	}
	u.render(c, http.StatusOK, eventPage(p, newEventView(p, ev, u.clock.Now(), fl)))
}

type actionKind string

const (
	actCancel actionKind = "cancel"
	actRetry  actionKind = "retry"
	actRunNow actionKind = "run"
)

// actionDone is the flash after a successful action.
func actionDone(code string) string {
	switch actionKind(code) {
	case actCancel:
		return "Event cancelled."
	case actRetry:
		return "Event retried: it is PENDING and due now."
	case actRunNow:
		return "Event is due now: a worker will deliver it shortly."
	}
	return ""
}

// conflictText explains why an action was refused in the event's status.
func conflictText(k actionKind, err error) string {
	verb := map[actionKind]string{actCancel: "cancel", actRetry: "retry", actRunNow: "run"}[k]
	var se *scheduler.StatusError
	if errors.As(err, &se) {
		msg := fmt.Sprintf("Cannot %s this event: it is %s.", verb, se.Status)
		if strings.Contains(se.Op, "body is no longer stored") {
			msg += " Its body is no longer stored, so it cannot be sent again."
		}
		return msg
	}
	return fmt.Sprintf("Cannot %s this event in its current status.", verb)
}

// action runs Cancel, Retry or Run now. With htmx it answers with the
// updated #event-actions panel (and the fields and history, out of band);
// without, it redirects back to the event page, which shows the outcome.
func (u *UI) action(k actionKind) gin.HandlerFunc {
	return func(c *gin.Context) {
		app, id := c.Param("app"), c.Param("id")
		ctx := c.Request.Context()
		var op func(context.Context, string, string) (*scheduler.Event, error)
		switch k {
		case actCancel:
			op = u.b.Cancel
		case actRetry:
			op = u.b.Retry
		default:
			op = u.b.RunNow
		}
		htmx := c.GetHeader("HX-Request") == "true"
		p := u.page(c, "Event "+id, "events")
		ev, err := op(ctx, app, id)
		status := http.StatusOK
		fl := &flash{Text: actionDone(string(k))}
		switch {
		case err == nil && ev == nil:
			// The Backend changed it but did not say how it looks now.
			if ev, err = u.b.Get(ctx, app, id); err != nil {
				u.fail(c, err)
				return
			}
		case errors.Is(err, scheduler.ErrConflict):
			status, fl = http.StatusConflict, &flash{Text: conflictText(k, err), Error: true}
			if ev, err = u.b.Get(ctx, app, id); err != nil {
				u.fail(c, err)
				return
			}
		case err != nil:
			u.fail(c, err)
			return
		}
		if !htmx && status == http.StatusOK {
			u.setFlash(c, string(k))
			c.Redirect(http.StatusSeeOther, u.prefix+eventPath(app, id))
			return
		}
		v := newEventView(p, ev, u.clock.Now(), fl)
		if htmx {
			u.render(c, status, eventUpdate(p, v))
			return
		}
		u.render(c, status, eventPage(p, v))
	}
}

// ---- bulk actions

// bulk describes one of the two bulk actions.
type bulk struct {
	verb     string // "Retry", "Cancel"
	list     string // the page to return to
	action   string // the form's path
	withTime bool
	statuses []scheduler.Status
	run      func(context.Context, scheduler.SearchQuery) (int, error)
	flash    string
	detail   string
}

func (u *UI) bulkRetry(c *gin.Context) {
	u.bulk(c, bulk{verb: "Retry", list: "/failures", action: "/failures/retry", statuses: failureStatuses,
		run: u.b.BulkRetry, flash: "bulk-retry",
		detail: "Every FAILED and SERVICE_UNAVAILABLE event matching the search goes back to PENDING, due now, with its attempts reset."})
}

func (u *UI) bulkCancel(c *gin.Context) {
	u.bulk(c, bulk{verb: "Cancel", list: "/events", action: "/events/cancel", withTime: true,
		statuses: []scheduler.Status{scheduler.StatusPending}, run: u.b.BulkCancel, flash: "bulk-cancel",
		detail: "Every PENDING event matching the search is cancelled and will not be delivered."})
}

// bulk asks for confirmation, showing how many events would change; once
// confirmed (confirm=yes) it acts and redirects to the list with the count.
func (u *UI) bulk(c *gin.Context, b bulk) {
	f, q, err := readFilters(c.PostForm, b.withTime)
	if err != nil {
		u.renderError(c, http.StatusBadRequest, errorView{Title: "Invalid search", Message: err.Error(), Back: b.list})
		return
	}
	// The status filter of the events page does not narrow a bulk cancel:
	// only PENDING events are ever cancelled.
	f.Status, q.Status = "", ""
	q.Statuses = b.statuses
	ctx := c.Request.Context()
	back := listURL(b.list, f, "")
	if c.PostForm("confirm") != "yes" {
		n, capped, err := u.count(ctx, q)
		if err != nil {
			u.fail(c, err)
			return
		}
		noun := countEvents(n)
		if capped {
			noun = fmt.Sprintf("at least %d events", n)
		}
		v := confirmView{
			Heading: fmt.Sprintf("%s %s?", b.verb, strings.Replace(noun, " event", " matching event", 1)),
			Detail:  b.detail,
			Action:  b.action, Back: back,
			Fields: []header{{"q", f.Q}, {"app", f.App}, {"from", f.From}, {"to", f.To}, {"confirm", "yes"}},
		}
		if capped {
			v.Detail += fmt.Sprintf(" At most %d change at once; run it again for the rest.", scheduler.MaxBulk)
		}
		if n == 0 {
			v.Heading, v.None = "No matching events.", true
			v.Detail = "Nothing matches this search, so there is nothing to " + strings.ToLower(b.verb) + "."
		}
		u.render(c, http.StatusOK, confirmPage(u.page(c, b.verb+" matching events", navOf(b.list)), v))
		return
	}
	n, err := b.run(ctx, q)
	if err != nil {
		u.log.Warn("admin UI: bulk action stopped", "action", b.verb, "changed", n, "err", err)
		u.fail(c, err)
		return
	}
	u.setFlash(c, b.flash+":"+strconv.Itoa(n))
	c.Redirect(http.StatusSeeOther, u.prefix+back)
}

func navOf(list string) string { return strings.TrimPrefix(list, "/") }

// count pages through the search the way a bulk action will, up to
// scheduler.MaxBulk; capped says there may be more.
func (u *UI) count(ctx context.Context, q scheduler.SearchQuery) (n int, capped bool, err error) {
	q.Limit, q.Cursor = scheduler.MaxSearchLimit, ""
	for {
		res, err := u.b.Search(ctx, q)
		if err != nil {
			return n, false, err
		}
		n += len(res.Events)
		if n >= scheduler.MaxBulk {
			return scheduler.MaxBulk, res.NextCursor != "" || n > scheduler.MaxBulk, nil
		}
		if res.NextCursor == "" {
			return n, false, nil
		}
		q.Cursor = res.NextCursor
	}
}

// ---- login

func (u *UI) loginPage(c *gin.Context) {
	if u.session == nil || u.session.valid(c.Request, u.clock.Now()) {
		c.Redirect(http.StatusFound, u.safeNext(c.Query("next")))
		return
	}
	u.render(c, http.StatusOK, loginPage(u.page(c, "Log in", ""), loginView{Next: u.safeNext(c.Query("next"))}))
}

func (u *UI) login(c *gin.Context) {
	if u.session == nil {
		c.Redirect(http.StatusSeeOther, u.prefix+"/")
		return
	}
	now := u.clock.Now()
	client := u.cfg.ClientIP(c.Request)
	p := u.page(c, "Log in", "")
	v := loginView{Next: u.safeNext(c.PostForm("next")), Username: c.PostForm("username")}
	if !u.limiter.allowed(client, now) {
		p.Flash = &flash{Text: "Too many failed logins; try again later.", Error: true}
		c.Header("Retry-After", "60")
		u.render(c, http.StatusTooManyRequests, loginPage(p, v))
		return
	}
	if !u.session.checkLogin(c.PostForm("username"), c.PostForm("password")) {
		u.limiter.fail(client, now)
		u.log.Info("admin UI: failed login", "client", client)
		p.Flash = &flash{Text: "Invalid username or password", Error: true}
		u.render(c, http.StatusUnauthorized, loginPage(p, v))
		return
	}
	// Max-Age, not Expires: the browser's clock may not agree with ours.
	// The expiry that counts is the one inside the signed value.
	value := u.session.issue(now)
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: value, Path: u.prefix, MaxAge: int(u.cfg.SessionTTL / time.Second),
		HttpOnly: true, Secure: secureRequest(c.Request), SameSite: http.SameSiteLaxMode,
	})
	c.Redirect(http.StatusSeeOther, v.Next)
}

func (u *UI) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Path: u.prefix, MaxAge: -1,
		HttpOnly: true, Secure: secureRequest(c.Request), SameSite: http.SameSiteLaxMode})
	if u.session == nil {
		c.Redirect(http.StatusSeeOther, u.prefix+"/")
		return
	}
	c.Redirect(http.StatusSeeOther, u.prefix+"/login")
}

// safeNext returns where to go after logging in: next when it is a page of
// this UI, else the dashboard. Anything else could send a fresh login to
// another site.
func (u *UI) safeNext(next string) string {
	dflt := u.prefix + "/"
	if !strings.HasPrefix(next, u.prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return dflt
	}
	if pu, err := url.Parse(next); err != nil || pu.Scheme != "" || pu.Host != "" {
		return dflt
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
