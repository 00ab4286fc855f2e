package topic

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// MessageStore is what Messages needs from the live store (store/redisstore).
type MessageStore interface {
	Create(ctx context.Context, ev *scheduler.Event, now time.Time) (existing *scheduler.Event, err error)
	Get(ctx context.Context, app, id string) (*scheduler.Event, error)
	GetMany(ctx context.Context, ids []scheduler.Ident) ([]*scheduler.Event, error)
	Cancel(ctx context.Context, app, id string, now time.Time) (*scheduler.Event, error)
	IndexMessage(ctx context.Context, app, id string, created time.Time) error
	MessageIDs(ctx context.Context, app, after string, limit int) ([]string, error)
	ForgetMessages(ctx context.Context, app string, ids []string) error
	MessageApps(ctx context.Context) ([]string, error)
}

// EventReader reads an event live or from the archive (scheduler.Scheduler).
type EventReader interface {
	Get(ctx context.Context, app, id string) (*scheduler.Event, error)
}

// MessagesConfig configures Messages.
type MessagesConfig struct {
	// Clock gives the time of publishing. Defaults to the system clock.
	Clock scheduler.Clock
	// Limits bound a message's headers and body as they bound an event's.
	// Zero fields take scheduler's defaults.
	Limits scheduler.Limits
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c MessagesConfig) WithDefaults() MessagesConfig {
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c MessagesConfig) Validate() error {
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("topic: Limits: %w", err)
	}
	return nil
}

// Messages publishes, reads, lists and cancels topic messages. Fan-out is
// the worker's (scheduler/worker fanout.go).
type Messages struct {
	store  MessageStore
	events EventReader
	cfg    MessagesConfig
}

// NewMessages returns the messages component; events reads deliveries that
// Redis no longer has (nil: only live ones).
func NewMessages(store MessageStore, events EventReader, cfg MessagesConfig) (*Messages, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Messages{store: store, events: events, cfg: cfg}, nil
}

// Publish is a message to publish.
type Publish struct {
	App, ID, Topic, Method, Mode string
	Headers                      map[string]string
	Body                         []byte
	// DueAt is when to fan out; zero: now.
	DueAt time.Time
	// RelativeDue: the due time was given relative to now (a delay), so a
	// replay is identical when everything else matches.
	RelativeDue bool
	// CallbackURL and FailureCallbackURL: see scheduler.Event.
	CallbackURL, FailureCallbackURL string
}

// Publish stores a message to fan out at its due time. It returns the
// message and whether it was created (false: an identical publish was
// replayed); a different message under the same identity is
// scheduler.ErrDuplicate.
func (m *Messages) Publish(ctx context.Context, p Publish) (*Message, bool, error) {
	now := m.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	if p.ID == "" {
		p.ID = scheduler.NewID(now)
	}
	if !scheduler.ValidApp(p.App) {
		return nil, false, scheduler.Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	if !ValidTopic(p.Topic) {
		return nil, false, scheduler.Invalid("topic", "topic must match [A-Za-z0-9._-]{1,128}")
	}
	if len(p.ID) > MaxMessageIDLength || !scheduler.ValidID(p.ID) {
		return nil, false, scheduler.Invalid("id", "message id must be 1-%d bytes of printable ASCII without '/', spaces or control characters", MaxMessageIDLength)
	}
	switch p.Mode {
	case "":
		p.Mode = ModeIndependent
	case ModeIndependent, ModeAllOrNothing:
	default:
		return nil, false, scheduler.Invalid("mode", "mode must be %s or %s", ModeIndependent, ModeAllOrNothing)
	}
	if p.DueAt.IsZero() {
		p.DueAt = now
	}
	carrier := &scheduler.Event{
		App: p.App, ID: CarrierID(p.ID), Method: p.Method, Headers: p.Headers, Body: p.Body,
		DueAt: p.DueAt.UTC().Truncate(time.Millisecond), Kind: scheduler.KindMessage, Topic: p.Topic, Mode: p.Mode,
		CreatedAt: now, UpdatedAt: now, Status: scheduler.StatusPending,
		// Following a message is not delivering it, but a worker that dies
		// while holding it costs an attempt (reap.lua): allow the most.
		MaxAttempts: scheduler.MaxMaxAttempts,
		CallbackURL: p.CallbackURL, FailureCallbackURL: p.FailureCallbackURL,
		// Its deliveries join the trace of the publish request (tracing on).
		TraceParent: scheduler.TraceParentFrom(ctx),
	}
	if len(carrier.Body) > 0 && header(carrier.Headers, "Content-Type") == "" {
		if carrier.Headers == nil {
			carrier.Headers = map[string]string{}
		}
		carrier.Headers["Content-Type"] = "application/json"
	}
	// The headers, method and body follow an event's rules: check them as
	// an event's, with a stand-in for the url a message does not have (each
	// subscription's url was checked when it was created).
	probe := *carrier
	probe.URL = "https://message.example/"
	if err := m.cfg.Limits.Check(&probe); err != nil {
		return nil, false, err
	}
	carrier.Method = probe.Method
	if err := m.store.IndexMessage(ctx, p.App, p.ID, now); err != nil {
		return nil, false, err
	}
	existing, err := m.store.Create(ctx, carrier, time.Time{})
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		msg, err := m.view(ctx, carrier)
		return msg, true, err
	}
	same := existing.Kind == scheduler.KindMessage && existing.Topic == carrier.Topic && existing.Mode == carrier.Mode &&
		existing.CallbackURL == carrier.CallbackURL && existing.FailureCallbackURL == carrier.FailureCallbackURL &&
		existing.Method == carrier.Method && (existing.BodyDropped || bytes.Equal(existing.Body, carrier.Body)) &&
		maps.Equal(existing.Headers, carrier.Headers) && (p.RelativeDue || existing.DueAt.Equal(carrier.DueAt))
	msg, err := m.view(ctx, existing)
	if err != nil {
		return nil, false, err
	}
	if !same {
		return msg, false, scheduler.ErrDuplicate
	}
	return msg, false, nil
}

