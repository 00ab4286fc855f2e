package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Status is an event's status (API.md §2).
type Status string

// The statuses of an event.
const (
	StatusPending            Status = "PENDING"
	StatusProcessing         Status = "PROCESSING"
	StatusCompleted          Status = "COMPLETED"
	StatusFailed             Status = "FAILED"
	StatusServiceUnavailable Status = "SERVICE_UNAVAILABLE"
	StatusCancelled          Status = "CANCELLED"
)

// Final reports whether the status is final until a retry: COMPLETED,
// FAILED, SERVICE_UNAVAILABLE or CANCELLED.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusServiceUnavailable, StatusCancelled:
		return true
	}
	return false
}

// CreateEventRequest is the body of POST /v1/events: one HTTP request to
// send at a due time.
type CreateEventRequest struct {
	// App is the application; an application's API key fills in its own.
	App string `json:"app,omitempty"`
	// ID is the event id (1–128 printable ASCII bytes without "/" or
	// spaces). Left empty, the client generates one (NewID), so that a
	// retried create is recognised as a replay.
	ID  string `json:"id,omitempty"`
	URL string `json:"url"`
	// Method is GET, POST, PUT, PATCH, DELETE or HEAD; empty means POST.
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is sent verbatim (use json.Marshal's text for a JSON body).
	Body string `json:"body,omitempty"`
	// At is the due time (sent as RFC 3339 "at"). Or Delay from now (sent as
	// a Go duration, "delay"). Neither: due now. Both: the server refuses it.
	At    time.Time     `json:"at"`
	Delay time.Duration `json:"delay"`
	// The retry policy; zero values take the server's defaults.
	MaxAttempts int           `json:"max_attempts,omitempty"`
	Timeout     time.Duration `json:"timeout"`
	MinBackoff  time.Duration `json:"min_backoff"`
	MaxBackoff  time.Duration `json:"max_backoff"`
	// CallbackURL is called with the event after its final outcome;
	// FailureCallbackURL only after FAILED or SERVICE_UNAVAILABLE.
	CallbackURL        string `json:"callback_url,omitempty"`
	FailureCallbackURL string `json:"failure_callback_url,omitempty"`
	// FlowKey puts the event under a flow key's limits (PutFlow).
	FlowKey string `json:"flow_key,omitempty"`
}

// MarshalJSON writes the request as the API takes it.
func (r CreateEventRequest) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// createWire is a CreateEventRequest as the API takes it. A batch is
// written as a list of them: a MarshalJSON per event would encode each
// twice (encoding/json checks and compacts what a MarshalJSON returns),
// which was most of the client's time in a 1,000-event CreateEvents.
type createWire struct {
	App                string            `json:"app,omitempty"`
	ID                 string            `json:"id,omitempty"`
	URL                string            `json:"url"`
	Method             string            `json:"method,omitempty"`
	Headers            map[string]string `json:"headers,omitempty"`
	Body               string            `json:"body,omitempty"`
	MaxAttempts        int               `json:"max_attempts,omitempty"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
	At                 string            `json:"at,omitempty"`
	Delay              string            `json:"delay,omitempty"`
	Timeout            string            `json:"timeout,omitempty"`
	MinBackoff         string            `json:"min_backoff,omitempty"`
	MaxBackoff         string            `json:"max_backoff,omitempty"`
}

func (r CreateEventRequest) wire() createWire {
	at, delay := dueOf(r.At, r.Delay, true)
	return createWire{App: r.App, ID: r.ID, URL: r.URL, Method: r.Method, Headers: r.Headers, Body: r.Body,
		MaxAttempts: r.MaxAttempts, CallbackURL: r.CallbackURL, FailureCallbackURL: r.FailureCallbackURL,
		FlowKey: r.FlowKey, At: at, Delay: delay, Timeout: fmtDuration(r.Timeout),
		MinBackoff: fmtDuration(r.MinBackoff), MaxBackoff: fmtDuration(r.MaxBackoff)}
}

// Event is an event as the API shows it (GET /v1/events/{app}/{id}).
type Event struct {
	App     string            `json:"app"`
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Status  Status            `json:"status"`
	// Attempts is the number of attempts made so far.
	Attempts    int           `json:"attempts"`
	MaxAttempts int           `json:"max_attempts"`
	Timeout     time.Duration `json:"timeout"`
	MinBackoff  time.Duration `json:"min_backoff"`
	MaxBackoff  time.Duration `json:"max_backoff"`
	DueAt       time.Time     `json:"due_at"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	// FinishedAt is zero until the event reaches a final status.
	FinishedAt         time.Time `json:"finished_at"`
	LastStatusCode     int       `json:"last_status_code"`
	LastError          string    `json:"last_error"`
	History            []Attempt `json:"history"`
	CallbackURL        string    `json:"callback_url"`
	FailureCallbackURL string    `json:"failure_callback_url"`
	FlowKey            string    `json:"flow_key"`

	// Replayed is set by a create answered 200 instead of 201: an
	// identical create of this id had been stored before (an earlier try
	// of the same call, or another call). It is not part of the JSON.
	Replayed bool `json:"-"`
}

// MarshalJSON writes the event as the API shows it: durations as Go
// duration strings, times in RFC 3339 (the zero time left out).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		plain
		Timeout    string `json:"timeout,omitempty"`
		MinBackoff string `json:"min_backoff,omitempty"`
		MaxBackoff string `json:"max_backoff,omitempty"`
		FinishedAt string `json:"finished_at,omitempty"`
	}{plain: plain(e), Timeout: fmtDuration(e.Timeout), MinBackoff: fmtDuration(e.MinBackoff),
		MaxBackoff: fmtDuration(e.MaxBackoff), FinishedAt: fmtTime(e.FinishedAt)})
}

