package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// Schedules is what the Schedules pages need from the recurring schedules
// (Config.Schedules). *schedule.Schedules satisfies it.
type Schedules interface {
	Get(ctx context.Context, app, id string) (*schedule.State, error)
	List(ctx context.Context, q schedule.ListQuery) ([]*schedule.State, string, error)
	Pause(ctx context.Context, app, id string) (*schedule.State, error)
	Resume(ctx context.Context, app, id string) (*schedule.State, error)
	Trigger(ctx context.Context, app, id string) (*schedule.State, *scheduler.Event, error)
	Delete(ctx context.Context, app, id string) (*schedule.State, error)
	// Runs returns the latest runs of a schedule with their statuses.
	Runs(ctx context.Context, st *schedule.State) []schedule.Run
}

var _ Schedules = (*schedule.Schedules)(nil)

// upcomingShown is how many next occurrences a schedule's page lists.
const upcomingShown = 5

// schedulePath is a schedule's page under the prefix; both segments are
// escaped.
func schedulePath(app, id string) string {
	return "/schedules/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

// mountSchedules adds the Schedules routes to the logged-in group.
func (u *UI) mountSchedules(in *gin.RouterGroup) {
	if u.cfg.Schedules == nil {
		in.GET("/schedules", u.schedulesDisabled)
		return
	}
	in.GET("/schedules", u.schedules)
	in.GET("/schedules/:app/:id", u.schedule)
	in.POST("/schedules/:app/:id/pause", u.scheduleAction(schPause))
	in.POST("/schedules/:app/:id/resume", u.scheduleAction(schResume))
	in.POST("/schedules/:app/:id/trigger", u.scheduleAction(schTrigger))
	in.POST("/schedules/:app/:id/delete", u.deleteSchedule)
}

func (u *UI) schedulesDisabled(c *gin.Context) {
	u.render(c, http.StatusOK, schedulesDisabledPage(u.page(c, "Schedules", "schedules")))
}

// schedules lists one page of schedules, sorted by (application, id),
// optionally of one application.
func (u *UI) schedules(c *gin.Context) {
	p := u.page(c, "Schedules", "schedules")
	p.Flash = u.takeFlash(c)
	app, cursor := strings.TrimSpace(c.Query("app")), c.Query("cursor")
	v := schedulesView{App: app}
	ctx := c.Request.Context()
	list, next, err := u.cfg.Schedules.List(ctx, schedule.ListQuery{App: app, Cursor: cursor})
	var ve *scheduler.ValidationError
	if errors.As(err, &ve) {
		p.Flash = &flash{Text: "Invalid filter: " + ve.Error(), Error: true}
		u.render(c, http.StatusBadRequest, schedulesPage(p, v))
		return
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	now := u.clock.Now()
	for _, st := range list {
		v.Rows = append(v.Rows, newScheduleRow(st, u.lastRun(ctx, st), now))
	}
	if next != "" {
		v.NextPage = scheduleListURL(app, next)
	}
	if cursor != "" {
		v.FirstPage = scheduleListURL(app, "")
	}
	u.render(c, http.StatusOK, schedulesPage(p, v))
}

// lastRun reads the status of a schedule's latest run only: the list shows
// no more, and each run's status may be a read of the archive.
func (u *UI) lastRun(ctx context.Context, st *schedule.State) *schedule.Run {
	if len(st.Runs) == 0 {
		return nil
	}
	latest := *st
	latest.Runs = st.Runs[:1]
	runs := u.cfg.Schedules.Runs(ctx, &latest)
	if len(runs) == 0 {
		return nil
	}
	return &runs[0]
}

func scheduleListURL(app, cursor string) string {
	v := url.Values{}
	if app != "" {
		v.Set("app", app)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if len(v) == 0 {
		return "/schedules"
	}
	return "/schedules?" + v.Encode()
}

// scheduleRequest reads the schedule of the path; false when a page (the
// not-found page for an unknown schedule or a malformed application or id)
// was written instead.
func (u *UI) scheduleRequest(c *gin.Context) (*schedule.State, bool) {
	st, err := u.cfg.Schedules.Get(c.Request.Context(), c.Param("app"), c.Param("id"))
	return st, u.scheduleFound(c, err)
}

// scheduleFound is found with the schedules' not-found page.
func (u *UI) scheduleFound(c *gin.Context, err error) bool {
	return u.found(c, err, errorView{Title: "Schedule not found",
		Message: "No schedule has that application and id.", Back: "/schedules"})
}

func (u *UI) schedule(c *gin.Context) {
	st, ok := u.scheduleRequest(c)
	if !ok {
		return
	}
	p := u.page(c, "Schedule "+st.ID, "schedules")
	p.Flash = u.takeFlash(c)
	runs := u.cfg.Schedules.Runs(c.Request.Context(), st)
	u.render(c, http.StatusOK, schedulePage(p, newScheduleView(st, runs, schedule.Upcoming(st, upcomingShown), u.clock.Now())))
}

type scheduleActionKind string

const (
	schPause   scheduleActionKind = "pause"
	schResume  scheduleActionKind = "resume"
	schTrigger scheduleActionKind = "trigger"
)

// scheduleAction pauses, resumes or triggers a schedule, then redirects to
// its page, which says what happened.
func (u *UI) scheduleAction(k scheduleActionKind) gin.HandlerFunc {
	return func(c *gin.Context) {
		app, id := c.Param("app"), c.Param("id")
		ctx := c.Request.Context()
		var err error
		code := "sch-" + string(k) + ":" + id
		switch k {
		case schPause:
			_, err = u.cfg.Schedules.Pause(ctx, app, id)
		case schResume:
			_, err = u.cfg.Schedules.Resume(ctx, app, id)
		default:
			var ev *scheduler.Event
			if _, ev, err = u.cfg.Schedules.Trigger(ctx, app, id); err == nil && ev != nil {
				code = "sch-trigger:" + ev.ID
			}
		}
		if !u.scheduleFound(c, err) {
			return
		}
		u.setFlash(c, code)
		c.Redirect(http.StatusSeeOther, u.prefix+schedulePath(app, id))
	}
}

// deleteSchedule asks first (the confirmation page), then deletes and
// returns to the list.
func (u *UI) deleteSchedule(c *gin.Context) {
	st, ok := u.scheduleRequest(c)
	if !ok {
		return
	}
	if c.PostForm("confirm") != "yes" {
		v := confirmView{
			Heading: "Delete schedule " + st.ID + "?",
			Detail: "No more occurrences are made and its pending one is cancelled. " +
				"Occurrences already sent are kept and stay visible as events.",
			Action: schedulePath(st.App, st.ID) + "/delete", Back: schedulePath(st.App, st.ID),
			Fields: []header{{"confirm", "yes"}},
		}
		u.render(c, http.StatusOK, confirmPage(u.page(c, "Delete schedule", "schedules"), v))
		return
	}
	_, err := u.cfg.Schedules.Delete(c.Request.Context(), st.App, st.ID)
	if err != nil && !errors.Is(err, scheduler.ErrNotFound) { // gone meanwhile: the wish is granted
		u.fail(c, err)
		return
	}
	u.setFlash(c, "sch-delete:"+st.ID)
	c.Redirect(http.StatusSeeOther, u.prefix+"/schedules")
}

// scheduleFlash is the flash of a Schedules action, or nil when code is
// not one of theirs. arg is a schedule id (an occurrence's event id after
// a trigger), checked so the cookie cannot put free text on a page.
func scheduleFlash(code, arg string) *flash {
	if !strings.HasPrefix(code, "sch-") {
		return nil
	}
	if code == "sch-trigger" {
		id, _, ok := schedule.ParseOccurrenceID(arg)
		if !ok || !schedule.ValidID(id) {
			return &flash{Text: "Triggered: one extra occurrence is due now."}
		}
		return &flash{Text: "Triggered schedule " + id + ": occurrence " + arg + " is due now."}
	}
	if !schedule.ValidID(arg) {
		arg = ""
	}
	what := "Schedule " + arg
	switch code {
	case "sch-pause":
		return &flash{Text: what + " paused: no occurrences until it is resumed."}
	case "sch-resume":
		return &flash{Text: what + " resumed from its next occurrence."}
	case "sch-delete":
		return &flash{Text: what + " deleted."}
	}
	return nil
}
