package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// Messages mounts the message routes of API.md §7 when cfg.Messages is set.
func (a *API) Messages(r gin.IRoutes) {
	if a.cfg.Messages == nil {
		return
	}
	r.POST("/v1/messages", bodyLimit(a.maxRequestBytes()), handle(v1Routes, a.publish))
	r.GET("/v1/messages/:app/:id", handle(v1Routes, a.getMessage))
	r.DELETE("/v1/messages/:app/:id", handle(v1Routes, a.cancelMessage))
	r.GET("/v1/messages", handle(v1Routes, a.listMessages))
}

// PublishRequest is the body of POST /v1/messages.
type PublishRequest struct {
	App     string            `json:"app"`
	Topic   string            `json:"topic"`
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	At      *string           `json:"at"`
	Delay   *string           `json:"delay"`
	Expiry  json.RawMessage   `json:"expiry"`
	Mode    string            `json:"mode"`
}

func (req *PublishRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, req); err != nil {
		return err
	}
	return scopeApp(c, &req.App)
}

// MessageView is a message as the v1 API shows it.
type MessageView struct {
	App          string              `json:"app"`
	ID           string              `json:"id"`
	Topic        string              `json:"topic"`
	Mode         string              `json:"mode"`
	Status       string              `json:"status"`
	DueAt        string              `json:"due_at"`
	CreatedAt    string              `json:"created_at"`
	UpdatedAt    string              `json:"updated_at"`
	Deliveries   []topic.Delivery    `json:"deliveries"`
	Rollbacks    []topic.Delivery    `json:"rollbacks"`
	FilterErrors []topic.FilterError `json:"filter_errors"`
}

// ViewMessage shows a message.
func ViewMessage(m *topic.Message) MessageView {
	return MessageView{
		App: m.App, ID: m.ID, Topic: m.Topic, Mode: m.Mode, Status: string(m.Status),
		DueAt: fmtTime(m.DueAt), CreatedAt: fmtTime(m.CreatedAt), UpdatedAt: fmtTime(m.UpdatedAt),
		Deliveries: m.Deliveries, Rollbacks: m.Rollbacks, FilterErrors: m.FilterErrors,
	}
}

func (a *API) publish(ctx context.Context, req *PublishRequest) (reply[MessageView], error) {
	body, err := bodyBytes(req.Body)
	if err != nil {
		return reply[MessageView]{}, badRequest("body", "body must be a string or a JSON value")
	}
	p := topic.Publish{App: req.App, ID: req.ID, Topic: req.Topic, Method: req.Method, Mode: req.Mode,
		Headers: req.Headers, Body: body}
	if req.At != nil || req.Delay != nil || (len(req.Expiry) > 0 && string(req.Expiry) != "null") {
		p.DueAt, p.RelativeDue, err = dueTime(req.At, req.Delay, req.Expiry, a.cfg.Clock.Now())
		if err != nil {
			return reply[MessageView]{}, err
		}
	}
	msg, created, err := a.cfg.Messages.Publish(ctx, p)
	if err != nil {
		return reply[MessageView]{}, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return reply[MessageView]{status: status, body: ViewMessage(msg)}, nil
}

func (a *API) getMessage(ctx context.Context, req *eventPath) (MessageView, error) {
	m, err := a.cfg.Messages.Get(ctx, req.App, req.ID)
	if err != nil {
		return MessageView{}, err
	}
	return ViewMessage(m), nil
}

func (a *API) cancelMessage(ctx context.Context, req *eventPath) (MessageView, error) {
	m, err := a.cfg.Messages.Cancel(ctx, req.App, req.ID)
	if err != nil {
		return MessageView{}, err
	}
	return ViewMessage(m), nil
}

// listMessagesRequest is GET /v1/messages.
type listMessagesRequest struct {
	topic.MessageQuery
}

func (r *listMessagesRequest) bind(c *gin.Context) error {
	r.App, r.Topic, r.Cursor = c.Query("app"), c.Query("topic"), c.Query("cursor")
	if s := c.Query("status"); s != "" {
		r.Status = topic.MessageStatus(s)
		if !slices.Contains(topic.MessageStatuses, r.Status) {
			return badRequest("status", "status must be one of PENDING, DISPATCHED, COMPLETED, FAILED, ROLLING_BACK, ROLLED_BACK, ROLLBACK_FAILED, CANCELLED")
		}
	}
	r.Limit = 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > scheduler.MaxSearchLimit {
			return badRequest("limit", "limit must be a number from 1 to 500")
		}
		r.Limit = n
	}
	return scopeApp(c, &r.App)
}

// MessagesResponse is the answer of GET /v1/messages.
type MessagesResponse struct {
	Messages   []MessageView `json:"messages"`
	NextCursor *string       `json:"next_cursor"`
}

func (a *API) listMessages(ctx context.Context, req *listMessagesRequest) (MessagesResponse, error) {
	msgs, next, err := a.cfg.Messages.List(ctx, req.MessageQuery)
	if err != nil {
		return MessagesResponse{}, err
	}
	resp := MessagesResponse{Messages: make([]MessageView, 0, len(msgs))}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, ViewMessage(m))
	}
	if next != "" {
		resp.NextCursor = &next
	}
	return resp, nil
}

// dueTime reads a due time given as exactly one of at (RFC 3339), delay (a
// Go duration from now) or expiry (Unix seconds); relative says it was a
// delay. Errors name the field.
func dueTime(at, delay *string, expiry json.RawMessage, now time.Time) (due time.Time, relative bool, err error) {
	given := 0
	if at != nil {
		given++
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return due, false, badRequest("at", "at must be an RFC 3339 time, e.g. 2026-01-02T15:04:05.000Z")
		}
		if !inTimeRange(t) {
			// Outside it, due_at could not be shown in RFC 3339 (year 10000) or would be
			// mistaken for "no due time" (year 1).
			return due, false, badRequest("at", "at must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
		}
		due = t
	}
	if delay != nil {
		given++
		d, err := time.ParseDuration(*delay)
		if err != nil || d < 0 {
			return due, false, badRequest("delay", `delay must be a non-negative Go duration such as "90s"`)
		}
		due, relative = now.Add(d), true
	}
	if len(expiry) > 0 && string(expiry) != "null" {
		given++
		t, err := parseExpiry(expiry)
		if err != nil {
			return due, false, badRequest("expiry", err.Error())
		}
		due = t
	}
	if given != 1 {
		return due, false, badRequest("at", "give the due time as exactly one of at, delay or expiry")
	}
	return due, relative, nil
}