// UnmarshalJSON reads the event as the API shows it.
func (e *Event) UnmarshalJSON(b []byte) error {
	w := eventWire{plainEvent: plainEvent(*e)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = w.event()
	return nil
}

// plainEvent is Event without its UnmarshalJSON.
type plainEvent Event

// eventWire is an event as the API writes it. A list of events decodes
// into it in one pass (the answer of a batch has a thousand), where
// decoding into Event would decode each event a second time in its
// UnmarshalJSON.
type eventWire struct {
	plainEvent
	Timeout    wireDuration `json:"timeout"`
	MinBackoff wireDuration `json:"min_backoff"`
	MaxBackoff wireDuration `json:"max_backoff"`
	DueAt      wireTime     `json:"due_at"`
	CreatedAt  wireTime     `json:"created_at"`
	UpdatedAt  wireTime     `json:"updated_at"`
	FinishedAt wireTime     `json:"finished_at"`
}

func (w *eventWire) event() Event {
	e := Event(w.plainEvent)
	e.Timeout, e.MinBackoff, e.MaxBackoff = time.Duration(w.Timeout), time.Duration(w.MinBackoff), time.Duration(w.MaxBackoff)
	e.DueAt, e.CreatedAt, e.UpdatedAt = time.Time(w.DueAt), time.Time(w.CreatedAt), time.Time(w.UpdatedAt)
	e.FinishedAt = time.Time(w.FinishedAt)
	return e
}

// Attempt is one delivery attempt of an event's history.
type Attempt struct {
	// Attempt is 1-based.
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// StatusCode is the destination's answer, 0 when it did not answer.
	StatusCode int `json:"status_code"`
	// Error says what went wrong ("" when the answer was taken as it is).
	Error      string `json:"error"`
	DurationMS int64  `json:"duration_ms"`
	Worker     string `json:"worker"`
	Response   string `json:"response"`
	Stale      bool   `json:"stale"`
}

// UnmarshalJSON reads the attempt as the API shows it (nulls as zero values).
func (a *Attempt) UnmarshalJSON(b []byte) error {
	type plain Attempt
	w := struct {
		*plain
		At wireTime `json:"at"`
	}{plain: (*plain)(a)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	a.At = time.Time(w.At)
	return nil
}

// CreateEvent schedules one event (POST /v1/events). It retries safely: a
// request without an ID gets one (NewID) before the first try. A create of
// an id that exists with other content is a 409 (IsDuplicate).
func (c *Client) CreateEvent(ctx context.Context, req CreateEventRequest) (*Event, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	ev, replayed, err := createOrReplay[Event](ctx, c, "/v1/events", req)
	if err != nil {
		return nil, err
	}
	ev.Replayed = replayed
	return ev, nil
}

// BatchResult is the outcome of one create of a batch.
type BatchResult struct {
	// Status is 201 (created), 200 (identical replay) or the error's status.
	Status int
	// Event is the stored event (nil on error).
	Event *Event
	// Err is the item's error (nil on success).
	Err *Error
}

// CreateEvents creates up to 1000 events in one request
// (POST /v1/events/batch): one result per request, in order. Items are
// refused on their own (their Err); the returned error concerns the whole
// batch. Items without an ID get one, so the batch is retried safely.
func (c *Client) CreateEvents(ctx context.Context, reqs []CreateEventRequest) ([]BatchResult, error) {
	items := make([]createWire, len(reqs))
	for i, r := range reqs {
		if r.ID == "" {
			r.ID = NewID()
		}
		items[i] = r.wire()
	}
	var resp struct {
		Results []struct {
			Status int          `json:"status"`
			Event  *eventWire   `json:"event"`
			Error  *errorDetail `json:"error"`
		} `json:"results"`
	}
	body := struct {
		Events []createWire `json:"events"`
	}{items}
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/events/batch", body: body, idempotent: true}, &resp); err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(resp.Results))
	events := make([]Event, len(resp.Results)) // one allocation for all
	for i, r := range resp.Results {
		out[i] = BatchResult{Status: r.Status}
		if r.Error != nil {
			out[i].Err = r.Error.toError(r.Status)
		}
		if r.Event != nil {
			events[i] = r.Event.event()
			events[i].Replayed = r.Status == http.StatusOK
			out[i].Event = &events[i]
		}
	}
	return out, nil
}

// GetEvent reads an event, live or archived (GET /v1/events/{app}/{id}).
func (c *Client) GetEvent(ctx context.Context, app, id string) (*Event, error) {
	return c.eventCall(ctx, "GetEvent", http.MethodGet, app, id, "", true)
}

// CancelEvent cancels a PENDING event (DELETE /v1/events/{app}/{id}) and
// returns it CANCELLED; 404 (IsNotFound) unknown, 409 (IsConflict) when it
// is not PENDING.
func (c *Client) CancelEvent(ctx context.Context, app, id string) (*Event, error) {
	return c.eventCall(ctx, "CancelEvent", http.MethodDelete, app, id, "", false)
}

// RetryEvent puts a FAILED, SERVICE_UNAVAILABLE or CANCELLED event back to
// PENDING, due now, attempts reset (POST /v1/events/{app}/{id}/retry); 409
// for other statuses.
func (c *Client) RetryEvent(ctx context.Context, app, id string) (*Event, error) {
	return c.eventCall(ctx, "RetryEvent", http.MethodPost, app, id, "/retry", false)
}

func (c *Client) eventCall(ctx context.Context, name, method, app, id, suffix string, idempotent bool) (*Event, error) {
	if err := needPath(name, "app", app, "id", id); err != nil {
		return nil, err
	}
	var ev Event
	if _, err := c.do(ctx, call{method: method, path: pathOf("/v1/events", app, id) + suffix, idempotent: idempotent}, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// EventFilter selects events by the search filters of GET /v1/events and
// POST /v1/events/retry. Empty fields do not filter.
type EventFilter struct {
	App string
	// Statuses matches any of them.
	Statuses []Status
	// Q is an id prefix or a URL substring.
	Q string
	// From and To bound the due time.
	From, To time.Time
}

func (f EventFilter) status() string {
	names := make([]string, len(f.Statuses))
	for i, s := range f.Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

// SearchQuery is a search of events: the filters, and a page.
type SearchQuery struct {
	EventFilter
	// Limit is the page size (server default 50, at most 500).
	Limit int
	// Cursor continues from a page's NextCursor.
	Cursor string
}

func (q SearchQuery) values() url.Values {
	v := url.Values{}
	set(v, "app", q.App)
	set(v, "status", q.status())
	set(v, "q", q.Q)
	set(v, "from", fmtTime(q.From))
	set(v, "to", fmtTime(q.To))
	setPage(v, q.Limit, q.Cursor)
	return v
}

func set(v url.Values, key, value string) {
	if value != "" {
		v.Set(key, value)
	}
}

func setPage(v url.Values, limit int, cursor string) {
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	set(v, "cursor", cursor)
}

// EventPage is one page of a search.
type EventPage struct {
	Events []Event `json:"events"`
	// NextCursor continues the search; "" on the last page.
	NextCursor string `json:"next_cursor"`
}

// SearchEvents returns one page of the events matching q (GET /v1/events).
// Search sees a create or a change within 2 s.
func (c *Client) SearchEvents(ctx context.Context, q SearchQuery) (*EventPage, error) {
	events, next, err := listPage[Event](ctx, c, "/v1/events", "events", q.values())
	if err != nil {
		return nil, err
	}
	return &EventPage{Events: events, NextCursor: next}, nil
}

// AllEvents iterates over every event matching q, page after page
// (q.Cursor is where it starts). It stops at the first error, which it yields.
func (c *Client) AllEvents(ctx context.Context, q SearchQuery) iter.Seq2[*Event, error] {
	return paginate(q.Cursor, func(cursor string) ([]Event, string, error) {
		q.Cursor = cursor
		return listPage[Event](ctx, c, "/v1/events", "events", q.values())
	})
}

// BulkRetry puts every FAILED or SERVICE_UNAVAILABLE event matching f back
// to PENDING (POST /v1/events/retry) and returns how many.
func (c *Client) BulkRetry(ctx context.Context, f EventFilter) (int, error) {
	body := struct {
		App    string `json:"app,omitempty"`
		Status string `json:"status,omitempty"`
		Q      string `json:"q,omitempty"`
		From   string `json:"from,omitempty"`
		To     string `json:"to,omitempty"`
	}{f.App, f.status(), f.Q, fmtTime(f.From), fmtTime(f.To)}
	var resp struct {
		Retried int `json:"retried"`
	}
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/events/retry", body: body}, &resp); err != nil {
		return 0, err
	}
	return resp.Retried, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// paginate yields the items of the pages fetch returns, from cursor on,
// until a page without a next cursor.
// listPage reads one page of a list route: the items under key and the
// next cursor ("" on the last page).
func listPage[T any](ctx context.Context, c *Client, path, key string, v url.Values) ([]T, string, error) {
	var page map[string]json.RawMessage
	if _, err := c.do(ctx, call{method: http.MethodGet, path: path, query: v, idempotent: true}, &page); err != nil {
		return nil, "", err
	}
	var items []T
	var next *string
	if raw := page[key]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, "", fmt.Errorf("cassata client: decode %s: %w", key, err)
		}
	}
	if raw := page["next_cursor"]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &next); err != nil {
			return nil, "", fmt.Errorf("cassata client: decode next_cursor: %w", err)
		}
	}
	return items, deref(next), nil
}

func paginate[T any](cursor string, fetch func(cursor string) ([]T, string, error)) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range items {
				if !yield(&items[i], nil) {
					return
				}
			}
			if next == "" || next == cursor {
				return
			}
			cursor = next
		}
	}
}
