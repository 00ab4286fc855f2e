package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// Cassata mounts the routes of the original Cassata, kept byte for byte (API.md §4).
func (a *API) Cassata(r gin.IRoutes) {
	r.POST("/cassata/add", a.cassataAdd)
	r.POST("/cassata/add/", a.cassataAdd)
	r.GET("/cassata/delete/:app/:id", a.cassataDelete)
	r.DELETE("/cassata/delete/:app/:id", a.cassataDelete)
	r.GET("/cassata/status/:app/:id", a.cassataStatus)
	r.GET("/cassata/event/:app/:id", a.cassataEvent)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func cassataFailed(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"status": "failed", "message": msg})
}

// cassataError answers like the original for its known cases and with the
// v1 error body (plus the original's status and message) otherwise.
func (a *API) cassataError(c *gin.Context, err error) {
	var se *scheduler.StatusError
	switch {
	case errors.Is(err, scheduler.ErrNotFound):
		cassataFailed(c, http.StatusNotFound, "event not found")
		return
	case errors.Is(err, scheduler.ErrDuplicate):
		cassataFailed(c, http.StatusConflict, scheduler.ErrDuplicate.Error())
		return
	case errors.As(err, &se):
		cassataFailed(c, http.StatusConflict, se.Error())
		return
	}
	status, d := errorFor(err)
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, gin.H{"status": "failed", "message": d.Message, "field": d.Field, "error": d})
}

// cassataKeys maps each field to its README spelling and the original code's.
var cassataKeys = []struct{ readme, code string }{
	{"event-id", "eventId"}, {"application-id", "application"}, {"event", "eventJson"},
	{"expiry", "expiry"}, {"url", "destinationUrl"}, {"method", "httpMethod"}, {"request-headers", "headers"},
}

