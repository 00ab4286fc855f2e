package api

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler/schedule"
)

// Recurring schedules (API.md §8), when Config.Schedules is set:
//
//	POST   /v1/schedules                     create: 201; 200 identical replay; 409 differing
//	PUT    /v1/schedules/{app}/{id}          create or replace: 200
//	GET    /v1/schedules/{app}/{id}          the schedule; 404
//	DELETE /v1/schedules/{app}/{id}          delete (its pending occurrence is cancelled): 200 with it; 404
//	GET    /v1/schedules                     list: app, limit, cursor
//	POST   /v1/schedules/{app}/{id}/pause    pause: 200 with it
//	POST   /v1/schedules/{app}/{id}/resume   resume: 200 with it
//	POST   /v1/schedules/{app}/{id}/trigger  one extra occurrence now: 200 with it

// ScheduleRoutes mounts the schedule routes (when Config.Schedules is set).
func (a *API) ScheduleRoutes(r gin.IRoutes) {
	if a.cfg.Schedules == nil {
		return
	}
	r.POST("/v1/schedules", bodyLimit(a.maxRequestBytes()), handle(v1Routes, a.createSchedule))
	r.PUT("/v1/schedules/:app/:id", bodyLimit(a.maxRequestBytes()), handle(v1Routes, a.putSchedule))
	s := a.cfg.Schedules
	r.GET("/v1/schedules/:app/:id", handle(v1Routes, a.scheduleAction(s.Get)))
	r.DELETE("/v1/schedules/:app/:id", handle(v1Routes, a.scheduleAction(s.Delete)))
	r.GET("/v1/schedules", handle(v1Routes, a.listSchedules))
	r.POST("/v1/schedules/:app/:id/pause", handle(v1Routes, a.scheduleAction(s.Pause)))
	r.POST("/v1/schedules/:app/:id/resume", handle(v1Routes, a.scheduleAction(s.Resume)))
	r.POST("/v1/schedules/:app/:id/trigger", handle(v1Routes, a.scheduleAction(a.triggerSchedule)))
}

// ScheduleView is a schedule as the v1 API shows it: times in RFC 3339 UTC,
// durations as Go durations, optional fields left out when not set.
type ScheduleView struct {
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	Cron               string            `json:"cron,omitempty"`
	Every              string            `json:"every,omitempty"`
	Timezone           string            `json:"timezone"`
	StartAt            *string           `json:"start_at"`
	EndAt              *string           `json:"end_at"`
	Paused             bool              `json:"paused"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers"`
	Body               *string           `json:"body"`
	MaxAttempts        int               `json:"max_attempts"`
	Timeout            string            `json:"timeout,omitempty"`
	MinBackoff         string            `json:"min_backoff,omitempty"`
	MaxBackoff         string            `json:"max_backoff,omitempty"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
	NextAt             *string           `json:"next_at"`
	LastRuns           []RunView         `json:"last_runs"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
}

// RunView is one of last_runs.
type RunView struct {
	EventID string `json:"event_id"`
	DueAt   string `json:"due_at"`
	// Status is null when the occurrence can no longer be read.
	Status *string `json:"status"`
}

// ViewSchedule converts a schedule for the v1 API, with its runs' statuses.
func ViewSchedule(st *schedule.State, runs []schedule.Run, defaultMax int) ScheduleView {
	s := st.Schedule
	v := ScheduleView{App: s.App, ID: s.ID, Cron: s.Cron, Every: s.Every, Timezone: s.Timezone,
		StartAt: optTime(s.StartAt), EndAt: optTime(s.EndAt), Paused: s.Paused, URL: s.URL, Method: s.Method,
		Headers: s.Headers, MaxAttempts: cmpInt(s.MaxAttempts, defaultMax), Timeout: durString(s.Timeout),
		MinBackoff: durString(s.MinBackoff), MaxBackoff: durString(s.MaxBackoff), CallbackURL: s.CallbackURL,
		FailureCallbackURL: s.FailureCallbackURL, FlowKey: s.FlowKey, NextAt: optTime(st.Next),
		LastRuns: make([]RunView, 0, len(runs)), CreatedAt: fmtTime(s.CreatedAt), UpdatedAt: fmtTime(s.UpdatedAt)}
	if v.Timezone == "" {
		v.Timezone = "UTC"
	}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	if s.Body != nil {
		b := string(s.Body)
		v.Body = &b
	}
	for _, r := range runs {
		rv := RunView{EventID: r.EventID, DueAt: fmtTime(r.DueAt)}
		if r.Status != "" {
			st := string(r.Status)
			rv.Status = &st
		}
		v.LastRuns = append(v.LastRuns, rv)
	}
	return v
}

func (a *API) viewSchedule(ctx context.Context, st *schedule.State) ScheduleView {
	return ViewSchedule(st, a.cfg.Schedules.Runs(ctx, st), a.cfg.DefaultMaxAttempts)
}

// ScheduleRequest is the body of POST /v1/schedules and
// PUT /v1/schedules/{app}/{id}.
type ScheduleRequest struct {
	App      string            `json:"app"`
	ID       string            `json:"id"`
	Cron     string            `json:"cron"`
	Every    json.RawMessage   `json:"every"`
	Timezone string            `json:"timezone"`
	StartAt  *string           `json:"start_at"`
	EndAt    *string           `json:"end_at"`
	Paused   bool              `json:"paused"`
	URL      string            `json:"url"`
	Method   string            `json:"method"`
	Headers  map[string]string `json:"headers"`
	Body     json.RawMessage   `json:"body"`
	PolicyFields
	CallbackURL        string `json:"callback_url"`
	FailureCallbackURL string `json:"failure_callback_url"`
	FlowKey            string `json:"flow_key"`
}

