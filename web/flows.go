package web

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
	"github.com/cassata/cassata/scheduler/tenant"
)

// Flows is what the Flows page needs from flow control (Config.Flows,
// API.md §9). *flow.Flows satisfies it.
type Flows interface {
	Put(ctx context.Context, app, key string, l flow.Limits) (*flow.State, error)
	Get(ctx context.Context, app, key string) (*flow.State, error)
	Delete(ctx context.Context, app, key string) (*flow.State, error)
	List(ctx context.Context, app string) ([]*flow.State, error)
	PauseApp(ctx context.Context, app string) (*flow.AppPause, error)
	ResumeApp(ctx context.Context, app string) (*flow.AppPause, error)
	PausedApps(ctx context.Context) ([]*flow.AppPause, error)
}

var _ Flows = (*flow.Flows)(nil)

// The Flows routes, under the prefix:
//
//	GET  /flows                      keys (filter: app), the limits form (edit=<app>/<key> fills it), paused applications
//	POST /flows                      set a key's limits (replaces them), back to /flows
//	POST /flows/{app}/{key}/pause    pause a key, keeping its limits
//	POST /flows/{app}/{key}/resume   resume it
//	POST /flows/{app}/{key}/delete   remove its record, after the confirmation page
//	POST /app-pause                  pause the application in the form field app, after the confirmation page
//	POST /app-resume                 resume it

// flowPath is a flow key's path; both segments are escaped.
func flowPath(app, key string) string {
	return "/flows/" + url.PathEscape(app) + "/" + url.PathEscape(key)
}

// mountFlows adds the Flows routes to the logged-in group.
func (u *UI) mountFlows(in *gin.RouterGroup) {
	if u.cfg.Flows == nil {
		in.GET("/flows", u.flowsDisabled)
		return
	}
	in.GET("/flows", u.flows)
	in.POST("/flows", u.setFlow)
	in.POST("/flows/:app/:key/pause", u.pauseFlow(true))
	in.POST("/flows/:app/:key/resume", u.pauseFlow(false))
	in.POST("/flows/:app/:key/delete", u.deleteFlow)
	in.POST("/app-pause", u.pauseApp)
	in.POST("/app-resume", u.resumeApp)
}

func (u *UI) flowsDisabled(c *gin.Context) {
	u.render(c, http.StatusOK, flowsDisabledPage(u.page(c, "Flows", "flows")))
}

// flows shows the page; edit=<app>/<key> fills the form with that key's
// limits.
func (u *UI) flows(c *gin.Context) {
	f := &flowForm{}
	if app, key, ok := strings.Cut(c.Query("edit"), "/"); ok {
		st, err := u.cfg.Flows.Get(c.Request.Context(), app, key)
		if !u.flowFound(c, err) {
			return
		}
		*f = newFlowForm(st)
	}
	u.renderFlows(c, http.StatusOK, f, nil)
}

// renderFlows renders the page with the limits form f and the application
// pause form's refusal, if any.
func (u *UI) renderFlows(c *gin.Context, status int, f *flowForm, pauseErr *appPauseForm) {
	p := u.page(c, "Flows", "flows")
	p.Flash = u.takeFlash(c)
	ctx := c.Request.Context()
	v := flowsView{App: strings.TrimSpace(c.Query("app")), Form: *f}
	if pauseErr != nil {
		v.Pause = *pauseErr
	}
	if v.App != "" && !scheduler.ValidApp(v.App) {
		p.Flash = &flash{Text: "Invalid filter: app must match [A-Za-z0-9._-]{1,64}", Error: true}
		u.render(c, http.StatusBadRequest, flowsPage(p, v))
		return
	}
	list, err := u.cfg.Flows.List(ctx, v.App)
	if err != nil {
		u.fail(c, err)
		return
	}
	paused, err := u.cfg.Flows.PausedApps(ctx)
	if err != nil {
		u.fail(c, err)
		return
	}
	for _, st := range list {
		v.Rows = append(v.Rows, newFlowRow(st))
	}
	for _, ap := range paused {
		v.PausedApps = append(v.PausedApps, appPauseRow{App: ap.App, Held: strconv.Itoa(ap.Held)})
	}
	u.render(c, status, flowsPage(p, v))
}