func (a *API) cassataAdd(c *gin.Context) {
	a.limitBody(c, a.maxRequestBytes())
	var raw map[string]json.RawMessage
	if err := decodeJSON(c.Request.Body, &raw); err != nil {
		a.cassataError(c, err)
		return
	}
	get := func(i int) (json.RawMessage, string) {
		k := cassataKeys[i]
		if v, ok := raw[k.readme]; ok && string(v) != "null" {
			return v, k.readme
		}
		if v, ok := raw[k.code]; ok && string(v) != "null" {
			return v, k.code
		}
		return nil, k.readme
	}
	// required names both spellings: a client of either recognises it.
	required := func(i int) error {
		k := cassataKeys[i]
		msg := k.readme + " is required"
		if k.code != k.readme {
			msg = k.readme + " (or " + k.code + ") is required"
		}
		return badRequest(k.readme, msg)
	}
	str := func(i int, isRequired bool) (string, error) {
		v, name := get(i)
		if v == nil {
			if isRequired {
				return "", required(i)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", badRequest(name, name+" must be a string")
		}
		if s == "" && isRequired {
			// An empty event id would otherwise be replaced by a generated
			// one, which the original never did.
			return "", badRequest(name, name+" must not be empty")
		}
		return s, nil
	}
	ev := &scheduler.Event{}
	var err error
	if ev.ID, err = str(0, true); err != nil {
		a.cassataError(c, err)
		return
	}
	if ev.App, err = str(1, true); err != nil {
		a.cassataError(c, err)
		return
	}
	if err := allowApp(c, ev.App); err != nil {
		a.cassataError(c, err)
		return
	}
	if ev.URL, err = str(4, true); err != nil {
		a.cassataError(c, err)
		return
	}
	if ev.Method, err = str(5, false); err != nil {
		a.cassataError(c, err)
		return
	}
	if v, _ := get(2); v != nil {
		if ev.Body, err = bodyBytes(v); err != nil {
			a.cassataError(c, badRequest("event", "event must be a JSON value"))
			return
		}
	}
	v, name := get(3)
	if v == nil {
		a.cassataError(c, required(3))
		return
	}
	if ev.DueAt, err = parseExpiry(v); err != nil {
		a.cassataError(c, badRequest(name, err.Error()))
		return
	}
	var lines []string
	if v, name := get(6); v != nil {
		if err := json.Unmarshal(v, &lines); err != nil {
			a.cassataError(c, badRequest(name, name+` must be a list of "Name: value" strings`))
			return
		}
	}
	if ev.Headers, err = scheduler.ParseHeaderLines(lines); err != nil {
		_, name := get(6)
		a.cassataError(c, badRequest(name, err.Error()))
		return
	}
	_, created, err := a.sched.Create(c.Request.Context(), ev, scheduler.CreateOptions{})
	if err == nil && !created {
		// The original refuses any second create of an identity.
		err = scheduler.ErrDuplicate
	}
	if err != nil {
		var ve *scheduler.ValidationError
		if errors.As(err, &ve) {
			err = &scheduler.ValidationError{Field: cassataField(ve.Field, raw), Message: ve.Message, TooLarge: ve.TooLarge}
		}
		a.cassataError(c, err)
		return
	}
	a.cfg.Metrics.CountScheduled("cassata")
	c.JSON(http.StatusOK, gin.H{"status": "ok", "event-id": ev.ID, "application-id": ev.App})
}

// cassataField names a v1 field the way the client spelled it.
func cassataField(v1 string, raw map[string]json.RawMessage) string {
	i, ok := map[string]int{"id": 0, "app": 1, "body": 2, "due": 3, "url": 4, "method": 5, "headers": 6}[v1]
	if !ok {
		return v1
	}
	k := cassataKeys[i]
	if _, ok := raw[k.code]; ok {
		if _, ok := raw[k.readme]; !ok {
			return k.code
		}
	}
	return k.readme
}

// cassataAllowed refuses (403) a credential of another application.
func (a *API) cassataAllowed(c *gin.Context) bool {
	if err := allowApp(c, c.Param("app")); err != nil {
		a.cassataError(c, err)
		return false
	}
	return true
}

func (a *API) cassataDelete(c *gin.Context) {
	if !a.cassataAllowed(c) {
		return
	}
	if _, err := a.sched.Cancel(c.Request.Context(), c.Param("app"), c.Param("id")); err != nil {
		a.cassataError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (a *API) cassataStatus(c *gin.Context) {
	if !a.cassataAllowed(c) {
		return
	}
	st, err := a.sched.Status(c.Request.Context(), c.Param("app"), c.Param("id"))
	if err != nil {
		a.cassataError(c, err)
		return
	}
	c.JSON(http.StatusOK, string(st))
}

// cassataExpiry shows a due time the way clients give it: seconds, or
// milliseconds when it has a fractional second.
func cassataExpiry(t time.Time) int64 {
	ms := t.UnixMilli()
	if ms%1000 == 0 {
		return ms / 1000
	}
	return ms
}

func (a *API) cassataEvent(c *gin.Context) {
	if !a.cassataAllowed(c) {
		return
	}
	ev, err := a.sched.Get(c.Request.Context(), c.Param("app"), c.Param("id"))
	if err != nil {
		a.cassataError(c, err)
		return
	}
	headers := make([]string, 0, len(ev.Headers))
	for k, v := range ev.Headers {
		headers = append(headers, k+": "+v)
	}
	slices.Sort(headers) // the map lost the client's order; at least keep it stable
	logs := make([]gin.H, 0, len(ev.History))
	for _, h := range ev.History {
		resp := h.Response
		if h.Error != "" {
			resp = h.Error
		}
		logs = append(logs, gin.H{"httpResponseCode": nonZero(h.StatusCode), "httpResponse": resp, "lastUpdated": h.At})
	}
	var body any
	if !ev.BodyDropped {
		body = string(ev.Body)
	}
	c.JSON(http.StatusOK, gin.H{
		"eventId": ev.ID, "application": ev.App, "eventJson": body, "httpMethod": ev.Method,
		"headers": headers, "destinationUrl": ev.URL, "eventStatus": string(ev.Status),
		"expiry": cassataExpiry(ev.DueAt), "lastUpdated": ev.UpdatedAt.UnixMilli(),
		"attempts":  ev.Attempts,
		"eventLogs": logs,
	})
}
