package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// Cassata mounts the routes of the original Cassata, kept byte for byte (API.md §4).
func (a *API) Cassata(r gin.IRoutes) {
	add := handle(cassataRoutes, a.cassataAdd)
	r.POST("/cassata/add", bodyLimit(a.maxRequestBytes()), add)
	r.POST("/cassata/add/", bodyLimit(a.maxRequestBytes()), add)
	r.GET("/cassata/delete/:app/:id", handle(cassataRoutes, a.cassataDelete))
	r.DELETE("/cassata/delete/:app/:id", handle(cassataRoutes, a.cassataDelete))
	r.GET("/cassata/status/:app/:id", handle(cassataRoutes, a.cassataStatus))
	r.GET("/cassata/event/:app/:id", handle(cassataRoutes, a.cassataEvent))
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// cassataKey is a field of /cassata/add under its README spelling and the
// original code's, with the name the scheduler gives it in its errors.
type cassataKey struct{ readme, code, v1 string }

// The fields of /cassata/add (API.md §4).
var (
	keyEventID = cassataKey{"event-id", "eventId", "id"}
	keyApp     = cassataKey{"application-id", "application", "app"}
	keyEvent   = cassataKey{"event", "eventJson", "body"}
	keyExpiry  = cassataKey{"expiry", "expiry", "due"}
	keyURL     = cassataKey{"url", "destinationUrl", "url"}
	keyMethod  = cassataKey{"method", "httpMethod", "method"}
	keyHeaders = cassataKey{"request-headers", "headers", "headers"}

	cassataKeys = []cassataKey{keyEventID, keyApp, keyEvent, keyExpiry, keyURL, keyMethod, keyHeaders}
)

// required names both spellings: a client of either recognises it.
func (k cassataKey) required() error {
	msg := k.readme + " is required"
	if k.code != k.readme {
		msg = k.readme + " (or " + k.code + ") is required"
	}
	return badRequest(k.readme, msg)
}

// cassataBody is the body of /cassata/add as sent, by key.
type cassataBody map[string]json.RawMessage

// get returns a field's value (nil when absent or null) and the key the
// client used for it: the README spelling wins when both are given.
func (b cassataBody) get(k cassataKey) (json.RawMessage, string) {
	if v, ok := b[k.readme]; ok && string(v) != "null" {
		return v, k.readme
	}
	if v, ok := b[k.code]; ok && string(v) != "null" {
		return v, k.code
	}
	return nil, k.readme
}

// str reads a string field; a required one may not be empty.
func (b cassataBody) str(k cassataKey, isRequired bool) (string, error) {
	v, name := b.get(k)
	if v == nil {
		if isRequired {
			return "", k.required()
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

// field names a v1 field the way the client spelled it.
func (b cassataBody) field(v1 string) string {
	for _, k := range cassataKeys {
		if k.v1 != v1 {
			continue
		}
		if _, ok := b[k.code]; ok {
			if _, ok := b[k.readme]; !ok {
				return k.code
			}
		}
		return k.readme
	}
	return v1
}

// cassataAddRequest is POST /cassata/add, read field by field in the
// original's order, so the first problem is the one reported; the
// credential is checked as soon as the application is known.
type cassataAddRequest struct {
	EventID string
	App     string
	URL     string
	Method  string
	Event   []byte
	Expiry  time.Time
	Headers map[string]string

	body cassataBody
}

func (r *cassataAddRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, &r.body); err != nil {
		return err
	}
	b := r.body
	var err error
	if r.EventID, err = b.str(keyEventID, true); err != nil {
		return err
	}
	if r.App, err = b.str(keyApp, true); err != nil {
		return err
	}
	if err := allowApp(c, r.App); err != nil {
		return err
	}
	if r.URL, err = b.str(keyURL, true); err != nil {
		return err
	}
	if r.Method, err = b.str(keyMethod, false); err != nil {
		return err
	}
	if v, _ := b.get(keyEvent); v != nil {
		if r.Event, err = bodyBytes(v); err != nil {
			return badRequest("event", "event must be a JSON value")
		}
	}
	v, name := b.get(keyExpiry)
	if v == nil {
		return keyExpiry.required()
	}
	if r.Expiry, err = parseExpiry(v); err != nil {
		return badRequest(name, err.Error())
	}
	var lines []string
	v, name = b.get(keyHeaders)
	if v != nil {
		if err := json.Unmarshal(v, &lines); err != nil {
			return badRequest(name, name+` must be a list of "Name: value" strings`)
		}
	}
	if r.Headers, err = scheduler.ParseHeaderLines(lines); err != nil {
		return badRequest(name, err.Error())
	}
	return nil
}

// CassataAddResponse is the answer of /cassata/add.
type CassataAddResponse struct {
	App     string `json:"application-id"`
	EventID string `json:"event-id"`
	Status  string `json:"status"`
}

func (a *API) cassataAdd(ctx context.Context, req *cassataAddRequest) (CassataAddResponse, error) {
	ev := &scheduler.Event{ID: req.EventID, App: req.App, URL: req.URL, Method: req.Method,
		Body: req.Event, DueAt: req.Expiry, Headers: req.Headers}
	_, created, err := a.sched.Create(ctx, ev, scheduler.CreateOptions{})
	if err == nil && !created {
		// The original refuses any second create of an identity.
		err = scheduler.ErrDuplicate
	}
	if err != nil {
		var ve *scheduler.ValidationError
		if errors.As(err, &ve) {
			err = &scheduler.ValidationError{Field: req.body.field(ve.Field), Message: ve.Message, TooLarge: ve.TooLarge}
		}
		return CassataAddResponse{}, err
	}
	a.cfg.Metrics.CountScheduled("cassata")
	return CassataAddResponse{Status: "ok", EventID: ev.ID, App: ev.App}, nil
}

// cassataOK is the original's {"status":"ok"}.
type cassataOK struct {
	Status string `json:"status"`
}

func (a *API) cassataDelete(ctx context.Context, req *eventPath) (cassataOK, error) {
	if _, err := a.sched.Cancel(ctx, req.App, req.ID); err != nil {
		return cassataOK{}, err
	}
	return cassataOK{Status: "ok"}, nil
}

// cassataStatus answers the status alone, as a JSON string.
func (a *API) cassataStatus(ctx context.Context, req *eventPath) (string, error) {
	st, err := a.sched.Status(ctx, req.App, req.ID)
	if err != nil {
		return "", err
	}
	return string(st), nil
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

// CassataEvent is an event in the original's field names (API.md §4).
type CassataEvent struct {
	App         string       `json:"application"`
	Attempts    int          `json:"attempts"`
	URL         string       `json:"destinationUrl"`
	EventID     string       `json:"eventId"`
	EventJSON   *string      `json:"eventJson"`
	EventLogs   []CassataLog `json:"eventLogs"`
	EventStatus string       `json:"eventStatus"`
	Expiry      int64        `json:"expiry"`
	Headers     []string     `json:"headers"`
	HTTPMethod  string       `json:"httpMethod"`
	LastUpdated int64        `json:"lastUpdated"`
}

// CassataLog is one attempt in the original's field names.
type CassataLog struct {
	HTTPResponse     string `json:"httpResponse"`
	HTTPResponseCode *int   `json:"httpResponseCode"`
	LastUpdated      int64  `json:"lastUpdated"`
}

func (a *API) cassataEvent(ctx context.Context, req *eventPath) (CassataEvent, error) {
	ev, err := a.sched.Get(ctx, req.App, req.ID)
	if err != nil {
		return CassataEvent{}, err
	}
	headers := make([]string, 0, len(ev.Headers))
	for k, v := range ev.Headers {
		headers = append(headers, k+": "+v)
	}
	slices.Sort(headers) // the map lost the client's order; at least keep it stable
	logs := make([]CassataLog, 0, len(ev.History))
	for _, h := range ev.History {
		resp := h.Response
		if h.Error != "" {
			resp = h.Error
		}
		logs = append(logs, CassataLog{HTTPResponseCode: nonZero(h.StatusCode), HTTPResponse: resp, LastUpdated: h.At})
	}
	var body *string
	if !ev.BodyDropped {
		s := string(ev.Body)
		body = &s
	}
	return CassataEvent{
		EventID: ev.ID, App: ev.App, EventJSON: body, HTTPMethod: ev.Method,
		Headers: headers, URL: ev.URL, EventStatus: string(ev.Status),
		Expiry: cassataExpiry(ev.DueAt), LastUpdated: ev.UpdatedAt.UnixMilli(),
		Attempts: ev.Attempts, EventLogs: logs,
	}, nil
}