// flowFound is found with the Flows page's not-found page.
func (u *UI) flowFound(c *gin.Context, err error) bool {
	return u.found(c, err, errorView{Title: "Flow key not found",
		Message: "No flow key of that application has limits.", Back: "/flows"})
}

// readFlowForm reads the limits form. A limit left empty is no limit; the
// fields it cannot read are refused as *scheduler.ValidationError, like
// the domain's own checks, so the form shows both the same way.
func readFlowForm(c *gin.Context) (*flowForm, flow.Limits, error) {
	f := &flowForm{App: strings.TrimSpace(c.PostForm("app")), Key: strings.TrimSpace(c.PostForm("key")),
		Rate: strings.TrimSpace(c.PostForm("rate")), Parallelism: strings.TrimSpace(c.PostForm("parallelism")),
		Paused: c.PostForm("paused") != ""}
	l := flow.Limits{Paused: f.Paused}
	if f.Rate != "" {
		r, err := strconv.ParseFloat(f.Rate, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return f, l, scheduler.Invalid("rate", "rate must be a number of requests per second above 0 (empty: no limit)")
		}
		l.Rate = r
	}
	if f.Parallelism != "" {
		n, err := strconv.Atoi(f.Parallelism)
		if err != nil || n < 1 {
			return f, l, scheduler.Invalid("parallelism", "parallelism must be a whole number of at least 1 (empty: no limit)")
		}
		l.Parallelism = n
	}
	return f, l, nil
}

// setFlow creates or replaces a key's limits from the form.
func (u *UI) setFlow(c *gin.Context) {
	f, l, err := readFlowForm(c)
	if err == nil {
		_, err = u.cfg.Flows.Put(c.Request.Context(), f.App, f.Key, l)
	}
	if err != nil {
		fe, status, ok := formError(err)
		if !ok {
			u.fail(c, err)
			return
		}
		f.Error = fe
		u.renderFlows(c, status, f, nil)
		return
	}
	u.setFlash(c, "flow-set:"+f.App+"/"+f.Key)
	c.Redirect(http.StatusSeeOther, u.prefix+"/flows")
}

// pauseFlow pauses or resumes a key, keeping its limits.
func (u *UI) pauseFlow(pause bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		app, key := c.Param("app"), c.Param("key")
		st, err := u.cfg.Flows.Get(ctx, app, key)
		if err == nil {
			l := st.Limits
			l.Paused = pause
			_, err = u.cfg.Flows.Put(ctx, app, key, l)
		}
		if !u.flowFound(c, err) {
			return
		}
		code := "flow-resume"
		if pause {
			code = "flow-pause"
		}
		u.setFlash(c, code+":"+app+"/"+key)
		c.Redirect(http.StatusSeeOther, u.prefix+"/flows")
	}
}

// deleteFlow asks first (the confirmation page), then removes the key's
// record and returns to the list.
func (u *UI) deleteFlow(c *gin.Context) {
	st, err := u.cfg.Flows.Get(c.Request.Context(), c.Param("app"), c.Param("key"))
	if !u.flowFound(c, err) {
		return
	}
	if c.PostForm("confirm") != "yes" {
		v := confirmView{
			Heading: "Delete the limits of flow key " + st.Key + " of " + st.App + "?",
			Detail: "The key then has no limit: its " + countEvents(st.Held) + " held back now and every later one " +
				"are delivered as soon as they are due.",
			Action: flowPath(st.App, st.Key) + "/delete", Back: "/flows",
			Fields: []header{{"confirm", "yes"}},
		}
		u.render(c, http.StatusOK, confirmPage(u.page(c, "Delete flow key", "flows"), v))
		return
	}
	_, err = u.cfg.Flows.Delete(c.Request.Context(), st.App, st.Key)
	if err != nil && !errors.Is(err, scheduler.ErrNotFound) { // gone meanwhile: the wish is granted
		u.fail(c, err)
		return
	}
	u.setFlash(c, "flow-delete:"+st.App+"/"+st.Key)
	c.Redirect(http.StatusSeeOther, u.prefix+"/flows")
}

