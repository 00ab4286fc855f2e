package api

import (
	"context"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler/topic"
)

// Topic subscriptions (API.md §7), when Config.Subscriptions is set:
//
//	POST   /v1/subscriptions           create: 201; 200 identical replay; 409 differing
//	PUT    /v1/subscriptions/{app}/{id} create or replace: 200
//	GET    /v1/subscriptions/{app}/{id} the subscription; 404
//	DELETE /v1/subscriptions/{app}/{id} delete: 200 with it; 404
//	GET    /v1/subscriptions           list: app, topic, limit, cursor

// maxSubscriptionBytes bounds a subscription's request body: URLs, headers
// and a filter, no payload.
const maxSubscriptionBytes = 256 << 10

// SubscriptionRoutes mounts the subscription routes (when Config.Subscriptions is set).
func (a *API) SubscriptionRoutes(r gin.IRoutes) {
	if a.cfg.Subscriptions == nil {
		return
	}
	r.POST("/v1/subscriptions", bodyLimit(maxSubscriptionBytes), handle(v1Routes, a.createSubscription))
	r.PUT("/v1/subscriptions/:app/:id", bodyLimit(maxSubscriptionBytes), handle(v1Routes, a.putSubscription))
	r.GET("/v1/subscriptions/:app/:id", handle(v1Routes, a.getSubscription))
	r.DELETE("/v1/subscriptions/:app/:id", handle(v1Routes, a.deleteSubscription))
	r.GET("/v1/subscriptions", handle(v1Routes, a.listSubscriptions))
}

