package topic

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Modes of a message (API.md §7).
const (
	ModeIndependent  = "independent"
	ModeAllOrNothing = "all_or_nothing"
)

// MessageStatus is where a message is in its life; derived from its
// carrier event and its deliveries (DeriveStatus), never stored.
type MessageStatus string

// The message statuses of API.md §7.
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

// MessageStatuses lists every message status in display order.
var MessageStatuses = []MessageStatus{MessagePending, MessageDispatched, MessageCompleted, MessageFailed,
	MessageRollingBack, MessageRolledBack, MessageRollbackFailed, MessageCancelled}

// Final reports whether the message will not change on its own any more.
func (s MessageStatus) Final() bool {
	switch s {
	case MessageCompleted, MessageFailed, MessageRolledBack, MessageRollbackFailed, MessageCancelled:
		return true
	}
	return false
}

// The identities a message gives the events it is made of. A message is
// stored as its carrier event (kind message), whose id is CarrierPrefix +
// the message id; its delivery to subscription s is the event
// "<message id>~<s>", the compensation of that delivery "<message id>!<s>".
// Subscription ids have no '~' or '!', so these never collide with each
// other, and a message id of at most MaxMessageIDLength bytes keeps them
// within an event id's 128 bytes.
const (
	CarrierPrefix      = "~"
	MaxMessageIDLength = 63
)

// CarrierID is the id of message id's carrier event.
func CarrierID(id string) string { return CarrierPrefix + id }

// DeliveryID is the id of the delivery of message id to subscription sub.
func DeliveryID(id, sub string) string { return id + "~" + sub }

// CompensationID is the id of the compensation of that delivery.
func CompensationID(id, sub string) string { return id + "!" + sub }

// Headers a delivery or compensation carries besides those of API.md §3.
const (
	HeaderTopic        = "Cassata-Topic"
	HeaderMessageID    = "Cassata-Message-Id"
	HeaderSubscription = "Cassata-Subscription-Id"
	HeaderRollbackOf   = "Cassata-Rollback-Of"
)

// Plan is a message's fan-out, made once from the subscriptions as they
// were at that moment and recorded in its carrier before any delivery is
// created, so a fan-out repeated after a crash creates the same events.
type Plan struct {
	Deliveries   []Planned     `json:"d"`
	FilterErrors []FilterError `json:"fe,omitempty"`
}

// Planned is one delivery of a plan: the request to send, taken from the
// subscription, and where its compensation goes.
type Planned struct {
	Subscription    string            `json:"s"`
	URL             string            `json:"u"`
	Method          string            `json:"m"`
	Headers         map[string]string `json:"h,omitempty"`
	RollbackURL     string            `json:"r,omitempty"`
	MaxAttempts     int               `json:"x,omitempty"`
	TimeoutMS       int64             `json:"to,omitempty"`
	MinBackoffMS    int64             `json:"bn,omitempty"`
	MaxBackoffMS    int64             `json:"bx,omitempty"`
	Callback        string            `json:"cb,omitempty"`
	FailureCallback string            `json:"fcb,omitempty"`
	FlowKey         string            `json:"fk,omitempty"`
}

// FilterError is a subscription whose filter failed at run time for a
// message: it did not match.
type FilterError struct {
	Subscription string `json:"subscription"`
	Error        string `json:"error"`
}

// DecodePlan reads a carrier's plan; nil when it has none yet.
func DecodePlan(b []byte) (*Plan, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	return &p, nil
}

// Delivery is the state of one delivery or compensation of a message.
type Delivery struct {
	Subscription string           `json:"subscription"`
	EventID      string           `json:"event_id"`
	Status       scheduler.Status `json:"status"`
	Attempts     int              `json:"attempts"`
}

// Message is a published message as GET /v1/messages/{app}/{id} shows it.
type Message struct {
	App, ID, Topic, Mode string
	Method               string
	Headers              map[string]string
	Body                 []byte
	Status               MessageStatus
	DueAt                time.Time
	CreatedAt            time.Time
	UpdatedAt            time.Time
	Deliveries           []Delivery
	Rollbacks            []Delivery
	FilterErrors         []FilterError
}

// Followed reports whether a message is followed after its fan-out until
// its deliveries end: an all_or_nothing message (to roll back) or one with
// a callback (to report its final status). Any other message is done once
// fanned out: its status is derived from its deliveries when read, and its
// deliveries need not report back to it.
func Followed(carrier *scheduler.Event) bool {
	return carrier.Mode == ModeAllOrNothing || carrier.CallbackURL != "" || carrier.FailureCallbackURL != ""
}

