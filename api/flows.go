package api

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

// Delivery controls (API.md §9), when Config.Flows is set:
//
//	PUT    /v1/flows/{app}/{key}     {"rate","parallelism","paused"} -> 200 the key's state (replaces its limits)
//	GET    /v1/flows/{app}/{key}     the key's state; 404 without a record
//	DELETE /v1/flows/{app}/{key}     200 with the state it had; 404
//	GET    /v1/flows?app=            {"flows":[...]}, sorted by app and key
//	POST   /v1/apps/{app}/pause      admin token: {"app","paused","held"} (with Config.Apps too)
//	POST   /v1/apps/{app}/resume     admin token: the same
//
// A flow key belongs to its application: an application's credential may
// only touch its own keys, as with events and schedules.

// FlowRoutes mounts the flow routes (when Config.Flows is set), and the
// application pause routes when Config.Apps is set too.
func (a *API) FlowRoutes(r gin.IRoutes) {
	f := a.cfg.Flows
	if f == nil {
		return
	}
	const maxBody = 64 << 10
	r.PUT("/v1/flows/:app/:key", bodyLimit(maxBody), handle(v1Routes, a.putFlow))
	r.GET("/v1/flows/:app/:key", handle(v1Routes, a.flowAction(f.Get)))
	r.DELETE("/v1/flows/:app/:key", handle(v1Routes, a.flowAction(f.Delete)))
	r.GET("/v1/flows", handle(v1Routes, a.listFlows))
	if a.cfg.Apps != nil {
		r.POST("/v1/apps/:app/pause", requireAdmin, handle(v1Routes, a.appPauseAction(f.PauseApp)))
		r.POST("/v1/apps/:app/resume", requireAdmin, handle(v1Routes, a.appPauseAction(f.ResumeApp)))
	}
}

// flowErr names a missing record as a flow key's, not an event's (the
// store answers scheduler.ErrNotFound, which errorFor calls an event).
func flowErr(err error) error {
	if errors.Is(err, scheduler.ErrNotFound) {
		return errFlowNotFound
	}
	return err
}

// FlowView is a flow key as the v1 API shows it; rate and parallelism are
// null when the key has no such limit.
type FlowView struct {
	App         string   `json:"app"`
	Key         string   `json:"key"`
	Rate        *float64 `json:"rate"`
	Parallelism *int     `json:"parallelism"`
	Paused      bool     `json:"paused"`
	InFlight    int      `json:"in_flight"`
	Held        int      `json:"held"`
}

// ViewFlow converts a flow key's state for the v1 API.
func ViewFlow(st *flow.State) FlowView {
	v := FlowView{App: st.App, Key: st.Key, Paused: st.Paused, InFlight: st.InFlight, Held: st.Held}
	if st.Rate > 0 {
		r := st.Rate
		v.Rate = &r
	}
	if st.Parallelism > 0 {
		p := st.Parallelism
		v.Parallelism = &p
	}
	return v
}

// FlowList is the body of GET /v1/flows.
type FlowList struct {
	Flows []FlowView `json:"flows"`
}

// AppPauseView is an application's pause.
type AppPauseView struct {
	App    string `json:"app"`
	Paused bool   `json:"paused"`
	Held   int    `json:"held"`
}

// putFlowRequest is PUT /v1/flows/{app}/{key}: the path names the key, the
// body its limits. A limit left out or null is no limit; an empty body
// clears them all.
type putFlowRequest struct {
	App, Key string
	Body     struct {
		Rate        *float64 `json:"rate"`
		Parallelism *int     `json:"parallelism"`
		Paused      bool     `json:"paused"`
	}
}

func (r *putFlowRequest) bind(c *gin.Context) error {
	r.App, r.Key = c.Param("app"), c.Param("key")
	if err := allowApp(c, r.App); err != nil {
		return err
	}
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeJSON(bytes.NewReader(raw), &r.Body); err != nil {
			return err
		}
	}
	// Zero is how the engine says "no limit": a client asking for 0 means
	// something else, so it is refused rather than read as no limit.
	if p := r.Body.Rate; p != nil && *p <= 0 {
		return badRequest("rate", "rate must be a number of requests per second above 0 (null or left out: no limit)")
	}
	if p := r.Body.Parallelism; p != nil && *p < 1 {
		return badRequest("parallelism", "parallelism must be a whole number of at least 1 (null or left out: no limit)")
	}
	return nil
}

