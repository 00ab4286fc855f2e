package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
	// Archive, when set, answers for events Redis no longer has, and runs searches.
	Archive Archive
	// Guard, when set (CASSATA_BLOCK_PRIVATE=on), refuses at create time a
	// URL whose host is a blocked literal address or an internal name. The
	// deliverer's own guard still checks every resolved address at dial
	// time. Defaults to none. (delivery.AddressGuard is one.)
	Guard URLChecker
}

// URLChecker judges a destination URL at create time.
type URLChecker interface {
	// CheckURL returns a *ValidationError for "url" when the URL's host may
	// not be delivered to.
	CheckURL(raw string) error
}

// Scheduler is the domain's front door: create, get, cancel and retry events.
// The API and the admin UI call it; it never exposes Redis or SQL.
type Scheduler struct {
	store   Store
	archive Archive
	limits  Limits
	clock   Clock
	guard   URLChecker
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c Config) Validate() error {
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("scheduler: Limits: %w", err)
	}
	return nil
}

// New returns a Scheduler over a store. Limits that Validate refuses fall
// back to their defaults; callers validate the config first.
func New(store Store, cfg Config) *Scheduler {
	cfg = cfg.WithDefaults()
	if cfg.Limits.Validate() != nil {
		cfg.Limits = Limits{}.WithDefaults()
	}
	return &Scheduler{store: store, archive: cfg.Archive, limits: cfg.Limits.WithDefaults(), clock: cfg.Clock, guard: cfg.Guard}
}

// Limits returns the limits in force.
func (s *Scheduler) Limits() Limits { return s.limits }

// Validate checks a new event as Create does, without storing it: the
// limits, then the create-time SSRF check.
func (s *Scheduler) Validate(ev *Event) error {
	if err := s.limits.Check(ev); err != nil {
		return err
	}
	if s.guard == nil {
		return nil
	}
	for _, d := range []struct{ field, url string }{{"url", ev.URL}, {"callback_url", ev.CallbackURL}, {"failure_callback_url", ev.FailureCallbackURL}} {
		if d.url == "" {
			continue
		}
		// Limits.Check has checked the URLs themselves.
		if err := asField(s.guard.CheckURL(d.url), d.field); err != nil {
			return err
		}
	}
	return nil
}

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
	if err := s.Validate(ev); err != nil {
		return nil, false, err
	}
	ev.Status = StatusPending
	ev.Attempts = 0
	ev.CreatedAt = now.UTC().Truncate(time.Millisecond)
	ev.UpdatedAt = ev.CreatedAt
	ev.DueAt = ev.DueAt.UTC().Truncate(time.Millisecond)
	if ev.TraceParent == "" {
		ev.TraceParent = TraceParentFrom(ctx)
	}
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
	tp := TraceParentFrom(ctx)
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
		if err := s.Validate(ev); err != nil {
			it.Err = err
			continue
		}
		ev.Status = StatusPending
		ev.Attempts = 0
		ev.CreatedAt = now.UTC().Truncate(time.Millisecond)
		ev.UpdatedAt = ev.CreatedAt
		ev.DueAt = ev.DueAt.UTC().Truncate(time.Millisecond)
		if ev.TraceParent == "" {
			ev.TraceParent = tp
		}
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
		old.CallbackURL != ev.CallbackURL || old.FailureCallbackURL != ev.FailureCallbackURL || old.FlowKey != ev.FlowKey ||
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

// Get returns an event by identity: live from Redis, else its latest run
// from the archive. The body is always shown: Redis drops a delivered
// event's body once the archive has it, and Get then takes it from there.
func (s *Scheduler) Get(ctx context.Context, app, id string) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	ev, err := s.store.Get(ctx, app, id)
	if errors.Is(err, ErrNotFound) && s.archive != nil {
		ev, err = s.archive.Get(ctx, app, id)
		return ev, archiveErr(err)
	}
	if err != nil {
		return nil, err
	}
	if ev.BodyDropped && s.archive != nil {
		run, err := s.archive.Get(ctx, app, id)
		if errors.Is(err, ErrNotFound) {
			// Not archived yet: a COMPLETED event stored without a body
			// (an empty one) reads as dropped until then. It is live.
			return ev, nil
		}
		if err != nil {
			return nil, archiveErr(err)
		}
		takeBody(ev, run)
	}
	return ev, nil
}

// Status returns an event's status: from Redis while it has the event
// (without reading the archive for its body), else from the archive.
func (s *Scheduler) Status(ctx context.Context, app, id string) (Status, error) {
	if !ValidApp(app) || !ValidID(id) {
		return "", ErrNotFound
	}
	ev, err := s.store.Get(ctx, app, id)
	if errors.Is(err, ErrNotFound) && s.archive != nil {
		ev, err = s.archive.Get(ctx, app, id)
		err = archiveErr(err)
	}
	if err != nil {
		return "", err
	}
	return ev.Status, nil
}

// takeBody gives a live event whose body Redis dropped the body of its
// archived run (the same run: same creation time).
func takeBody(live, archived *Event) {
	if archived != nil && !archived.BodyDropped && archived.CreatedAt.Equal(live.CreatedAt) {
		live.Body, live.BodyDropped = archived.Body, false
	}
}