// DeliveryEvent builds the event that delivers message carrier to p,
// created and due at due (a whole millisecond).
func DeliveryEvent(carrier *scheduler.Event, msgID string, p Planned, due time.Time) *scheduler.Event {
	due = due.UTC().Truncate(time.Millisecond)
	h := make(map[string]string, len(carrier.Headers)+len(p.Headers)+3)
	overlay(h, carrier.Headers)
	overlay(h, p.Headers)
	overlay(h, map[string]string{HeaderTopic: carrier.Topic, HeaderMessageID: msgID, HeaderSubscription: p.Subscription})
	ev := &scheduler.Event{
		App: carrier.App, ID: DeliveryID(msgID, p.Subscription),
		URL: p.URL, Method: p.Method, Headers: h, Body: carrier.Body, DueAt: due,
		MaxAttempts: p.MaxAttempts, Timeout: time.Duration(p.TimeoutMS) * time.Millisecond,
		MinBackoff: time.Duration(p.MinBackoffMS) * time.Millisecond, MaxBackoff: time.Duration(p.MaxBackoffMS) * time.Millisecond,
		Status: scheduler.StatusPending, CreatedAt: due, UpdatedAt: due,
		CallbackURL: p.Callback, FailureCallbackURL: p.FailureCallback, FlowKey: p.FlowKey,
		// Its attempts join the trace of the publish request (tracing on).
		TraceParent: carrier.TraceParent,
	}
	if Followed(carrier) {
		// Its end nudges the message to take its next step at once.
		ev.Parent = carrier.Member()
	}
	return ev
}

// CompensationEvent builds the event that compensates the delivery of
// message carrier to p, after that delivery completed; created and due at
// due (a whole millisecond).
func CompensationEvent(carrier *scheduler.Event, msgID string, p Planned, due time.Time) *scheduler.Event {
	due = due.UTC().Truncate(time.Millisecond)
	h := map[string]string{
		HeaderRollbackOf: DeliveryID(msgID, p.Subscription), HeaderMessageID: msgID,
		HeaderTopic: carrier.Topic, HeaderSubscription: p.Subscription,
	}
	if ct := header(carrier.Headers, "Content-Type"); ct != "" {
		h["Content-Type"] = ct
	}
	return &scheduler.Event{
		App: carrier.App, ID: CompensationID(msgID, p.Subscription),
		URL: p.RollbackURL, Method: "POST", Headers: h, Body: carrier.Body, DueAt: due,
		MaxAttempts: p.MaxAttempts, Timeout: time.Duration(p.TimeoutMS) * time.Millisecond,
		MinBackoff: time.Duration(p.MinBackoffMS) * time.Millisecond, MaxBackoff: time.Duration(p.MaxBackoffMS) * time.Millisecond,
		Parent: carrier.Member(), Status: scheduler.StatusPending, CreatedAt: due, UpdatedAt: due,
		// A compensation is a request of the subscription too: it counts
		// against the subscription's flow-control limit.
		FlowKey:     p.FlowKey,
		TraceParent: carrier.TraceParent,
	}
}

// overlay sets src's headers in dst, replacing a header of dst with the
// same name in another case, so the later one wins as a whole.
func overlay(dst, src map[string]string) {
	for k, v := range src {
		for old := range dst {
			if strings.EqualFold(old, k) {
				delete(dst, old)
			}
		}
		dst[k] = v
	}
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// DeliveryFailed reports whether a delivery ended without reaching its
// destination (a cancelled one never did).
func DeliveryFailed(s scheduler.Status) bool {
	return s == scheduler.StatusFailed || s == scheduler.StatusServiceUnavailable || s == scheduler.StatusCancelled
}

// DeriveStatus computes a message's status from its carrier and the states
// of its deliveries and compensations (in plan order; a delivery not found
// has an empty status and counts as not final):
//
//   - no plan yet: PENDING (CANCELLED when the carrier was cancelled);
//   - independent: DISPATCHED while a delivery is not final, then COMPLETED
//     when all COMPLETED (or there were none), else FAILED;
//   - all_or_nothing, while no delivery failed: as independent;
//     once one failed (FAILED, SERVICE_UNAVAILABLE, or cancelled by someone):
//     ROLLING_BACK while a delivery or a compensation is not final, or a
//     completed delivery with a rollback_url has no compensation yet; then
//     ROLLED_BACK when every compensation COMPLETED, else ROLLBACK_FAILED.
//
// A cancelled delivery counts as failed: it never reached its subscriber.
func DeriveStatus(carrier *scheduler.Event, plan *Plan, deliveries, rollbacks []Delivery) MessageStatus {
	if plan == nil {
		if carrier.Status == scheduler.StatusCancelled {
			return MessageCancelled
		}
		return MessagePending
	}
	allDone, anyFailed := true, false
	for _, d := range deliveries {
		if !d.Status.Final() {
			allDone = false
		}
		if DeliveryFailed(d.Status) {
			anyFailed = true
		}
	}
	if carrier.Mode == ModeAllOrNothing && anyFailed {
		comp := make(map[string]Delivery, len(rollbacks))
		for _, r := range rollbacks {
			comp[r.Subscription] = r
		}
		if !allDone {
			return MessageRollingBack
		}
		ok := true
		for i, d := range deliveries {
			if d.Status != scheduler.StatusCompleted || plan.Deliveries[i].RollbackURL == "" {
				continue
			}
			r, has := comp[d.Subscription]
			switch {
			case !has || !r.Status.Final():
				return MessageRollingBack
			case r.Status != scheduler.StatusCompleted:
				ok = false
			}
		}
		if ok {
			return MessageRolledBack
		}
		return MessageRollbackFailed
	}
	switch {
	case !allDone:
		return MessageDispatched
	case anyFailed:
		return MessageFailed
	}
	return MessageCompleted
}