// scheduleTime reads start_at or end_at: RFC 3339, or null.
func scheduleTime(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, badRequest(field, field+" must be an RFC 3339 time, e.g. 2026-01-02T15:04:05.000Z")
	}
	if !inTimeRange(t) {
		return time.Time{}, badRequest(field, field+" must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
	}
	return t, nil
}

// toSchedule checks the request's shape and builds the schedule;
// schedule.Schedules validates the rest.
func (req *ScheduleRequest) toSchedule() (*schedule.Schedule, error) {
	sc := &schedule.Schedule{App: req.App, ID: req.ID, Cron: req.Cron, Timezone: req.Timezone, Paused: req.Paused,
		URL: req.URL, Method: req.Method, Headers: req.Headers, CallbackURL: req.CallbackURL,
		FailureCallbackURL: req.FailureCallbackURL, FlowKey: req.FlowKey}
	if len(req.Every) > 0 && string(req.Every) != "null" {
		if err := json.Unmarshal(req.Every, &sc.Every); err != nil || sc.Every == "" {
			return nil, badRequest("every", `every must be a Go duration string of at least 1s, e.g. "90s"`)
		}
	}
	var err error
	if sc.StartAt, err = scheduleTime("start_at", req.StartAt); err != nil {
		return nil, err
	}
	if sc.EndAt, err = scheduleTime("end_at", req.EndAt); err != nil {
		return nil, err
	}
	if sc.Body, err = bodyBytes(req.Body); err != nil {
		return nil, badRequest("body", "body must be a string or a JSON value")
	}
	if err := req.PolicyFields.read(&sc.MaxAttempts, &sc.Timeout, &sc.MinBackoff, &sc.MaxBackoff); err != nil {
		return nil, err
	}
	return sc, nil
}

// bind reads POST /v1/schedules: the body, then the application it names,
// which an application's credential fills in when left out.
func (req *ScheduleRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, req); err != nil {
		return err
	}
	return scopeApp(c, &req.App)
}

func (a *API) createSchedule(ctx context.Context, req *ScheduleRequest) (reply[ScheduleView], error) {
	sc, err := req.toSchedule()
	if err != nil {
		return reply[ScheduleView]{}, err
	}
	st, created, err := a.cfg.Schedules.Create(ctx, sc)
	if err != nil {
		return reply[ScheduleView]{}, err
	}
	return reply[ScheduleView]{status: createdStatus(created), body: a.viewSchedule(ctx, st)}, nil
}

// putScheduleRequest is PUT /v1/schedules/{app}/{id}: the path names the
// schedule; the body may repeat its app and id, not change them.
type putScheduleRequest struct {
	ScheduleRequest
}

func (r *putScheduleRequest) bind(c *gin.Context) error {
	return bindPut(c, &r.ScheduleRequest, &r.App, &r.ID)
}

func (a *API) putSchedule(ctx context.Context, req *putScheduleRequest) (ScheduleView, error) {
	sc, err := req.toSchedule()
	if err != nil {
		return ScheduleView{}, err
	}
	st, err := a.cfg.Schedules.Put(ctx, sc)
	if err != nil {
		return ScheduleView{}, err
	}
	return a.viewSchedule(ctx, st), nil
}

// scheduleAction is one of the routes that act on a stored schedule.
func (a *API) scheduleAction(act func(context.Context, string, string) (*schedule.State, error)) func(context.Context, *eventPath) (ScheduleView, error) {
	return func(ctx context.Context, req *eventPath) (ScheduleView, error) {
		st, err := act(ctx, req.App, req.ID)
		if err != nil {
			return ScheduleView{}, err
		}
		return a.viewSchedule(ctx, st), nil
	}
}

func (a *API) triggerSchedule(ctx context.Context, app, id string) (*schedule.State, error) {
	st, _, err := a.cfg.Schedules.Trigger(ctx, app, id)
	return st, err
}

// ScheduleList is the body of GET /v1/schedules.
type ScheduleList struct {
	Schedules  []ScheduleView `json:"schedules"`
	NextCursor *string        `json:"next_cursor"`
}

// listSchedulesRequest is GET /v1/schedules.
type listSchedulesRequest struct {
	schedule.ListQuery
}

func (r *listSchedulesRequest) bind(c *gin.Context) error {
	r.App, r.Cursor = c.Query("app"), c.Query("cursor")
	// An application's credential lists its own schedules only.
	if err := scopeApp(c, &r.App); err != nil {
		return err
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > schedule.MaxListLimit {
			return badRequest("limit", "limit must be a number from 1 to "+strconv.Itoa(schedule.MaxListLimit))
		}
		r.Limit = n
	}
	return nil
}

func (a *API) listSchedules(ctx context.Context, req *listSchedulesRequest) (ScheduleList, error) {
	page, next, err := a.cfg.Schedules.List(ctx, req.ListQuery)
	if err != nil {
		return ScheduleList{}, err
	}
	resp := ScheduleList{Schedules: make([]ScheduleView, 0, len(page))}
	for _, st := range page {
		resp.Schedules = append(resp.Schedules, a.viewSchedule(ctx, st))
	}
	if next != "" {
		resp.NextCursor = &next
	}
	return resp, nil
}
