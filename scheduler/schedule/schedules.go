package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
)

// Store keeps schedules (store/redisstore implements it). Writes are
// compare-and-set on the revision.
type Store interface {
	// ReadSchedule returns a schedule, or ErrScheduleNotFound.
	ReadSchedule(ctx context.Context, app, id string) (*State, error)
	// WriteSchedule stores st if the stored revision is expect (0: only if
	// there is none) and returns the new revision; ErrRevChanged when it is
	// another, ErrScheduleNotFound when expect > 0 and there is none.
	WriteSchedule(ctx context.Context, st *State, expect int64) (int64, error)
	// DeleteSchedule removes a schedule at revision expect (same errors).
	DeleteSchedule(ctx context.Context, app, id string, expect int64) error
	// ReadSchedules reads many schedules in one round trip; each is its
	// state or its error (ErrScheduleNotFound).
	ReadSchedules(ctx context.Context, ids []scheduler.Ident) ([]*State, []error)
	// WriteSchedules makes many WriteSchedule calls in one round trip.
	WriteSchedules(ctx context.Context, sts []*State, expects []int64) ([]int64, []error)
	// ListSchedules pages through schedules sorted by (app, id); app ""
	// lists every application's. next is "" on the last page. A cursor it
	// cannot read is a *scheduler.ValidationError for "cursor".
	ListSchedules(ctx context.Context, app, cursor string, limit int) (page []*State, next string, err error)
}

// Occurrences is what schedules need of the live events.
type Occurrences interface {
	// CreateMany creates events; one whose identity exists is left alone
	// and returned as Existing.
	CreateMany(ctx context.Context, evs []*scheduler.Event, now time.Time) ([]scheduler.CreateResult, error)
	// ReplacePending creates an event, replacing a PENDING or CANCELLED
	// one of the same identity; one claimed or run is left alone and
	// returned.
	ReplacePending(ctx context.Context, ev *scheduler.Event, now time.Time) (*scheduler.Event, error)
	// Cancel cancels a PENDING event (a *scheduler.StatusError otherwise).
	Cancel(ctx context.Context, app, id string, now time.Time) (*scheduler.Event, error)
}

// StatusReader reads an event's status, live or archived
// (scheduler.Scheduler.Status).
type StatusReader interface {
	Status(ctx context.Context, app, id string) (scheduler.Status, error)
}

// Config configures Schedules.
type Config struct {
	// Clock is the time schedules are computed from. Defaults to scheduler.SystemClock.
	Clock scheduler.Clock
	// Guard, when set, refuses at write time URLs whose host may not be
	// delivered to, as for events. Defaults to none.
	Guard scheduler.URLChecker
	// Limits bound the URLs, headers and body, as for events.
	Limits scheduler.Limits
	// Events reads the statuses of occurrences for last_runs; may be nil
	// (runs then show no status).
	Events StatusReader
	// Log receives warnings. Defaults to slog.Default().
	Log *slog.Logger
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the invalid fields of a config, after WithDefaults.
func (c Config) Validate() error {
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("schedule: Config.Limits: %w", err)
	}
	return nil
}

// Schedules creates, changes, reads and lists schedules, and keeps each
// one's chain of occurrences: exactly one pending occurrence event while
// it is active. It is safe for concurrent use, in any number of processes.
type Schedules struct {
	store Store
	occ   Occurrences
	cfg   Config
}

// New returns Schedules over a store. It panics on a config Validate
// refuses (a programming error: wiring is fixed).
func New(store Store, occ Occurrences, cfg Config) *Schedules {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Schedules{store: store, occ: occ, cfg: cfg}
}

// casTries bounds the compare-and-set retries of one change: each retry
// follows a concurrent write, which only an edit storm repeats.
const casTries = 8

func (s *Schedules) now() time.Time { return s.cfg.Clock.Now().UTC().Truncate(time.Millisecond) }

