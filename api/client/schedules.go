package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// ScheduleRequest is the body of POST /v1/schedules and
// PUT /v1/schedules/{app}/{id}: a recurrence and the event each occurrence is.
type ScheduleRequest struct {
	App string `json:"app,omitempty"`
	// ID ([A-Za-z0-9._-]{1,64}): left empty, CreateSchedule generates one;
	// PutSchedule needs it.
	ID string `json:"id,omitempty"`
	// Exactly one of Cron (5 fields, or @hourly, @daily, ...) and Every (≥ 1s).
	Cron  string        `json:"cron,omitempty"`
	Every time.Duration `json:"every"`
	// Timezone is an IANA name for Cron; empty means UTC.
	Timezone string `json:"timezone,omitempty"`
	// StartAt and EndAt bound the occurrences; zero: unbounded.
	StartAt time.Time `json:"start_at"`
	EndAt   time.Time `json:"end_at"`
	Paused  bool      `json:"paused,omitempty"`
	// The event template.
	URL                string            `json:"url"`
	Method             string            `json:"method,omitempty"`
	Headers            map[string]string `json:"headers,omitempty"`
	Body               string            `json:"body,omitempty"`
	MaxAttempts        int               `json:"max_attempts,omitempty"`
	Timeout            time.Duration     `json:"timeout"`
	MinBackoff         time.Duration     `json:"min_backoff"`
	MaxBackoff         time.Duration     `json:"max_backoff"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
}

// MarshalJSON writes the request as the API takes it.
func (r ScheduleRequest) MarshalJSON() ([]byte, error) {
	type plain ScheduleRequest
	return json.Marshal(struct {
		plain
		Every      string `json:"every,omitempty"`
		StartAt    string `json:"start_at,omitempty"`
		EndAt      string `json:"end_at,omitempty"`
		Timeout    string `json:"timeout,omitempty"`
		MinBackoff string `json:"min_backoff,omitempty"`
		MaxBackoff string `json:"max_backoff,omitempty"`
	}{plain: plain(r), Every: fmtDuration(r.Every), StartAt: fmtTime(r.StartAt), EndAt: fmtTime(r.EndAt),
		Timeout: fmtDuration(r.Timeout), MinBackoff: fmtDuration(r.MinBackoff), MaxBackoff: fmtDuration(r.MaxBackoff)})
}

// Schedule is a schedule as the API shows it.
type Schedule struct {
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	Cron               string            `json:"cron"`
	Every              time.Duration     `json:"every"`
	Timezone           string            `json:"timezone"`
	StartAt            time.Time         `json:"start_at"`
	EndAt              time.Time         `json:"end_at"`
	Paused             bool              `json:"paused"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers"`
	Body               string            `json:"body"`
	MaxAttempts        int               `json:"max_attempts"`
	Timeout            time.Duration     `json:"timeout"`
	MinBackoff         time.Duration     `json:"min_backoff"`
	MaxBackoff         time.Duration     `json:"max_backoff"`
	CallbackURL        string            `json:"callback_url"`
	FailureCallbackURL string            `json:"failure_callback_url"`
	FlowKey            string            `json:"flow_key"`
	// NextAt is the next occurrence; zero while paused or after EndAt.
	NextAt time.Time `json:"next_at"`
	// LastRuns are the latest occurrences, newest first.
	LastRuns  []Run     `json:"last_runs"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Replayed is set by a create answered 200 (an identical replay). It is
	// not part of the JSON.
	Replayed bool `json:"-"`
}

// MarshalJSON writes the schedule as the API shows it: durations as Go
// duration strings, times in RFC 3339, null for the zero time.
func (s Schedule) MarshalJSON() ([]byte, error) {
	type plain Schedule
	return json.Marshal(struct {
		plain
		Every      string  `json:"every,omitempty"`
		StartAt    *string `json:"start_at"`
		EndAt      *string `json:"end_at"`
		Timeout    string  `json:"timeout,omitempty"`
		MinBackoff string  `json:"min_backoff,omitempty"`
		MaxBackoff string  `json:"max_backoff,omitempty"`
		NextAt     *string `json:"next_at"`
	}{plain: plain(s), Every: fmtDuration(s.Every), StartAt: optTime(s.StartAt), EndAt: optTime(s.EndAt),
		Timeout: fmtDuration(s.Timeout), MinBackoff: fmtDuration(s.MinBackoff), MaxBackoff: fmtDuration(s.MaxBackoff),
		NextAt: optTime(s.NextAt)})
}

// UnmarshalJSON reads the schedule as the API shows it.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	type plain Schedule
	w := struct {
		*plain
		Every      wireDuration `json:"every"`
		StartAt    wireTime     `json:"start_at"`
		EndAt      wireTime     `json:"end_at"`
		Timeout    wireDuration `json:"timeout"`
		MinBackoff wireDuration `json:"min_backoff"`
		MaxBackoff wireDuration `json:"max_backoff"`
		NextAt     wireTime     `json:"next_at"`
		CreatedAt  wireTime     `json:"created_at"`
		UpdatedAt  wireTime     `json:"updated_at"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	s.Every, s.StartAt, s.EndAt = time.Duration(w.Every), time.Time(w.StartAt), time.Time(w.EndAt)
	s.Timeout, s.MinBackoff, s.MaxBackoff = time.Duration(w.Timeout), time.Duration(w.MinBackoff), time.Duration(w.MaxBackoff)
	s.NextAt, s.CreatedAt, s.UpdatedAt = time.Time(w.NextAt), time.Time(w.CreatedAt), time.Time(w.UpdatedAt)
	return nil
}

