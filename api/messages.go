package api

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

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
	Due
	Mode               string `json:"mode"`
	CallbackURL        string `json:"callback_url"`
	FailureCallbackURL string `json:"failure_callback_url"`
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
		Headers: req.Headers, Body: body, CallbackURL: req.CallbackURL, FailureCallbackURL: req.FailureCallbackURL}
	if req.Due.given() {
		p.DueAt, p.RelativeDue, err = req.Due.time(a.cfg.Clock.Now())
		if err != nil {
			return reply[MessageView]{}, err
		}
	}
	msg, created, err := a.cfg.Messages.Publish(ctx, p)
	if err != nil {
		return reply[MessageView]{}, err
	}
	return reply[MessageView]{status: createdStatus(created), body: ViewMessage(msg)}, nil
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