// Validate checks a schedule against API.md §8, with an event's rules for
// the template. Errors are *scheduler.ValidationError naming the field.
func (s *Schedules) Validate(sc *Schedule) error {
	if !scheduler.ValidApp(sc.App) {
		return scheduler.Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	if !ValidID(sc.ID) {
		return scheduler.Invalid("id", "schedule id must match [A-Za-z0-9._-]{1,64}")
	}
	if _, err := sc.Spec(); err != nil {
		return err
	}
	if !sc.StartAt.IsZero() && !sc.EndAt.IsZero() && !sc.EndAt.After(sc.StartAt) {
		return scheduler.Invalid("end_at", "end_at must be after start_at")
	}
	ev := sc.Event(s.now(), s.now(), false)
	if err := s.cfg.Limits.Check(ev); err != nil {
		return err
	}
	sc.Method = ev.Method
	if err := s.cfg.Limits.CheckDestination(s.cfg.Guard, "url", sc.URL); err != nil {
		return err
	}
	for _, u := range []struct{ field, v string }{
		{"callback_url", sc.CallbackURL}, {"failure_callback_url", sc.FailureCallbackURL},
	} {
		if u.v != "" {
			if err := s.cfg.Limits.CheckDestination(s.cfg.Guard, u.field, u.v); err != nil {
				return err
			}
		}
	}
	if sc.FlowKey != "" && !scheduler.ValidFlowKey(sc.FlowKey) {
		return scheduler.Invalid("flow_key", "flow_key must match [A-Za-z0-9._:-]{1,128}")
	}
	return nil
}

// prepare fills in the id, validates and stamps a schedule to store.
func (s *Schedules) prepare(sc *Schedule, now time.Time) error {
	if sc.ID == "" {
		sc.ID = scheduler.NewID(now)
	}
	if sc.Timezone == "UTC" {
		sc.Timezone = ""
	}
	if len(sc.Headers) == 0 {
		sc.Headers = nil
	}
	sc.CreatedAt, sc.UpdatedAt = now, now
	for _, t := range []*time.Time{&sc.StartAt, &sc.EndAt} {
		if !t.IsZero() {
			*t = t.UTC().Truncate(time.Millisecond)
		}
	}
	return s.Validate(sc)
}

// next is the schedule's first occurrence after now, or zero while
// paused or when there is none left.
func next(sc *Schedule, after time.Time) time.Time {
	if sc.Paused {
		return time.Time{}
	}
	spec, err := sc.Spec()
	if err != nil {
		return time.Time{}
	}
	return spec.Next(after)
}

// Create stores a new schedule and creates its first occurrence. It
// returns the stored schedule and whether it was created: an identical
// create (timestamps aside) returns the existing one with created false; a
// different schedule under the same id is ErrScheduleExists.
func (s *Schedules) Create(ctx context.Context, sc *Schedule) (*State, bool, error) {
	now := s.now()
	if err := s.prepare(sc, now); err != nil {
		return nil, false, err
	}
	st := &State{Schedule: sc, Next: next(sc, now)}
	rev, err := s.store.WriteSchedule(ctx, st, 0)
	if errors.Is(err, ErrRevChanged) {
		existing, rerr := s.store.ReadSchedule(ctx, sc.App, sc.ID)
		if rerr != nil {
			return nil, false, rerr
		}
		if !sameContent(existing.Schedule, sc) {
			return existing, false, ErrScheduleExists
		}
		// A replay: make sure its head exists (the first create may have
		// stopped before making it).
		return existing, false, s.ensureHead(ctx, existing, now)
	}
	if err != nil {
		return nil, false, err
	}
	st.Rev = rev
	return st, true, s.ensureHead(ctx, st, now)
}

// Put creates or replaces a schedule: the next occurrence follows the new
// definition (a pending occurrence of the old one is cancelled, or
// rewritten when the time stays). A replaced schedule keeps its
// created_at and its runs.
func (s *Schedules) Put(ctx context.Context, sc *Schedule) (*State, error) {
	for try := 0; ; try++ {
		now := s.now()
		if err := s.prepare(sc, now); err != nil {
			return nil, err
		}
		old, err := s.store.ReadSchedule(ctx, sc.App, sc.ID)
		if errors.Is(err, scheduler.ErrNotFound) {
			st, _, err := s.Create(ctx, sc)
			if errors.Is(err, ErrScheduleExists) && try < casTries {
				continue // created meanwhile: replace it
			}
			return st, err
		}
		if err != nil {
			return nil, err
		}
		sc.CreatedAt = old.CreatedAt
		st := &State{Schedule: sc, Next: next(sc, now), Runs: old.Runs}
		rev, err := s.store.WriteSchedule(ctx, st, old.Rev)
		if errors.Is(err, ErrRevChanged) || errors.Is(err, scheduler.ErrNotFound) {
			if try < casTries {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		st.Rev = rev
		if err := s.moveHead(ctx, old, st, now); err != nil {
			return nil, err
		}
		return st, nil
	}
}

// moveHead makes the pending occurrence follow a write: the old head is
// cancelled when the new one is elsewhere, rewritten when it is the same.
func (s *Schedules) moveHead(ctx context.Context, old, st *State, now time.Time) error {
	if !st.Next.IsZero() && st.Next.Equal(old.Next) {
		ev := st.Event(st.Next, now, true)
		if _, err := s.occ.ReplacePending(ctx, ev, time.Time{}); err != nil {
			return fmt.Errorf("rewrite occurrence %s: %w", ev.ID, err)
		}
		return nil
	}
	if err := s.ensureHead(ctx, st, now); err != nil {
		return err
	}
	return s.cancelHead(ctx, old)
}

// cancelHead cancels a state's pending occurrence; one that was claimed
// already (or is gone) goes its way.
func (s *Schedules) cancelHead(ctx context.Context, st *State) error {
	if st.Next.IsZero() {
		return nil
	}
	_, err := s.occ.Cancel(ctx, st.App, OccurrenceID(st.ID, st.Next), time.Time{})
	var se *scheduler.StatusError
	if err == nil || errors.As(err, &se) || errors.Is(err, scheduler.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("cancel occurrence: %w", err)
}

// ensureHead creates the state's pending occurrence unless it exists. One
// cancelled before (the head left it: a pause, an edit, a delete) is made
// pending again: a cancelled head is never claimed, so the chain would
// end there.
func (s *Schedules) ensureHead(ctx context.Context, st *State, now time.Time) error {
	if st.Next.IsZero() {
		return nil
	}
	return s.createOccurrences(ctx, []*scheduler.Event{st.Event(st.Next, now, true)})[0]
}

// createOccurrences creates occurrence events in one round trip, unless
// they exist; one that exists CANCELLED (a pause, an edit or a delete
// cancelled it, and the chain came back to that time) is made again.
func (s *Schedules) createOccurrences(ctx context.Context, evs []*scheduler.Event) []error {
	errs := make([]error, len(evs))
	if len(evs) == 0 {
		return errs
	}
	res, err := s.occ.CreateMany(ctx, evs, time.Time{})
	for i, ev := range evs {
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("create occurrence %s: %w", ev.ID, err)
		case res[i].Err != nil:
			errs[i] = fmt.Errorf("create occurrence %s: %w", ev.ID, res[i].Err)
		case res[i].Existing != nil && res[i].Existing.Status == scheduler.StatusCancelled:
			if _, err := s.occ.ReplacePending(ctx, ev, time.Time{}); err != nil {
				errs[i] = fmt.Errorf("re-create cancelled occurrence %s: %w", ev.ID, err)
			}
		}
	}
	return errs
}

// Get returns one schedule, or ErrScheduleNotFound.
func (s *Schedules) Get(ctx context.Context, app, id string) (*State, error) {
	if !scheduler.ValidApp(app) || !ValidID(id) {
		return nil, ErrScheduleNotFound
	}
	return s.store.ReadSchedule(ctx, app, id)
}

// Delete removes a schedule and cancels its pending occurrence; it returns
// the schedule as it was, or ErrScheduleNotFound.
func (s *Schedules) Delete(ctx context.Context, app, id string) (*State, error) {
	for try := 0; ; try++ {
		st, err := s.Get(ctx, app, id)
		if err != nil {
			return nil, err
		}
		err = s.store.DeleteSchedule(ctx, app, id, st.Rev)
		if errors.Is(err, ErrRevChanged) && try < casTries {
			continue
		}
		if err != nil {
			return nil, err
		}
		return st, s.cancelHead(ctx, st)
	}
}

// change applies fn to the stored schedule and writes it back, retrying on
// concurrent writes; fn returns false to write nothing.
func (s *Schedules) change(ctx context.Context, app, id string, fn func(st *State, now time.Time) bool) (old, cur *State, err error) {
	for try := 0; ; try++ {
		st, err := s.Get(ctx, app, id)
		if err != nil {
			return nil, nil, err
		}
		now := s.now()
		prev := *st
		sc := *st.Schedule
		st.Schedule = &sc
		st.Runs = slices.Clone(st.Runs)
		if !fn(st, now) {
			return &prev, st, nil
		}
		rev, err := s.store.WriteSchedule(ctx, st, prev.Rev)
		if errors.Is(err, ErrRevChanged) && try < casTries {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		st.Rev = rev
		return &prev, st, nil
	}
}

// Pause stops a schedule: its pending occurrence is cancelled and no more
// are made until Resume.
func (s *Schedules) Pause(ctx context.Context, app, id string) (*State, error) {
	old, st, err := s.change(ctx, app, id, func(st *State, now time.Time) bool {
		if st.Paused {
			return false
		}
		st.Paused, st.Next, st.UpdatedAt = true, time.Time{}, now
		return true
	})
	if err != nil {
		return nil, err
	}
	return st, s.cancelHead(ctx, old)
}

// Resume restarts a paused schedule from its next future occurrence
// (occurrences missed while paused are not made up).
func (s *Schedules) Resume(ctx context.Context, app, id string) (*State, error) {
	_, st, err := s.change(ctx, app, id, func(st *State, now time.Time) bool {
		if !st.Paused {
			return false
		}
		st.Paused, st.UpdatedAt = false, now
		st.Next = next(st.Schedule, now)
		return true
	})
	if err != nil {
		return nil, err
	}
	return st, s.ensureHead(ctx, st, s.now())
}

// Trigger makes one extra occurrence, due now, outside the chain: next_at
// is unchanged. It returns the schedule and the occurrence's event.
func (s *Schedules) Trigger(ctx context.Context, app, id string) (*State, *scheduler.Event, error) {
	var ev *scheduler.Event
	_, st, err := s.change(ctx, app, id, func(st *State, now time.Time) bool {
		ev = st.Event(now, now, false)
		st.Runs = pushRun(st.Runs, now)
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	res, err := s.occ.CreateMany(ctx, []*scheduler.Event{ev}, time.Time{})
	if err != nil {
		return nil, nil, fmt.Errorf("create triggered occurrence: %w", err)
	}
	if res[0].Err != nil {
		return nil, nil, fmt.Errorf("create triggered occurrence: %w", res[0].Err)
	}
	if res[0].Existing != nil {
		ev = res[0].Existing // the chain's occurrence of this very millisecond
	}
	return st, ev, nil
}

// pushRun adds t at the front of runs, newest first, at most MaxRuns.
func pushRun(runs []time.Time, t time.Time) []time.Time {
	if slices.ContainsFunc(runs, t.Equal) {
		return runs
	}
	runs = append([]time.Time{t}, runs...)
	slices.SortFunc(runs, func(a, b time.Time) int { return b.Compare(a) })
	return runs[:min(len(runs), MaxRuns)]
}

// Verdict is what Advance found of a claimed occurrence.
type Verdict int

const (
	// Advanced: the occurrence was the schedule's head; the next one exists.
	Advanced Verdict = iota
	// Again: the occurrence was advanced past before (a claim repeated
	// after a crash); the head it led to exists.
	Again
	// Stale: the schedule is gone, paused or was edited since the
	// occurrence was made; nothing follows from it.
	Stale
)

func (v Verdict) String() string {
	return [...]string{"advanced", "again", "stale"}[v]
}

// Advance is what a worker does with a claimed occurrence of a schedule
// before recording its outcome: it moves the schedule's head from the
// occurrence to the next occurrence after it (or, when that one is past
// already, after now: one catch-up delivery, not one per missed
// occurrence) and creates that occurrence's event. Every step is
// idempotent, and the claimed occurrence is finished only after Advance
// returned, so a worker killed half-way leaves the claim to be repeated
// and the chain neither breaks nor forks: exactly one event per occurrence.
func (s *Schedules) Advance(ctx context.Context, app, eventID string) (Verdict, error) {
	r := s.AdvanceMany(ctx, []scheduler.Ident{{App: app, ID: eventID}})[0]
	return r.Verdict, r.Err
}

// AdvanceResult is what AdvanceMany did with one occurrence.
type AdvanceResult struct {
	Verdict Verdict
	Err     error
}

// AdvanceMany advances many claimed occurrences (Advance) in a few round
// trips for all of them: read their schedules, create the next
// occurrences, then move the heads with compare-and-set. Creating before
// moving the head is what makes it safe without a lock: a write that
// moved the head meanwhile (pause, edit, delete, another worker) makes the
// compare-and-set fail; the occurrence just created is then cancelled
// unless it is the head after all, and the step is taken again.
func (s *Schedules) AdvanceMany(ctx context.Context, occurrences []scheduler.Ident) []AdvanceResult {
	out := make([]AdvanceResult, len(occurrences))
	todo := make([]int, len(occurrences))
	for i := range todo {
		todo[i] = i
	}
	for try := 0; len(todo) > 0; try++ {
		lost := s.advanceRound(ctx, occurrences, todo, out)
		if try == casTries {
			for _, i := range lost {
				out[i].Err = fmt.Errorf("advance %s/%s: %w", occurrences[i].App, occurrences[i].ID, ErrRevChanged)
			}
			break
		}
		todo = lost
	}
	return out
}

// advanceRound takes one step for the occurrences at indexes todo, writing
// their results into out, and returns the indexes whose compare-and-set
// lost to another write (their made occurrence dropped unless it is the
// head): those are to be taken again.
func (s *Schedules) advanceRound(ctx context.Context, occurrences []scheduler.Ident, todo []int, out []AdvanceResult) (lost []int) {
	type step struct {
		i    int
		at   time.Time
		st   *State
		next *State // the state to write (Advanced only)
	}
	var steps []step
	var ids []scheduler.Ident
	for _, i := range todo {
		o := occurrences[i]
		id, at, ok := ParseOccurrenceID(o.ID)
		if !ok {
			out[i] = AdvanceResult{Stale, fmt.Errorf("advance: %q is not an occurrence id", o.ID)}
			continue
		}
		steps = append(steps, step{i: i, at: at})
		ids = append(ids, scheduler.Ident{App: o.App, ID: id})
	}
	sts, errs := s.store.ReadSchedules(ctx, ids)
	now := s.now()
	var creates []*scheduler.Event
	var createdBy []int // index in steps
	for k := range steps {
		stp := &steps[k]
		st := sts[k]
		out[stp.i] = AdvanceResult{Verdict: Stale}
		switch {
		case errors.Is(errs[k], scheduler.ErrNotFound):
		case errs[k] != nil:
			out[stp.i].Err = errs[k]
		case st.Next.Equal(stp.at):
			out[stp.i].Verdict = Advanced
			n := next(st.Schedule, stp.at)
			if !n.IsZero() && !n.After(now) {
				n = next(st.Schedule, now) // catch up: the next future occurrence
			}
			cp := *st
			cp.Next, cp.Runs = n, pushRun(slices.Clone(st.Runs), stp.at)
			stp.st, stp.next = st, &cp
			if !n.IsZero() {
				creates = append(creates, st.Event(n, now, true))
				createdBy = append(createdBy, k)
			}
		case slices.ContainsFunc(st.Runs, stp.at.Equal):
			// A repeated claim: make sure the head it led to exists.
			out[stp.i].Verdict = Again
			if !st.Next.IsZero() {
				creates = append(creates, st.Event(st.Next, now, true))
				createdBy = append(createdBy, k)
			}
		}
	}
	for j, err := range s.createOccurrences(ctx, creates) {
		if err != nil {
			stp := &steps[createdBy[j]]
			out[stp.i].Err, stp.next = err, nil
		}
	}
	var writes []*State
	var expects []int64
	var writtenBy []int
	for k, stp := range steps {
		if stp.next != nil {
			writes, expects, writtenBy = append(writes, stp.next), append(expects, stp.st.Rev), append(writtenBy, k)
		}
	}
	_, werrs := s.store.WriteSchedules(ctx, writes, expects)
	for j, err := range werrs {
		stp := steps[writtenBy[j]]
		switch {
		case err == nil:
		case errors.Is(err, ErrRevChanged) || errors.Is(err, scheduler.ErrNotFound):
			if err := s.dropUnlessHead(ctx, stp.next); err != nil {
				out[stp.i].Err = err
				continue
			}
			lost = append(lost, stp.i)
		default:
			out[stp.i].Err = err
		}
	}
	return lost
}

// dropUnlessHead cancels the occurrence at made.Next unless it is the
// schedule's head now.
func (s *Schedules) dropUnlessHead(ctx context.Context, made *State) error {
	if made.Next.IsZero() {
		return nil
	}
	cur, err := s.store.ReadSchedule(ctx, made.App, made.ID)
	if err != nil && !errors.Is(err, scheduler.ErrNotFound) {
		return err
	}
	if cur != nil && cur.Next.Equal(made.Next) {
		return nil
	}
	return s.cancelHead(ctx, made)
}

// ListQuery selects a page of schedules.
type ListQuery struct {
	// App lists one application's schedules; "" lists every application's.
	App string
	// Cursor continues a listing where the previous page ended.
	Cursor string
	// Limit is the page size, 1 to MaxListLimit. Defaults to DefaultListLimit.
	Limit int
}

// List returns a page of schedules sorted by (app, id) and the cursor of
// the next page ("" on the last).
func (s *Schedules) List(ctx context.Context, q ListQuery) ([]*State, string, error) {
	if q.App != "" && !scheduler.ValidApp(q.App) {
		return nil, "", scheduler.Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	limit := defaults.Positive(q.Limit, DefaultListLimit)
	if limit > MaxListLimit {
		return nil, "", scheduler.Invalid("limit", "limit must be a number from 1 to %d", MaxListLimit)
	}
	return s.store.ListSchedules(ctx, q.App, q.Cursor, limit)
}

// Run is one of a schedule's latest occurrences, as last_runs shows it.
type Run struct {
	EventID string
	DueAt   time.Time
	// Status is the occurrence's status; "" when it cannot be read (the
	// archive has forgotten it, or it was never made).
	Status scheduler.Status
}

// Runs returns the latest runs of a schedule with their statuses, newest first.
func (s *Schedules) Runs(ctx context.Context, st *State) []Run {
	out := make([]Run, 0, len(st.Runs))
	for _, t := range st.Runs {
		r := Run{EventID: OccurrenceID(st.ID, t), DueAt: t}
		if s.cfg.Events != nil {
			if status, err := s.cfg.Events.Status(ctx, st.App, r.EventID); err == nil {
				r.Status = status
			} else if !errors.Is(err, scheduler.ErrNotFound) {
				s.cfg.Log.Warn("read a schedule's run", "app", st.App, "event", r.EventID, "err", err)
			}
		}
		out = append(out, r)
	}
	return out
}

// Upcoming returns up to n occurrences from the state's next one on
// (the admin UI's "next occurrences"); none while paused.
func Upcoming(st *State, n int) []time.Time {
	if st.Next.IsZero() || n <= 0 {
		return nil
	}
	spec, err := st.Spec()
	if err != nil {
		return []time.Time{st.Next}
	}
	return append([]time.Time{st.Next}, spec.NextN(st.Next, n-1)...)
}