// archiveErr marks archive failures other than "not found" and bad input
// as unavailability, so clients get a 503 and try again.
func archiveErr(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("archive: %w: %w", ErrUnavailable, err)
}

// Cancel cancels a PENDING event and returns it.
func (s *Scheduler) Cancel(ctx context.Context, app, id string) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	ev, err := s.store.Cancel(ctx, app, id, time.Time{})
	if errors.Is(err, ErrNotFound) && s.archive != nil {
		// Only finished runs leave Redis: say which status it finished in.
		ev, aerr := s.archive.Get(ctx, app, id)
		if aerr != nil {
			return nil, archiveErr(aerr)
		}
		return nil, &StatusError{Status: ev.Status, Op: "deleted"}
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// Retry puts a FAILED, SERVICE_UNAVAILABLE or CANCELLED event back to
// PENDING, due now, with its attempts reset; the history is kept. An event
// only the archive still has is brought back into Redis, continuing its run.
func (s *Scheduler) Retry(ctx context.Context, app, id string) (*Event, error) {
	retryable := []Status{StatusFailed, StatusServiceUnavailable, StatusCancelled}
	ev, err := s.requeue(ctx, app, id, retryable, true)
	if !errors.Is(err, ErrNotFound) || s.archive == nil {
		return ev, err
	}
	old, err := s.archive.Get(ctx, app, id)
	if err != nil {
		return nil, archiveErr(err)
	}
	if !old.Status.Retryable() {
		return nil, &StatusError{Status: old.Status, Op: "retried"}
	}
	if old.BodyDropped {
		return nil, &StatusError{Status: old.Status, Op: "retried (its body is no longer stored)"}
	}
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	revived := *old
	revived.Status, revived.Attempts, revived.DueAt, revived.UpdatedAt = StatusPending, 0, now, now
	revived.FinishedAt, revived.LastStatusCode, revived.LastError, revived.Worker = time.Time{}, 0, "", ""
	existing, err := s.store.Create(ctx, &revived, time.Time{})
	if err != nil {
		return nil, err
	}
	if existing != nil {
		// Recreated meanwhile (a concurrent retry or create): retry that one.
		return s.requeue(ctx, app, id, retryable, true)
	}
	// The create's outbox entry is dated by the run's creation, older than
	// the archived outcome, so the archive would go on showing the run
	// FAILED (and search by status miss it) until its next outcome. A
	// requeue entry, dated now, tells the archive the run is PENDING again
	// (due now, no attempts, not finished) and dates the Redis copy. When a
	// worker claimed it already, its own entries tell the archive instead.
	ev, err = s.store.Requeue(ctx, app, id, []Status{StatusPending}, true, time.Time{})
	var se *StatusError
	if errors.As(err, &se) {
		// A worker claimed the revived event between the create and the
		// requeue, so the requeue returned no event: read the one that is
		// there now (PROCESSING, or already finished).
		return s.store.Get(ctx, app, id)
	}
	return ev, err
}

// Search finds events in the archive (which the outbox keeps in step with
// Redis, so live events are found too) and shows each the way Get does: a
// run Redis still has is its live event, whole, with the body from the
// archive row when Redis dropped it; any other run is its archive row with
// its history. A row whose live status no longer matches the status filter
// is left out of the page; the cursor is unaffected.
func (s *Scheduler) Search(ctx context.Context, q SearchQuery) (SearchPage, error) {
	if s.archive == nil {
		return SearchPage{}, ErrNoArchive
	}
	if q.Limit == 0 {
		q.Limit = DefaultSearchLimit
	}
	if q.Limit < 0 || q.Limit > MaxSearchLimit {
		return SearchPage{}, Invalid("limit", "limit must be between 1 and %d", MaxSearchLimit)
	}
	for _, st := range append([]Status{q.Status}, q.Statuses...) {
		if st != "" && !st.Valid() {
			return SearchPage{}, Invalid("status", "unknown status %q", st)
		}
	}
	if q.App != "" && !ValidApp(q.App) {
		return SearchPage{}, Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	page, err := s.archive.Search(ctx, q)
	if err != nil || len(page.Events) == 0 {
		return page, archiveErr(err)
	}
	ids := make([]Ident, len(page.Events))
	for i, ev := range page.Events {
		ids[i] = Ident{ev.App, ev.ID}
	}
	live, err := s.store.GetMany(ctx, ids)
	if err != nil {
		// The archive's view is still an answer.
		return page, nil
	}
	out := page.Events[:0]
	for i, ev := range page.Events {
		if l := live[i]; l != nil && l.CreatedAt.Equal(ev.CreatedAt) {
			takeBody(l, ev)
			ev = l
		}
		if !q.matches(ev.Status) {
			continue
		}
		out = append(out, ev)
	}
	page.Events = out
	return page, nil
}

// RunNow makes a PENDING event due now.
func (s *Scheduler) RunNow(ctx context.Context, app, id string) (*Event, error) {
	return s.requeue(ctx, app, id, []Status{StatusPending}, false)
}
func (s *Scheduler) requeue(ctx context.Context, app, id string, allowed []Status, reset bool) (*Event, error) {
	if !ValidApp(app) || !ValidID(id) {
		return nil, ErrNotFound
	}
	return s.store.Requeue(ctx, app, id, allowed, reset, time.Time{})
}
