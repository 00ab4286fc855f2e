package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// MessageStatus is a message's status (API.md §7).
type MessageStatus string

// The statuses of a message.
const (
	MessagePending        MessageStatus = "PENDING"
	MessageDispatched     MessageStatus = "DISPATCHED"
	MessageCompleted      MessageStatus = "COMPLETED"
	MessageFailed         MessageStatus = "FAILED"
	MessageRollingBack    MessageStatus = "ROLLING_BACK"
	MessageRolledBack     MessageStatus = "ROLLED_BACK"
	MessageRollbackFailed MessageStatus = "ROLLBACK_FAILED"
	MessageCancelled      MessageStatus = "CANCELLED"
)

// Message modes.
const (
	ModeIndependent  = "independent"
	ModeAllOrNothing = "all_or_nothing"
)

// PublishRequest is the body of POST /v1/messages: a message to deliver to
// every matching subscription of its topic.
type PublishRequest struct {
	App   string `json:"app,omitempty"`
	Topic string `json:"topic"`
	// ID (1–63 bytes): left empty, the client generates one, so that a
	// retried publish is recognised as a replay.
	ID string `json:"id,omitempty"`
	// Method is what the deliveries use unless a subscription says
	// otherwise; filters see it as http_method. Empty means POST.
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// At or Delay is the due time of the fan-out; neither: now.
	At    time.Time     `json:"at"`
	Delay time.Duration `json:"delay"`
	// Mode is ModeIndependent (the default) or ModeAllOrNothing.
	Mode               string `json:"mode,omitempty"`
	CallbackURL        string `json:"callback_url,omitempty"`
	FailureCallbackURL string `json:"failure_callback_url,omitempty"`
}

// MarshalJSON writes the request as the API takes it.
func (r PublishRequest) MarshalJSON() ([]byte, error) {
	type plain PublishRequest
	at, delay := dueOf(r.At, r.Delay, false)
	return json.Marshal(struct {
		plain
		At    string `json:"at,omitempty"`
		Delay string `json:"delay,omitempty"`
	}{plain: plain(r), At: at, Delay: delay})
}

// Message is a published message as the API shows it.
type Message struct {
	App          string        `json:"app"`
	ID           string        `json:"id"`
	Topic        string        `json:"topic"`
	Mode         string        `json:"mode"`
	Status       MessageStatus `json:"status"`
	DueAt        time.Time     `json:"due_at"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	Deliveries   []Delivery    `json:"deliveries"`
	Rollbacks    []Delivery    `json:"rollbacks"`
	FilterErrors []FilterError `json:"filter_errors"`

	// Replayed is set by a publish answered 200: an identical message of
	// this id had been published before. It is not part of the JSON.
	Replayed bool `json:"-"`
}

// UnmarshalJSON reads the message as the API shows it.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	w := struct {
		*plain
		DueAt     wireTime `json:"due_at"`
		CreatedAt wireTime `json:"created_at"`
		UpdatedAt wireTime `json:"updated_at"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	m.DueAt, m.CreatedAt, m.UpdatedAt = time.Time(w.DueAt), time.Time(w.CreatedAt), time.Time(w.UpdatedAt)
	return nil
}

// Delivery is one delivery (or compensation) of a message: an ordinary
// event of the same application.
type Delivery struct {
	Subscription string `json:"subscription"`
	EventID      string `json:"event_id"`
	Status       Status `json:"status"`
	Attempts     int    `json:"attempts"`
}

// FilterError is a subscription whose filter failed at run time on the message.
type FilterError struct {
	Subscription string `json:"subscription"`
	Error        string `json:"error"`
}

// Publish publishes a message (POST /v1/messages). A request without an ID
// gets one, so the publish is retried safely; another message under an
// existing id is a 409 (IsDuplicate).
func (c *Client) Publish(ctx context.Context, req PublishRequest) (*Message, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	var m Message
	status, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/messages", body: req, idempotent: true}, &m)
	if err != nil {
		return nil, err
	}
	m.Replayed = status == http.StatusOK
	return &m, nil
}

// GetMessage reads a message with its deliveries (GET /v1/messages/{app}/{id}).
func (c *Client) GetMessage(ctx context.Context, app, id string) (*Message, error) {
	return c.messageCall(ctx, "GetMessage", http.MethodGet, app, id, true)
}

// CancelMessage cancels a message before its fan-out
// (DELETE /v1/messages/{app}/{id}); 409 after it.
func (c *Client) CancelMessage(ctx context.Context, app, id string) (*Message, error) {
	return c.messageCall(ctx, "CancelMessage", http.MethodDelete, app, id, false)
}