// Get returns a message with the state of its deliveries and compensations.
func (m *Messages) Get(ctx context.Context, app, id string) (*Message, error) {
	carrier, err := m.carrier(ctx, app, id)
	if err != nil {
		return nil, err
	}
	return m.view(ctx, carrier)
}

func (m *Messages) carrier(ctx context.Context, app, id string) (*scheduler.Event, error) {
	var ev *scheduler.Event
	var err error
	if m.events != nil {
		ev, err = m.events.Get(ctx, app, CarrierID(id))
	} else {
		ev, err = m.store.Get(ctx, app, CarrierID(id))
	}
	if err != nil {
		return nil, err
	}
	if ev.Kind != scheduler.KindMessage {
		return nil, scheduler.ErrNotFound
	}
	return ev, nil
}

// Cancel cancels a message before its fan-out: scheduler.ErrNotFound, or
// a *scheduler.StatusError (409) once it fanned out or was cancelled.
func (m *Messages) Cancel(ctx context.Context, app, id string) (*Message, error) {
	carrier, err := m.carrier(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if len(carrier.Plan) > 0 {
		return nil, &scheduler.StatusError{Status: scheduler.Status(MessageDispatched), Op: "cancelled"}
	}
	ev, err := m.store.Cancel(ctx, app, CarrierID(id), time.Time{})
	if err != nil {
		var se *scheduler.StatusError
		if errors.As(err, &se) {
			return nil, &scheduler.StatusError{Status: scheduler.Status(m.statusOf(ctx, carrier)), Op: "cancelled"}
		}
		return nil, err
	}
	return m.view(ctx, ev)
}

func (m *Messages) statusOf(ctx context.Context, carrier *scheduler.Event) MessageStatus {
	msg, err := m.view(ctx, carrier)
	if err != nil {
		return MessagePending
	}
	return msg.Status
}

// MessageQuery selects messages: of App (every application when empty), of
// Topic and in Status when set, newest first, after the cursor.
type MessageQuery struct {
	App, Topic string
	Status     MessageStatus
	Limit      int
	Cursor     string
}

// MaxListScan bounds how many messages one listing reads to fill a page
// when the topic or status filter skips many.
const MaxListScan = 5000

// List lists messages. The cursor is "<app>/<id>" of the last message of the
// previous page (opaque to clients).
func (m *Messages) List(ctx context.Context, q MessageQuery) ([]*Message, string, error) {
	apps := []string{q.App}
	if q.App == "" {
		all, err := m.store.MessageApps(ctx)
		if err != nil {
			return nil, "", err
		}
		slices.Sort(all)
		apps = all
	}
	curApp, curID, _ := strings.Cut(q.Cursor, "/")
	var out []*Message
	scanned := 0
	for _, app := range apps {
		if curApp != "" && app < curApp {
			continue
		}
		after := ""
		if app == curApp {
			after = curID
		}
		for {
			ids, err := m.store.MessageIDs(ctx, app, after, 100)
			if err != nil {
				return nil, "", err
			}
			if len(ids) == 0 {
				break
			}
			var gone []string
			for _, id := range ids {
				after = id
				scanned++
				msg, err := m.Get(ctx, app, id)
				if errors.Is(err, scheduler.ErrNotFound) {
					gone = append(gone, id)
					continue
				}
				if err != nil {
					return nil, "", err
				}
				if (q.Topic == "" || msg.Topic == q.Topic) && (q.Status == "" || msg.Status == q.Status) {
					out = append(out, msg)
					if len(out) == q.Limit {
						_ = m.store.ForgetMessages(ctx, app, gone)
						return out, app + "/" + id, nil
					}
				}
				if scanned >= MaxListScan {
					_ = m.store.ForgetMessages(ctx, app, gone)
					return out, app + "/" + id, nil
				}
			}
			_ = m.store.ForgetMessages(ctx, app, gone)
		}
	}
	return out, "", nil
}

// view builds the message of a carrier: its plan and the live (else
// archived) state of every delivery and compensation.
func (m *Messages) view(ctx context.Context, carrier *scheduler.Event) (*Message, error) {
	plan, err := DecodePlan(carrier.Plan)
	if err != nil {
		return nil, err
	}
	id := strings.TrimPrefix(carrier.ID, CarrierPrefix)
	msg := &Message{
		App: carrier.App, ID: id, Topic: carrier.Topic, Mode: cmp.Or(carrier.Mode, ModeIndependent),
		Method: carrier.Method, Headers: carrier.Headers, Body: carrier.Body,
		DueAt: carrier.DueAt, CreatedAt: carrier.CreatedAt, UpdatedAt: carrier.UpdatedAt,
		Deliveries: []Delivery{}, Rollbacks: []Delivery{}, FilterErrors: []FilterError{},
	}
	if plan != nil {
		msg.FilterErrors = append(msg.FilterErrors, plan.FilterErrors...)
		deliveries, rollbacks, err := States(ctx, m.store, m.events, carrier, plan)
		if err != nil {
			return nil, err
		}
		msg.Deliveries, msg.Rollbacks = deliveries, rollbacks
		msg.Status = DeriveStatus(carrier, plan, deliveries, rollbacks)
	} else {
		msg.Status = DeriveStatus(carrier, nil, nil, nil)
	}
	return msg, nil
}

// LiveReader is what States needs to read many events at once.
type LiveReader interface {
	GetMany(ctx context.Context, ids []scheduler.Ident) ([]*scheduler.Event, error)
}

// States reads the state of a plan's deliveries (in plan order) and, for
// an all_or_nothing message, of the compensations that exist. One round
// trip for the live ones; archived ones are read one by one through events
// (nil: taken as not found).
func States(ctx context.Context, live LiveReader, events EventReader, carrier *scheduler.Event, plan *Plan) (deliveries, rollbacks []Delivery, err error) {
	app, id := carrier.App, strings.TrimPrefix(carrier.ID, CarrierPrefix)
	n := len(plan.Deliveries)
	ids := make([]scheduler.Ident, 0, 2*n)
	for _, p := range plan.Deliveries {
		ids = append(ids, scheduler.Ident{App: app, ID: DeliveryID(id, p.Subscription)})
	}
	if carrier.Mode == ModeAllOrNothing {
		for _, p := range plan.Deliveries {
			ids = append(ids, scheduler.Ident{App: app, ID: CompensationID(id, p.Subscription)})
		}
	}
	evs, err := live.GetMany(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	deliveries = make([]Delivery, n)
	rollbacks = []Delivery{}
	for i, p := range plan.Deliveries {
		d := Delivery{Subscription: p.Subscription, EventID: ids[i].ID}
		ev := evs[i]
		if ev == nil && events != nil {
			ev, err = events.Get(ctx, app, ids[i].ID)
			if err != nil && !errors.Is(err, scheduler.ErrNotFound) && !errors.Is(err, scheduler.ErrNoArchive) {
				return nil, nil, err
			}
		}
		if ev != nil {
			d.Status, d.Attempts = ev.Status, ev.Attempts
		}
		deliveries[i] = d
		if len(evs) == n {
			continue
		}
		rb := evs[n+i]
		if rb == nil && p.RollbackURL != "" && d.Status == scheduler.StatusCompleted && events != nil {
			rb, err = events.Get(ctx, app, ids[n+i].ID)
			if err != nil && !errors.Is(err, scheduler.ErrNotFound) && !errors.Is(err, scheduler.ErrNoArchive) {
				return nil, nil, err
			}
		}
		if rb != nil {
			rollbacks = append(rollbacks, Delivery{Subscription: p.Subscription, EventID: ids[n+i].ID, Status: rb.Status, Attempts: rb.Attempts})
		}
	}
	return deliveries, rollbacks, nil
}
