package client

import (
	"context"
	"net/http"
	"net/url"
)

// FlowLimits are the limits of a flow key (PUT /v1/flows/{app}/{key}).
type FlowLimits struct {
	// Rate is the most requests started per second; 0: no limit.
	Rate float64
	// Parallelism is the most requests in flight; 0: no limit.
	Parallelism int
	// Paused holds the key's events (PENDING, no attempt used).
	Paused bool
}

// Flow is a flow key's limits and state.
type Flow struct {
	App string `json:"app"`
	Key string `json:"key"`
	// Rate and Parallelism are 0 when the key has no such limit.
	Rate        float64 `json:"rate"`
	Parallelism int     `json:"parallelism"`
	Paused      bool    `json:"paused"`
	InFlight    int     `json:"in_flight"`
	Held        int     `json:"held"`
}

// PutFlow sets a flow key's limits, replacing the ones it had
// (PUT /v1/flows/{app}/{key}). Events and subscriptions with that flow_key
// never exceed them, across every worker together.
func (c *Client) PutFlow(ctx context.Context, app, key string, l FlowLimits) (*Flow, error) {
	if err := needPath("PutFlow", "app", app, "key", key); err != nil {
		return nil, err
	}
	body := struct {
		Rate        *float64 `json:"rate,omitempty"`
		Parallelism *int     `json:"parallelism,omitempty"`
		Paused      bool     `json:"paused"`
	}{Paused: l.Paused}
	if l.Rate > 0 {
		body.Rate = &l.Rate
	}
	if l.Parallelism > 0 {
		body.Parallelism = &l.Parallelism
	}
	var f Flow
	if _, err := c.do(ctx, call{method: http.MethodPut, path: pathOf("/v1/flows", app, key), body: body, idempotent: true}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// GetFlow reads a flow key (GET /v1/flows/{app}/{key}); 404 without a record.
func (c *Client) GetFlow(ctx context.Context, app, key string) (*Flow, error) {
	return c.flowCall(ctx, "GetFlow", http.MethodGet, app, key, true)
}

// DeleteFlow removes a flow key's limits and returns what it had
// (DELETE /v1/flows/{app}/{key}); 404 without a record.
func (c *Client) DeleteFlow(ctx context.Context, app, key string) (*Flow, error) {
	return c.flowCall(ctx, "DeleteFlow", http.MethodDelete, app, key, false)
}

func (c *Client) flowCall(ctx context.Context, name, method, app, key string, idempotent bool) (*Flow, error) {
	if err := needPath(name, "app", app, "key", key); err != nil {
		return nil, err
	}
	var f Flow
	if _, err := c.do(ctx, call{method: method, path: pathOf("/v1/flows", app, key), idempotent: idempotent}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// ListFlows lists the flow keys of app, or of every application the
// credential may see when app is "" (GET /v1/flows), sorted by app and key.
func (c *Client) ListFlows(ctx context.Context, app string) ([]Flow, error) {
	v := url.Values{}
	set(v, "app", app)
	var resp struct {
		Flows []Flow `json:"flows"`
	}
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/flows", query: v, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	return resp.Flows, nil
}

// AppPause is an application's pause state.
type AppPause struct {
	App    string `json:"app"`
	Paused bool   `json:"paused"`
	// Held is the number of due events held back by the pause.
	Held int `json:"held"`
}

// PauseApp pauses an application (POST /v1/apps/{app}/pause, admin token):
// its due events stay PENDING, no attempt used, until ResumeApp.
func (c *Client) PauseApp(ctx context.Context, app string) (*AppPause, error) {
	return c.appPause(ctx, "PauseApp", app, "/pause")
}

// ResumeApp resumes a paused application (POST /v1/apps/{app}/resume,
// admin token); its held events are delivered in due order.
func (c *Client) ResumeApp(ctx context.Context, app string) (*AppPause, error) {
	return c.appPause(ctx, "ResumeApp", app, "/resume")
}

func (c *Client) appPause(ctx context.Context, name, app, suffix string) (*AppPause, error) {
	if err := needPath(name, "app", app); err != nil {
		return nil, err
	}
	var p AppPause
	if _, err := c.do(ctx, call{method: http.MethodPost, path: pathOf("/v1/apps", app) + suffix, idempotent: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