// appForPause reads the form's application: a valid name and, when the UI
// knows the applications (Config.Apps), one of them. false when the page
// was written instead, with the refusal next to the form.
func (u *UI) appForPause(c *gin.Context) (string, bool) {
	app := strings.TrimSpace(c.PostForm("app"))
	refuse := func(msg string) (string, bool) {
		u.renderFlows(c, http.StatusBadRequest, &flowForm{}, &appPauseForm{App: app,
			Error: &fieldError{Field: "app", Message: msg}})
		return "", false
	}
	if !scheduler.ValidApp(app) {
		return refuse("app must match [A-Za-z0-9._-]{1,64}")
	}
	if u.cfg.Apps != nil {
		apps, err := u.cfg.Apps.List(c.Request.Context())
		if err != nil {
			u.fail(c, err)
			return "", false
		}
		if !slices.ContainsFunc(apps, func(a *tenant.App) bool { return a.Name == app }) {
			return refuse("no application is named " + strconv.Quote(app))
		}
	}
	return app, true
}

// pauseApp asks first (the confirmation page), then pauses the
// application.
func (u *UI) pauseApp(c *gin.Context) {
	app, ok := u.appForPause(c)
	if !ok {
		return
	}
	if c.PostForm("confirm") != "yes" {
		v := confirmView{
			Heading: "Pause application " + app + "?",
			Detail: "None of its events is delivered until it is resumed: they stay PENDING, use no attempt, " +
				"and go in due order after the resume.",
			Action: "/app-pause", Back: "/flows",
			Fields: []header{{"app", app}, {"confirm", "yes"}},
		}
		if u.fromApps(c) {
			v.Back = "/apps"
			v.Fields = append(v.Fields, header{"back", "apps"})
		}
		u.render(c, http.StatusOK, confirmPage(u.page(c, "Pause application", "flows"), v))
		return
	}
	if _, err := u.cfg.Flows.PauseApp(c.Request.Context(), app); err != nil {
		u.fail(c, err)
		return
	}
	u.setFlash(c, "app-pause:"+app)
	c.Redirect(http.StatusSeeOther, u.backTo(c))
}

func (u *UI) resumeApp(c *gin.Context) {
	app, ok := u.appForPause(c)
	if !ok {
		return
	}
	if _, err := u.cfg.Flows.ResumeApp(c.Request.Context(), app); err != nil {
		u.fail(c, err)
		return
	}
	u.setFlash(c, "app-resume:"+app)
	c.Redirect(http.StatusSeeOther, u.backTo(c))
}

// backTo is where an application's pause or resume returns: the
// Applications page when the form says so, the Flows page otherwise.
func (u *UI) backTo(c *gin.Context) string {
	if u.fromApps(c) {
		return u.prefix + "/apps"
	}
	return u.prefix + "/flows"
}

// fromApps reports whether the form was sent from the Applications page.
func (u *UI) fromApps(c *gin.Context) bool { return c.PostForm("back") == "apps" && u.cfg.Apps != nil }

// flowFlash is the flash of a Flows action, or nil when code is not one of
// theirs. arg is "<app>/<key>" or an application, checked so the cookie
// cannot put free text on a page.
func flowFlash(code, arg string) *flash {
	switch code {
	case "app-pause", "app-resume":
		if !scheduler.ValidApp(arg) {
			return nil
		}
		if code == "app-pause" {
			return &flash{Text: "Application " + arg + " paused: its events are held until it is resumed."}
		}
		return &flash{Text: "Application " + arg + " resumed: its held events go in due order."}
	case "flow-set", "flow-pause", "flow-resume", "flow-delete":
	default:
		return nil
	}
	app, key, _ := strings.Cut(arg, "/")
	if !scheduler.ValidApp(app) || !scheduler.ValidFlowKey(key) {
		return nil
	}
	what := "Flow key " + key + " of " + app
	switch code {
	case "flow-set":
		return &flash{Text: what + " saved."}
	case "flow-pause":
		return &flash{Text: what + " paused: its events are held until it is resumed."}
	case "flow-resume":
		return &flash{Text: what + " resumed."}
	}
	return &flash{Text: what + " deleted: it has no limit now."}
}