func (c *Client) messageCall(ctx context.Context, name, method, app, id string, idempotent bool) (*Message, error) {
	if err := needPath(name, "app", app, "id", id); err != nil {
		return nil, err
	}
	var m Message
	if _, err := c.do(ctx, call{method: method, path: pathOf("/v1/messages", app, id), idempotent: idempotent}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// MessageQuery is a search of messages. Empty fields do not filter.
type MessageQuery struct {
	App    string
	Topic  string
	Status MessageStatus
	Limit  int
	Cursor string
}

// MessagePage is one page of messages.
type MessagePage struct {
	Messages   []Message
	NextCursor string
}

// ListMessages returns one page of messages (GET /v1/messages).
func (c *Client) ListMessages(ctx context.Context, q MessageQuery) (*MessagePage, error) {
	messages, next, err := listPage[Message](ctx, c, "/v1/messages", "messages", q.values())
	if err != nil {
		return nil, err
	}
	return &MessagePage{Messages: messages, NextCursor: next}, nil
}

func (q MessageQuery) values() url.Values {
	v := url.Values{}
	set(v, "app", q.App)
	set(v, "topic", q.Topic)
	set(v, "status", string(q.Status))
	setPage(v, q.Limit, q.Cursor)
	return v
}

// AllMessages iterates over every message matching q, page after page.
func (c *Client) AllMessages(ctx context.Context, q MessageQuery) iter.Seq2[*Message, error] {
	return paginate(q.Cursor, func(cursor string) ([]Message, string, error) {
		q.Cursor = cursor
		return listPage[Message](ctx, c, "/v1/messages", "messages", q.values())
	})
}

// SubscriptionRequest is the body of POST /v1/subscriptions and
// PUT /v1/subscriptions/{app}/{id}.
type SubscriptionRequest struct {
	App string `json:"app,omitempty"`
	// ID ([A-Za-z0-9._-]{1,64}): left empty, CreateSubscription generates
	// one; PutSubscription needs it.
	ID      string            `json:"id,omitempty"`
	Topic   string            `json:"topic"`
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Filter is an expression over data (API.md §7); empty matches everything.
	Filter      string `json:"filter,omitempty"`
	RollbackURL string `json:"rollback_url,omitempty"`
	// Active is true when nil.
	Active             *bool         `json:"active,omitempty"`
	MaxAttempts        int           `json:"max_attempts,omitempty"`
	Timeout            time.Duration `json:"timeout"`
	MinBackoff         time.Duration `json:"min_backoff"`
	MaxBackoff         time.Duration `json:"max_backoff"`
	FlowKey            string        `json:"flow_key,omitempty"`
	CallbackURL        string        `json:"callback_url,omitempty"`
	FailureCallbackURL string        `json:"failure_callback_url,omitempty"`
}

// MarshalJSON writes the request as the API takes it.
func (r SubscriptionRequest) MarshalJSON() ([]byte, error) {
	type plain SubscriptionRequest
	return json.Marshal(struct {
		plain
		Timeout    string `json:"timeout,omitempty"`
		MinBackoff string `json:"min_backoff,omitempty"`
		MaxBackoff string `json:"max_backoff,omitempty"`
	}{plain: plain(r), Timeout: fmtDuration(r.Timeout), MinBackoff: fmtDuration(r.MinBackoff), MaxBackoff: fmtDuration(r.MaxBackoff)})
}

// Subscription is a subscription as the API shows it.
type Subscription struct {
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	Topic              string            `json:"topic"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers"`
	Filter             string            `json:"filter"`
	RollbackURL        string            `json:"rollback_url"`
	Active             bool              `json:"active"`
	MaxAttempts        int               `json:"max_attempts"`
	Timeout            time.Duration     `json:"timeout"`
	MinBackoff         time.Duration     `json:"min_backoff"`
	MaxBackoff         time.Duration     `json:"max_backoff"`
	FlowKey            string            `json:"flow_key"`
	CallbackURL        string            `json:"callback_url"`
	FailureCallbackURL string            `json:"failure_callback_url"`
	CreatedAt          time.Time         `json:"created_at"`
	UpdatedAt          time.Time         `json:"updated_at"`

	// Replayed is set by a create answered 200 (an identical replay). It is
	// not part of the JSON.
	Replayed bool `json:"-"`
}

// MarshalJSON writes the subscription as the API shows it (durations as
// Go duration strings).
func (s Subscription) MarshalJSON() ([]byte, error) {
	type plain Subscription
	return json.Marshal(struct {
		plain
		Timeout    string `json:"timeout,omitempty"`
		MinBackoff string `json:"min_backoff,omitempty"`
		MaxBackoff string `json:"max_backoff,omitempty"`
	}{plain: plain(s), Timeout: fmtDuration(s.Timeout), MinBackoff: fmtDuration(s.MinBackoff), MaxBackoff: fmtDuration(s.MaxBackoff)})
}

// UnmarshalJSON reads the subscription as the API shows it.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	type plain Subscription
	w := struct {
		*plain
		Timeout    wireDuration `json:"timeout"`
		MinBackoff wireDuration `json:"min_backoff"`
		MaxBackoff wireDuration `json:"max_backoff"`
		CreatedAt  wireTime     `json:"created_at"`
		UpdatedAt  wireTime     `json:"updated_at"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	s.Timeout, s.MinBackoff, s.MaxBackoff = time.Duration(w.Timeout), time.Duration(w.MinBackoff), time.Duration(w.MaxBackoff)
	s.CreatedAt, s.UpdatedAt = time.Time(w.CreatedAt), time.Time(w.UpdatedAt)
	return nil
}

// CreateSubscription creates a subscription (POST /v1/subscriptions): 409
// (IsDuplicate) when the id exists with other content, 400 field "filter"
// when the filter does not compile. It is retried safely (an id is
// generated when the request has none).
func (c *Client) CreateSubscription(ctx context.Context, req SubscriptionRequest) (*Subscription, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	s, replayed, err := createOrReplay[Subscription](ctx, c, "/v1/subscriptions", req)
	if err != nil {
		return nil, err
	}
	s.Replayed = replayed
	return s, nil
}

// PutSubscription creates or replaces the subscription req.App/req.ID
// (PUT /v1/subscriptions/{app}/{id}).
func (c *Client) PutSubscription(ctx context.Context, req SubscriptionRequest) (*Subscription, error) {
	return replace[Subscription](ctx, c, "PutSubscription", "/v1/subscriptions", req.App, req.ID, req)
}

// GetSubscription reads a subscription (GET /v1/subscriptions/{app}/{id}).
func (c *Client) GetSubscription(ctx context.Context, app, id string) (*Subscription, error) {
	return c.subscriptionCall(ctx, "GetSubscription", http.MethodGet, app, id, true)
}

// DeleteSubscription deletes a subscription and returns it
// (DELETE /v1/subscriptions/{app}/{id}); 404 unknown.
func (c *Client) DeleteSubscription(ctx context.Context, app, id string) (*Subscription, error) {
	return c.subscriptionCall(ctx, "DeleteSubscription", http.MethodDelete, app, id, false)
}

func (c *Client) subscriptionCall(ctx context.Context, name, method, app, id string, idempotent bool) (*Subscription, error) {
	if err := needPath(name, "app", app, "id", id); err != nil {
		return nil, err
	}
	var s Subscription
	if _, err := c.do(ctx, call{method: method, path: pathOf("/v1/subscriptions", app, id), idempotent: idempotent}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SubscriptionQuery lists subscriptions. Empty fields do not filter.
type SubscriptionQuery struct {
	App    string
	Topic  string
	Limit  int
	Cursor string
}

// SubscriptionPage is one page of subscriptions.
type SubscriptionPage struct {
	Subscriptions []Subscription
	NextCursor    string
}

// ListSubscriptions returns one page of subscriptions (GET /v1/subscriptions).
func (c *Client) ListSubscriptions(ctx context.Context, q SubscriptionQuery) (*SubscriptionPage, error) {
	subs, next, err := listPage[Subscription](ctx, c, "/v1/subscriptions", "subscriptions", q.values())
	if err != nil {
		return nil, err
	}
	return &SubscriptionPage{Subscriptions: subs, NextCursor: next}, nil
}

func (q SubscriptionQuery) values() url.Values {
	v := url.Values{}
	set(v, "app", q.App)
	set(v, "topic", q.Topic)
	setPage(v, q.Limit, q.Cursor)
	return v
}

// AllSubscriptions iterates over every subscription matching q, page after page.
func (c *Client) AllSubscriptions(ctx context.Context, q SubscriptionQuery) iter.Seq2[*Subscription, error] {
	return paginate(q.Cursor, func(cursor string) ([]Subscription, string, error) {
		q.Cursor = cursor
		return listPage[Subscription](ctx, c, "/v1/subscriptions", "subscriptions", q.values())
	})
}
