package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"time"
)

// Config configures a Scheduler.
type Config struct {
	// Limits bound what clients may schedule. See Limits for defaults.
	Limits Limits
	// Clock tells the time for due times given as a delay and for created
	// timestamps. Defaults to SystemClock.
	Clock Clock
}

// Scheduler is the domain's front door: create, get, cancel and retry events.
// The API and the admin UI call it; it never exposes Redis or SQL.
type Scheduler struct {
	store  Store
	limits Limits
	clock  Clock
}

// New returns a Scheduler over a store.
func New(store Store, cfg Config) *Scheduler {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	return &Scheduler{store: store, limits: cfg.Limits.WithDefaults(), clock: cfg.Clock}
}

// Limits returns the limits in force.
func (s *Scheduler) Limits() Limits { return s.limits }

// Now returns the scheduler's clock.
func (s *Scheduler) Now() time.Time { return s.clock.Now() }

// NewID returns a fresh event id: 32 hex digits, time-ordered (UUIDv7 layout)
// so generated ids sort by creation.
func NewID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	t := uint64(now.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(t >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// CreateOptions qualify a create.
type CreateOptions struct {
	// RelativeDue says the due time was given relative to now (a delay), so
	// a replay is identical when everything but the due time matches.
	RelativeDue bool
}

// Create validates and schedules a new event. It returns the stored event
// and whether it was created (false: an identical create was replayed).
// A different event under the same identity is ErrDuplicate.
func (s *Scheduler) Create(ctx context.Context, ev *Event, opt CreateOptions) (*Event, bool, error) {
	now := s.clock.Now()
	if ev.ID == "" {
		ev.ID = NewID(now)
	}
	if err := s.limits.Validate(ev); err != nil {
		return nil, false, err
	}
	ev.Status = StatusPending
	ev.Attempts = 0
	ev.CreatedAt = now.UTC().Truncate(time.Millisecond)
	ev.UpdatedAt = ev.CreatedAt
	ev.DueAt = ev.DueAt.UTC().Truncate(time.Millisecond)
	existing, err := s.store.Create(ctx, ev, time.Time{})
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		return ev, true, nil
	}
	if sameContent(existing, ev, opt.RelativeDue) {
		return existing, false, nil
	}
	return existing, false, ErrDuplicate
}

// BatchItem is one create of CreateMany: an event or the error that came
// before it (e.g. from decoding).
type BatchItem struct {
	Event   *Event
	Options CreateOptions
	Err     error
	// Created is set by CreateMany.
	Created bool
}

// CreateMany creates many events with one round trip to the store. Each
// item's Err and Created say what happened to it; the returned error is
// only for failures that concern all of them (storage unavailable).
func (s *Scheduler) CreateMany(ctx context.Context, items []BatchItem) error {
	now := s.clock.Now()
	valid := make([]*Event, 0, len(items))
	idx := make([]int, 0, len(items))
	for i := range items {
		it := &items[i]
		if it.Err != nil {
			continue
		}
		ev := it.Event
		if ev.ID == "" {
			ev.ID = NewID(now)
		}
		if err := s.limits.Validate(ev); err != nil {
			it.Err = err
			continue
		}
		ev.Status = StatusPending
		ev.Attempts = 0
		ev.CreatedAt = now.UTC().Truncate(time.Millisecond)
		ev.UpdatedAt = ev.CreatedAt
		ev.DueAt = ev.DueAt.UTC().Truncate(time.Millisecond)
		valid = append(valid, ev)
		idx = append(idx, i)
	}
	if len(valid) == 0 {
		return nil
	}
	res, err := s.store.CreateMany(ctx, valid, time.Time{})
	if err != nil {
		return err
	}
	for j, r := range res {
		it := &items[idx[j]]
		switch {
		case r.Err != nil:
			it.Err = r.Err
		case r.Existing == nil:
			it.Created = true
		case sameContent(r.Existing, it.Event, it.Options.RelativeDue):
			it.Event = r.Existing
		default:
			it.Event = r.Existing
			it.Err = ErrDuplicate
		}
	}
	return nil
}

// sameContent reports whether a create replays the stored event.
func sameContent(old, ev *Event, relativeDue bool) bool {
	if old.URL != ev.URL || old.Method != ev.Method || old.MaxAttempts != ev.MaxAttempts ||
		old.Timeout != ev.Timeout || old.MinBackoff != ev.MinBackoff || old.MaxBackoff != ev.MaxBackoff {
		return false
	}
	if !relativeDue && old.Attempts == 0 && !old.DueAt.Equal(ev.DueAt) {
		return false
	}
	if !old.BodyDropped && !bytes.Equal(old.Body, ev.Body) {
		return false
	}
	return maps.Equal(old.Headers, ev.Headers) || len(old.Headers) == 0 && len(ev.Headers) == 0
}

// Get returns an event by identity.
func (s *Scheduler) Get(ctx context.Context, app, id string) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	return s.store.Get(ctx, app, id)
}

// Cancel cancels a PENDING event and returns it.
func (s *Scheduler) Cancel(ctx context.Context, app, id string) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	if err := s.store.Cancel(ctx, app, id, time.Time{}); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, app, id)
}

// Retry puts a FAILED, SERVICE_UNAVAILABLE or CANCELLED event back to
// PENDING, due now, with its attempts reset; the history is kept.
func (s *Scheduler) Retry(ctx context.Context, app, id string) (*Event, error) {
	return s.requeue(ctx, app, id, []Status{StatusFailed, StatusServiceUnavailable, StatusCancelled}, true)
}

// RunNow makes a PENDING event due now.
func (s *Scheduler) RunNow(ctx context.Context, app, id string) (*Event, error) {
	return s.requeue(ctx, app, id, []Status{StatusPending}, false)
}

func (s *Scheduler) requeue(ctx context.Context, app, id string, allowed []Status, reset bool) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	if err := s.store.Requeue(ctx, app, id, allowed, reset, time.Time{}); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, app, id)
}