// SubscriptionView is a subscription as the v1 API shows it: durations and
// times as in EventView, optional fields left out when not set.
type SubscriptionView struct {
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	Topic              string            `json:"topic"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers"`
	Filter             string            `json:"filter,omitempty"`
	RollbackURL        string            `json:"rollback_url,omitempty"`
	Active             bool              `json:"active"`
	MaxAttempts        int               `json:"max_attempts"`
	Timeout            string            `json:"timeout,omitempty"`
	MinBackoff         string            `json:"min_backoff,omitempty"`
	MaxBackoff         string            `json:"max_backoff,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
}

// ViewSubscription converts a subscription for the v1 API; defaultMax
// fills max_attempts for subscriptions that use the worker's default, as
// for events.
func ViewSubscription(s *topic.Subscription, defaultMax int) SubscriptionView {
	v := SubscriptionView{App: s.App, ID: s.ID, Topic: s.Topic, URL: s.URL, Method: s.Method, Headers: s.Headers,
		Filter: s.Filter, RollbackURL: s.RollbackURL, Active: s.Active, MaxAttempts: cmpInt(s.MaxAttempts, defaultMax),
		Timeout: durString(s.Timeout), MinBackoff: durString(s.MinBackoff), MaxBackoff: durString(s.MaxBackoff),
		FlowKey: s.FlowKey, CallbackURL: s.CallbackURL, FailureCallbackURL: s.FailureCallbackURL,
		CreatedAt: fmtTime(s.CreatedAt), UpdatedAt: fmtTime(s.UpdatedAt)}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	return v
}

// SubscriptionRequest is the body of POST /v1/subscriptions and
// PUT /v1/subscriptions/{app}/{id}.
type SubscriptionRequest struct {
	App         string            `json:"app"`
	ID          string            `json:"id"`
	Topic       string            `json:"topic"`
	URL         string            `json:"url"`
	Method      string            `json:"method"`
	Headers     map[string]string `json:"headers"`
	Filter      string            `json:"filter"`
	RollbackURL string            `json:"rollback_url"`
	Active      *bool             `json:"active"`
	PolicyFields
	FlowKey            string `json:"flow_key"`
	CallbackURL        string `json:"callback_url"`
	FailureCallbackURL string `json:"failure_callback_url"`
}

// toSubscription checks the request's shape and builds the subscription;
// topic.Subscriptions validates the rest.
func (req *SubscriptionRequest) toSubscription() (*topic.Subscription, error) {
	sub := &topic.Subscription{App: req.App, ID: req.ID, Topic: req.Topic, URL: req.URL, Method: req.Method,
		Headers: req.Headers, Filter: req.Filter, RollbackURL: req.RollbackURL, Active: true, FlowKey: req.FlowKey,
		CallbackURL: req.CallbackURL, FailureCallbackURL: req.FailureCallbackURL}
	if req.Active != nil {
		sub.Active = *req.Active
	}
	if err := req.PolicyFields.read(&sub.MaxAttempts, &sub.Timeout, &sub.MinBackoff, &sub.MaxBackoff); err != nil {
		return nil, err
	}
	return sub, nil
}

// bind reads POST /v1/subscriptions: the body, then the application it
// names, which an application's credential fills in when left out.
func (req *SubscriptionRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, req); err != nil {
		return err
	}
	return scopeApp(c, &req.App)
}

func (a *API) createSubscription(ctx context.Context, req *SubscriptionRequest) (reply[SubscriptionView], error) {
	sub, err := req.toSubscription()
	if err != nil {
		return reply[SubscriptionView]{}, err
	}
	sub, created, err := a.cfg.Subscriptions.Create(ctx, sub)
	if err != nil {
		return reply[SubscriptionView]{}, err
	}
	return reply[SubscriptionView]{status: createdStatus(created), body: ViewSubscription(sub, a.cfg.DefaultMaxAttempts)}, nil
}

// putSubscriptionRequest is PUT /v1/subscriptions/{app}/{id}: the path names
// the subscription; the body may repeat its app and id, not change them.
type putSubscriptionRequest struct {
	SubscriptionRequest
}

func (r *putSubscriptionRequest) bind(c *gin.Context) error {
	return bindPut(c, &r.SubscriptionRequest, &r.App, &r.ID)
}

func (a *API) putSubscription(ctx context.Context, req *putSubscriptionRequest) (SubscriptionView, error) {
	sub, err := req.toSubscription()
	if err != nil {
		return SubscriptionView{}, err
	}
	sub, err = a.cfg.Subscriptions.Put(ctx, sub)
	if err != nil {
		return SubscriptionView{}, err
	}
	return ViewSubscription(sub, a.cfg.DefaultMaxAttempts), nil
}

func (a *API) getSubscription(ctx context.Context, req *eventPath) (SubscriptionView, error) {
	sub, err := a.cfg.Subscriptions.Get(ctx, req.App, req.ID)
	if err != nil {
		return SubscriptionView{}, err
	}
	return ViewSubscription(sub, a.cfg.DefaultMaxAttempts), nil
}

func (a *API) deleteSubscription(ctx context.Context, req *eventPath) (SubscriptionView, error) {
	sub, err := a.cfg.Subscriptions.Delete(ctx, req.App, req.ID)
	if err != nil {
		return SubscriptionView{}, err
	}
	return ViewSubscription(sub, a.cfg.DefaultMaxAttempts), nil
}

// SubscriptionList is the body of GET /v1/subscriptions.
type SubscriptionList struct {
	Subscriptions []SubscriptionView `json:"subscriptions"`
	NextCursor    *string            `json:"next_cursor"`
}

// listSubscriptionsRequest is GET /v1/subscriptions.
type listSubscriptionsRequest struct {
	topic.ListQuery
}

func (r *listSubscriptionsRequest) bind(c *gin.Context) error {
	r.App, r.Topic, r.Cursor = c.Query("app"), c.Query("topic"), c.Query("cursor")
	// An application's credential lists its own subscriptions only.
	if err := scopeApp(c, &r.App); err != nil {
		return err
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > topic.MaxListLimit {
			return badRequest("limit", "limit must be a number from 1 to 500")
		}
		r.Limit = n
	}
	return nil
}

func (a *API) listSubscriptions(ctx context.Context, req *listSubscriptionsRequest) (SubscriptionList, error) {
	subs, next, err := a.cfg.Subscriptions.List(ctx, req.ListQuery)
	if err != nil {
		return SubscriptionList{}, err
	}
	resp := SubscriptionList{Subscriptions: make([]SubscriptionView, 0, len(subs))}
	for _, s := range subs {
		resp.Subscriptions = append(resp.Subscriptions, ViewSubscription(s, a.cfg.DefaultMaxAttempts))
	}
	if next != "" {
		resp.NextCursor = &next
	}
	return resp, nil
}
