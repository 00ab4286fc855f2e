package scheduler

import (
	"time"
)

// Status is where an event is in its life. See API.md §2.
type Status string

// The statuses of the original Cassata plus CANCELLED.
const (
	StatusPending            Status = "PENDING"
	StatusProcessing         Status = "PROCESSING"
	StatusCompleted          Status = "COMPLETED"
	StatusFailed             Status = "FAILED"
	StatusServiceUnavailable Status = "SERVICE_UNAVAILABLE"
	StatusCancelled          Status = "CANCELLED"
)

// Statuses lists every status in display order.
var Statuses = []Status{StatusPending, StatusProcessing, StatusCompleted, StatusFailed, StatusServiceUnavailable, StatusCancelled}

// Final reports whether no further delivery will happen on its own.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusServiceUnavailable, StatusCancelled:
		return true
	}
	return false
}

// Retryable reports whether an operator or client may retry an event in this status.
func (s Status) Retryable() bool {
	return s == StatusFailed || s == StatusServiceUnavailable || s == StatusCancelled
}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Event is one HTTP request to send at a due time. Its identity is (App, ID).
type Event struct {
	App     string
	ID      string
	URL     string
	Method  string
	Headers map[string]string
	Body    []byte
	DueAt   time.Time

	Status   Status
	Attempts int
	// MaxAttempts, Timeout, MinBackoff and MaxBackoff are the event's own
	// overrides; zero means the worker's defaults apply.
	MaxAttempts int
	Timeout     time.Duration
	MinBackoff  time.Duration
	MaxBackoff  time.Duration

	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time

	LastStatusCode int
	LastError      string
	Worker         string

	// BodyDropped is true when the event finished and Redis no longer keeps its body.
	BodyDropped bool
	History     []Attempt

	// Kind says what a worker does when the event is due: KindRequest (the
	// zero value) sends its HTTP request; KindMessage fans a topic message
	// out to the topic's subscriptions (scheduler/topic); KindOccurrence
	// sends its request like KindRequest and makes sure the next occurrence
	// of its schedule exists before recording the outcome (scheduler/schedule).
	Kind Kind
	// Topic and Mode are a message's topic and delivery mode (KindMessage).
	Topic string
	Mode  string
	// Parent is the identity ("<app>/<id>") of the message a delivery or a
	// compensation belongs to: when the event reaches a final status, the
	// worker nudges the parent so its status moves on without waiting.
	Parent string
	// Plan is a message's fan-out plan once made (JSON, see scheduler/topic):
	// a fan-out repeated after a crash creates exactly the same deliveries.
	Plan []byte
	// CallbackURL is called (POST, the event as GET shows it) each time the
	// event reaches a final status; FailureCallbackURL only for FAILED and
	// SERVICE_UNAVAILABLE (for a message: its failures and rollbacks). A
	// callback is itself an event, without callbacks of its own.
	CallbackURL        string
	FailureCallbackURL string
	// FlowKey names the flow-control limit (API.md §9) the event's
	// deliveries count against, together with every other event and
	// subscription of its application with the same key; "" is none.
	FlowKey string
	// TraceParent is the W3C traceparent of the span that created the
	// event ("" when tracing is off or the create was not traced): the
	// worker's delivery spans are its children, so a delivery hours later
	// still belongs to the trace of the request that scheduled it.
	TraceParent string
}

// Kind is what a worker does with a due event.
type Kind string

// The kinds of event.
const (
	KindRequest    Kind = ""
	KindMessage    Kind = "message"
	KindOccurrence Kind = "occurrence"
)

// Member is the event's member name in the shard's sorted sets: "<app>/<id>".
func (e *Event) Member() string { return e.App + "/" + e.ID }

// Attempt is one delivery attempt in an event's history.
type Attempt struct {
	Attempt    int    `json:"attempt"`
	At         int64  `json:"at"` // Unix ms
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Worker     string `json:"worker,omitempty"`
	Response   string `json:"response,omitempty"`
	// Stale marks an attempt whose worker had lost its lease by the time it
	// finished: a duplicate delivery whose outcome did not count.
	Stale bool `json:"stale,omitempty"`
}

// AtTime returns At as a time.
func (a Attempt) AtTime() time.Time { return time.UnixMilli(a.At).UTC() }
