package topic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
)

// Subscription says where the messages of one topic of an application go
// (API.md §7). Its deliveries are ordinary events built from it at fan-out.
type Subscription struct {
	App   string
	ID    string
	Topic string
	// URL, Method and Headers are the delivery's request; the message's
	// headers are overlaid by these.
	URL     string
	Method  string
	Headers map[string]string
	// Filter is the source of a filter expression; "" matches every message.
	Filter string
	// RollbackURL, when set, gets a compensation for a COMPLETED delivery of
	// an all_or_nothing message that failed elsewhere.
	RollbackURL string
	// Active subscriptions get deliveries; inactive ones are kept but skipped.
	Active bool
	// The event policy of each delivery (0: the worker's defaults).
	MaxAttempts int
	Timeout     time.Duration
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	FlowKey     string
	// CallbackURL and FailureCallbackURL are set on each delivery.
	CallbackURL        string
	FailureCallbackURL string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// sameContent reports whether two subscriptions say the same thing,
// timestamps aside: an identical create is a replay, not a conflict.
func sameContent(a, b *Subscription) bool {
	return a.App == b.App && a.ID == b.ID && a.Topic == b.Topic && a.URL == b.URL && a.Method == b.Method &&
		maps.Equal(a.Headers, b.Headers) && a.Filter == b.Filter && a.RollbackURL == b.RollbackURL &&
		a.Active == b.Active && a.MaxAttempts == b.MaxAttempts && a.Timeout == b.Timeout &&
		a.MinBackoff == b.MinBackoff && a.MaxBackoff == b.MaxBackoff && a.FlowKey == b.FlowKey &&
		a.CallbackURL == b.CallbackURL && a.FailureCallbackURL == b.FailureCallbackURL
}

// Limits of subscriptions and their listing.
const (
	// MaxSubscriptionsPerApp bounds an application's subscriptions: fan-out
	// and listing read all of an application's subscriptions at once.
	MaxSubscriptionsPerApp = 10000
	// DefaultListLimit is the page size of List when none is given.
	DefaultListLimit = 50
	// MaxListLimit bounds the page size of List.
	MaxListLimit = 500
)

// Sentinel errors of subscriptions. Each wraps the scheduler's sentinel of
// the same meaning, so code that branches on those still works.
var (
	// ErrSubscriptionNotFound: no subscription with that app and id.
	ErrSubscriptionNotFound = fmt.Errorf("subscription not found: %w", scheduler.ErrNotFound)
	// ErrSubscriptionExists: a create found the id taken by a different subscription.
	ErrSubscriptionExists = fmt.Errorf("a subscription with this app and id exists with different content: %w", scheduler.ErrDuplicate)
	// ErrTooManySubscriptions: the application has MaxSubscriptionsPerApp already.
	ErrTooManySubscriptions = fmt.Errorf("an application has at most %d subscriptions: %w", MaxSubscriptionsPerApp, scheduler.ErrConflict)
)

// SubscriptionStore keeps subscriptions (store/redisstore implements it).
// Every put and delete bumps the application's subscription revision.
type SubscriptionStore interface {
	// PutSubscription stores s. With replace false it creates only: when the
	// id is taken it stores nothing and returns the existing subscription.
	// With replace true it returns the subscription it replaced, if any,
	// and keeps that one's CreatedAt, setting it on s.
	// ErrTooManySubscriptions when a new one would exceed the cap.
	PutSubscription(ctx context.Context, s *Subscription, replace bool) (existing *Subscription, err error)
	// GetSubscription returns one subscription; an error that is
	// scheduler.ErrNotFound when there is none.
	GetSubscription(ctx context.Context, app, id string) (*Subscription, error)
	// DeleteSubscription removes one; scheduler.ErrNotFound when there is none.
	DeleteSubscription(ctx context.Context, app, id string) error
	// ListSubscriptions pages through subscriptions sorted by (app, topic,
	// id); app "" lists every application's, topic "" every topic's. next
	// is "" on the last page. A cursor it cannot read is a
	// *scheduler.ValidationError for "cursor".
	ListSubscriptions(ctx context.Context, app, topic, cursor string, limit int) (subs []*Subscription, next string, err error)
	// AppSubscriptions returns every subscription of an application and the
	// application's subscription revision, read together.
	AppSubscriptions(ctx context.Context, app string) (subs []*Subscription, rev int64, err error)
	// SubscriptionRevision returns the application's subscription revision
	// (0 before its first write).
	SubscriptionRevision(ctx context.Context, app string) (int64, error)
}

// SubscriptionsConfig configures Subscriptions.
type SubscriptionsConfig struct {
	// Clock stamps created_at and updated_at. Defaults to scheduler.SystemClock.
	Clock scheduler.Clock
	// CompileFilter checks a filter's source; its error's text is shown to
	// the client as the reason (field "filter"). Defaults to compiling it
	// with CompileFilter (filter.go).
	CompileFilter func(src string) error
	// Guard, when set, refuses at create time URLs whose host may not be
	// delivered to, as for events (scheduler.Config.Guard). Defaults to none.
	Guard scheduler.URLChecker
	// Limits bound the URLs and headers, as for events. See scheduler.Limits
	// for the defaults.
	Limits scheduler.Limits
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c SubscriptionsConfig) WithDefaults() SubscriptionsConfig {
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.CompileFilter == nil {
		c.CompileFilter = func(src string) error { _, err := CompileFilter(src); return err }
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c SubscriptionsConfig) Validate() error {
	var errs []error
	if c.CompileFilter == nil {
		errs = append(errs, errors.New("topic: SubscriptionsConfig.CompileFilter is required"))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("topic: SubscriptionsConfig.Limits: %w", err))
	}
	return errors.Join(errs...)
}

// Subscriptions creates, changes, reads and lists subscriptions, and serves
// fan-out the active subscriptions of a topic. It is safe for concurrent use.
type Subscriptions struct {
	store SubscriptionStore
	cfg   SubscriptionsConfig

	mu    sync.Mutex
	cache map[string]*appSubs // by application
}

// appSubs is one application's active subscriptions by topic, as of a revision.
type appSubs struct {
	rev     int64
	byTopic map[string][]*Subscription
}

// NewSubscriptions returns Subscriptions over a store. It panics on a
// config Validate refuses (a programming error: wiring is fixed).
func NewSubscriptions(store SubscriptionStore, cfg SubscriptionsConfig) *Subscriptions {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Subscriptions{store: store, cfg: cfg, cache: map[string]*appSubs{}}
}

// validName reports whether s is 1 to max bytes of [A-Za-z0-9._-] and the
// bytes of extra.
func validName(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' ||
			strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// ValidTopic reports whether s is a valid topic name: [A-Za-z0-9._-]{1,128}.
func ValidTopic(s string) bool { return validName(s, 128, "") }

// ValidSubscriptionID reports whether s is a valid subscription id: [A-Za-z0-9._-]{1,64}.
func ValidSubscriptionID(s string) bool { return validName(s, 64, "") }

// Validate checks a subscription against API.md §7 with the rules of an
// event's URL, method, headers and policy (scheduler.Limits.Check), and
// normalises the method. It does not fill in the id. Errors are
// *scheduler.ValidationError naming the field.
func (s *Subscriptions) Validate(sub *Subscription) error {
	if !scheduler.ValidApp(sub.App) {
		return scheduler.Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	if !ValidSubscriptionID(sub.ID) {
		return scheduler.Invalid("id", "subscription id must match [A-Za-z0-9._-]{1,64}")
	}
	if !ValidTopic(sub.Topic) {
		return scheduler.Invalid("topic", "topic must match [A-Za-z0-9._-]{1,128}")
	}
	// A delivery is an event: the event's rules apply as they are, and name
	// the same fields (url, method, headers, max_attempts, timeout, ...).
	ev := &scheduler.Event{App: sub.App, ID: sub.ID, URL: sub.URL, Method: sub.Method, Headers: sub.Headers,
		DueAt: s.cfg.Clock.Now(), MaxAttempts: sub.MaxAttempts, Timeout: sub.Timeout,
		MinBackoff: sub.MinBackoff, MaxBackoff: sub.MaxBackoff}
	if err := s.cfg.Limits.Check(ev); err != nil {
		return err
	}
	sub.Method = ev.Method
	if err := s.checkURL("url", sub.URL); err != nil {
		return err
	}
	for _, u := range []struct{ field, v string }{
		{"rollback_url", sub.RollbackURL}, {"callback_url", sub.CallbackURL}, {"failure_callback_url", sub.FailureCallbackURL},
	} {
		if u.v != "" {
			if err := s.checkURL(u.field, u.v); err != nil {
				return err
			}
		}
	}
	if sub.FlowKey != "" && !scheduler.ValidFlowKey(sub.FlowKey) {
		return scheduler.Invalid("flow_key", "flow_key must match [A-Za-z0-9._:-]{1,128}")
	}
	if err := s.cfg.CompileFilter(sub.Filter); err != nil {
		return scheduler.Invalid("filter", "%s", err.Error())
	}
	return nil
}

// checkURL checks an absolute URL of a subscription by the event's url
// rules and the create-time guard, reporting errors under field.
func (s *Subscriptions) checkURL(field, raw string) error {
	return s.cfg.Limits.CheckDestination(s.cfg.Guard, field, raw)
}

// prepare fills in the id, validates and stamps a subscription to store.
func (s *Subscriptions) prepare(sub *Subscription) error {
	now := s.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	if sub.ID == "" {
		sub.ID = scheduler.NewID(now) // 32 hex digits: within [A-Za-z0-9._-]{1,64}
	}
	if err := s.Validate(sub); err != nil {
		return err
	}
	if len(sub.Headers) == 0 {
		sub.Headers = nil
	}
	sub.CreatedAt, sub.UpdatedAt = now, now
	return nil
}

// Create stores a new subscription. It returns the stored subscription and
// whether it was created: an identical create (timestamps aside) returns
// the existing one with created false; a different subscription under the
// same id is ErrSubscriptionExists.
func (s *Subscriptions) Create(ctx context.Context, sub *Subscription) (*Subscription, bool, error) {
	if err := s.prepare(sub); err != nil {
		return nil, false, err
	}
	existing, err := s.store.PutSubscription(ctx, sub, false)
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		return sub, true, nil
	}
	if sameContent(existing, sub) {
		return existing, false, nil
	}
	return existing, false, ErrSubscriptionExists
}

// Put creates or replaces a subscription; a replaced one keeps its
// created_at (the store keeps it, in the same step as the write).
func (s *Subscriptions) Put(ctx context.Context, sub *Subscription) (*Subscription, error) {
	if err := s.prepare(sub); err != nil {
		return nil, err
	}
	if _, err := s.store.PutSubscription(ctx, sub, true); err != nil {
		return nil, err
	}
	return sub, nil
}

// Get returns one subscription, or ErrSubscriptionNotFound.
func (s *Subscriptions) Get(ctx context.Context, app, id string) (*Subscription, error) {
	if !scheduler.ValidApp(app) || !ValidSubscriptionID(id) {
		return nil, ErrSubscriptionNotFound
	}
	return s.store.GetSubscription(ctx, app, id)
}

// Delete removes a subscription and returns it as it was, or
// ErrSubscriptionNotFound. Messages fanned out before keep their deliveries.
func (s *Subscriptions) Delete(ctx context.Context, app, id string) (*Subscription, error) {
	sub, err := s.Get(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteSubscription(ctx, app, id); err != nil {
		return nil, err
	}
	return sub, nil
}

// ListQuery selects a page of subscriptions.
type ListQuery struct {
	// App lists one application's subscriptions; "" lists every application's.
	App string
	// Topic lists one topic's subscriptions; "" every topic's.
	Topic string
	// Cursor continues a listing where the previous page ended.
	Cursor string
	// Limit is the page size, 1 to MaxListLimit. Defaults to DefaultListLimit.
	Limit int
}

// List returns a page of subscriptions sorted by (app, topic, id) and the
// cursor of the next page ("" on the last).
func (s *Subscriptions) List(ctx context.Context, q ListQuery) ([]*Subscription, string, error) {
	if q.App != "" && !scheduler.ValidApp(q.App) {
		return nil, "", scheduler.Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	if q.Topic != "" && !ValidTopic(q.Topic) {
		return nil, "", scheduler.Invalid("topic", "topic must match [A-Za-z0-9._-]{1,128}")
	}
	limit := defaults.Positive(q.Limit, DefaultListLimit)
	if limit > MaxListLimit {
		return nil, "", scheduler.Invalid("limit", "limit must be a number from 1 to %d", MaxListLimit)
	}
	return s.store.ListSubscriptions(ctx, q.App, q.Topic, q.Cursor, limit)
}

// ForTopic returns the active subscriptions of a topic, sorted by id, as
// fan-out takes them. It reads the application's subscription revision and
// serves from a per-application cache while the revision is unchanged,
// reloading every subscription of the application when it moved. The
// returned subscriptions are shared: callers must not change them.
func (s *Subscriptions) ForTopic(ctx context.Context, app, topic string) ([]*Subscription, error) {
	rev, err := s.store.SubscriptionRevision(ctx, app)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.cache[app]
	s.mu.Unlock()
	if c == nil || c.rev != rev {
		subs, loaded, err := s.store.AppSubscriptions(ctx, app)
		if err != nil {
			return nil, err
		}
		c = &appSubs{rev: loaded, byTopic: map[string][]*Subscription{}}
		for _, sub := range subs {
			if sub.Active {
				c.byTopic[sub.Topic] = append(c.byTopic[sub.Topic], sub)
			}
		}
		for _, list := range c.byTopic {
			slices.SortFunc(list, func(a, b *Subscription) int { return strings.Compare(a.ID, b.ID) })
		}
		s.mu.Lock()
		// Concurrent reloads: the newest revision wins.
		if cur := s.cache[app]; cur == nil || cur.rev <= loaded {
			s.cache[app] = c
		}
		s.mu.Unlock()
	}
	return slices.Clone(c.byTopic[topic]), nil
}