// Run is one occurrence of a schedule: an event with id
// "<schedule id>@<occurrence, Unix milliseconds>".
type Run struct {
	EventID string    `json:"event_id"`
	DueAt   time.Time `json:"due_at"`
	// Status is "" when the occurrence can no longer be read.
	Status Status `json:"status"`
}

// UnmarshalJSON reads the run as the API shows it.
func (r *Run) UnmarshalJSON(b []byte) error {
	type plain Run
	w := struct {
		*plain
		DueAt wireTime `json:"due_at"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.DueAt = time.Time(w.DueAt)
	return nil
}

// CreateSchedule creates a schedule (POST /v1/schedules): 409 (IsDuplicate)
// when the id exists with other content; 400 field cron, every or timezone
// when invalid. It is retried safely (an id is generated when the request
// has none).
func (c *Client) CreateSchedule(ctx context.Context, req ScheduleRequest) (*Schedule, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	s, replayed, err := createOrReplay[Schedule](ctx, c, "/v1/schedules", req)
	if err != nil {
		return nil, err
	}
	s.Replayed = replayed
	return s, nil
}

// PutSchedule creates or replaces the schedule req.App/req.ID
// (PUT /v1/schedules/{app}/{id}); the next occurrence follows the new definition.
func (c *Client) PutSchedule(ctx context.Context, req ScheduleRequest) (*Schedule, error) {
	return replace[Schedule](ctx, c, "PutSchedule", "/v1/schedules", req.App, req.ID, req)
}

// GetSchedule reads a schedule (GET /v1/schedules/{app}/{id}).
func (c *Client) GetSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.scheduleCall(ctx, "GetSchedule", http.MethodGet, app, id, "", true)
}

// DeleteSchedule deletes a schedule, cancelling its pending occurrence, and
// returns it (DELETE /v1/schedules/{app}/{id}).
func (c *Client) DeleteSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.scheduleCall(ctx, "DeleteSchedule", http.MethodDelete, app, id, "", false)
}

// PauseSchedule pauses a schedule; its pending occurrence is cancelled.
func (c *Client) PauseSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.scheduleCall(ctx, "PauseSchedule", http.MethodPost, app, id, "/pause", true)
}

// ResumeSchedule resumes a schedule from its next future occurrence.
func (c *Client) ResumeSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.scheduleCall(ctx, "ResumeSchedule", http.MethodPost, app, id, "/resume", true)
}

// TriggerSchedule makes one extra occurrence now (NextAt unchanged). It is
// not retried after a failure that may have reached the server: a repeat
// would make a second occurrence.
func (c *Client) TriggerSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.scheduleCall(ctx, "TriggerSchedule", http.MethodPost, app, id, "/trigger", false)
}

func (c *Client) scheduleCall(ctx context.Context, name, method, app, id, suffix string, idempotent bool) (*Schedule, error) {
	if err := needPath(name, "app", app, "id", id); err != nil {
		return nil, err
	}
	var s Schedule
	if _, err := c.do(ctx, call{method: method, path: pathOf("/v1/schedules", app, id) + suffix, idempotent: idempotent}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ScheduleQuery lists schedules. Empty fields do not filter.
type ScheduleQuery struct {
	App    string
	Limit  int
	Cursor string
}

// SchedulePage is one page of schedules.
type SchedulePage struct {
	Schedules  []Schedule
	NextCursor string
}

// ListSchedules returns one page of schedules (GET /v1/schedules).
func (c *Client) ListSchedules(ctx context.Context, q ScheduleQuery) (*SchedulePage, error) {
	schedules, next, err := listPage[Schedule](ctx, c, "/v1/schedules", "schedules", q.values())
	if err != nil {
		return nil, err
	}
	return &SchedulePage{Schedules: schedules, NextCursor: next}, nil
}

func (q ScheduleQuery) values() url.Values {
	v := url.Values{}
	set(v, "app", q.App)
	setPage(v, q.Limit, q.Cursor)
	return v
}

// AllSchedules iterates over every schedule matching q, page after page.
func (c *Client) AllSchedules(ctx context.Context, q ScheduleQuery) iter.Seq2[*Schedule, error] {
	return paginate(q.Cursor, func(cursor string) ([]Schedule, string, error) {
		q.Cursor = cursor
		return listPage[Schedule](ctx, c, "/v1/schedules", "schedules", q.values())
	})
}