func (r *putFlowRequest) limits() flow.Limits {
	l := flow.Limits{Paused: r.Body.Paused}
	if r.Body.Rate != nil {
		l.Rate = *r.Body.Rate
	}
	if r.Body.Parallelism != nil {
		l.Parallelism = *r.Body.Parallelism
	}
	return l
}

func (a *API) putFlow(ctx context.Context, req *putFlowRequest) (FlowView, error) {
	st, err := a.cfg.Flows.Put(ctx, req.App, req.Key, req.limits())
	if err != nil {
		return FlowView{}, err
	}
	return ViewFlow(st), nil
}

// flowPath is a request naming one flow key in the path.
type flowPath struct {
	App, Key string
}

func (r *flowPath) bind(c *gin.Context) error {
	r.App, r.Key = c.Param("app"), c.Param("key")
	return allowApp(c, r.App)
}

// flowAction is one of the routes that read or delete a key's record.
func (a *API) flowAction(act func(context.Context, string, string) (*flow.State, error)) func(context.Context, *flowPath) (FlowView, error) {
	return func(ctx context.Context, req *flowPath) (FlowView, error) {
		st, err := act(ctx, req.App, req.Key)
		if err != nil {
			return FlowView{}, flowErr(err)
		}
		return ViewFlow(st), nil
	}
}

// listFlowsRequest is GET /v1/flows?app=.
type listFlowsRequest struct {
	App string
}

func (r *listFlowsRequest) bind(c *gin.Context) error {
	r.App = c.Query("app")
	// An application's credential lists its own keys only.
	if err := scopeApp(c, &r.App); err != nil {
		return err
	}
	if r.App != "" && !scheduler.ValidApp(r.App) {
		return badRequest("app", "app must match [A-Za-z0-9._-]{1,64}")
	}
	return nil
}

func (a *API) listFlows(ctx context.Context, req *listFlowsRequest) (FlowList, error) {
	list, err := a.cfg.Flows.List(ctx, req.App)
	if err != nil {
		return FlowList{}, err
	}
	out := FlowList{Flows: make([]FlowView, 0, len(list))}
	for _, st := range list {
		out.Flows = append(out.Flows, ViewFlow(st))
	}
	return out, nil
}

// appPauseRequest is POST /v1/apps/{app}/pause or /resume.
type appPauseRequest struct {
	Name string
	// open: no credential was asked for (authentication is off), so
	// applications need not be registered: any valid name can be paused.
	open bool
}

func (r *appPauseRequest) bind(c *gin.Context) error {
	r.Name = c.Param("app")
	_, authed := principal(c)
	r.open = !authed
	if r.open && !scheduler.ValidApp(r.Name) { // with a credential: not found, as GET /v1/apps/{app}
		return badRequest("app", "app must match [A-Za-z0-9._-]{1,64}")
	}
	return nil
}

// appPauseAction pauses or resumes an application: a registered one (404
// otherwise, as GET /v1/apps/{app}), or with authentication off any
// application name, since events then need no registered application.
func (a *API) appPauseAction(act func(context.Context, string) (*flow.AppPause, error)) func(context.Context, *appPauseRequest) (AppPauseView, error) {
	return func(ctx context.Context, req *appPauseRequest) (AppPauseView, error) {
		if !req.open {
			if _, err := a.cfg.Apps.Get(ctx, req.Name); err != nil {
				return AppPauseView{}, err
			}
		}
		p, err := act(ctx, req.Name)
		if err != nil {
			return AppPauseView{}, err
		}
		a.log.Info("application pause changed", "app", p.App, "paused", p.Paused, "held", p.Held)
		return AppPauseView{App: p.App, Paused: p.Paused, Held: p.Held}, nil
	}
}
