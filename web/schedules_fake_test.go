package web

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// fakeScheduleStore keeps schedules in memory for a real
// schedule.Schedules, so the pages meet the domain's own rules (validation,
// compare-and-set, the chain's head).
type fakeScheduleStore struct {
	mu  sync.Mutex
	sts map[[2]string]*schedule.State
	// err, when set, is returned by every call.
	err error
}

func newFakeScheduleStore() *fakeScheduleStore {
	return &fakeScheduleStore{sts: map[[2]string]*schedule.State{}}
}

func cloneState(st *schedule.State) *schedule.State {
	sc := *st.Schedule
	sc.Headers = maps.Clone(st.Headers)
	cp := *st
	cp.Schedule = &sc
	cp.Runs = slices.Clone(st.Runs)
	return &cp
}

func (f *fakeScheduleStore) ReadSchedule(_ context.Context, app, id string) (*schedule.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	st := f.sts[[2]string{app, id}]
	if st == nil {
		return nil, schedule.ErrScheduleNotFound
	}
	return cloneState(st), nil
}

func (f *fakeScheduleStore) WriteSchedule(_ context.Context, st *schedule.State, expect int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	k := [2]string{st.App, st.ID}
	old := f.sts[k]
	switch {
	case old == nil && expect > 0:
		return 0, schedule.ErrScheduleNotFound
	case old != nil && old.Rev != expect:
		return 0, schedule.ErrRevChanged
	}
	cp := cloneState(st)
	cp.Rev = expect + 1
	f.sts[k] = cp
	return cp.Rev, nil
}

func (f *fakeScheduleStore) ReadSchedules(ctx context.Context, ids []scheduler.Ident) ([]*schedule.State, []error) {
	sts, errs := make([]*schedule.State, len(ids)), make([]error, len(ids))
	for i, id := range ids {
		sts[i], errs[i] = f.ReadSchedule(ctx, id.App, id.ID)
	}
	return sts, errs
}

func (f *fakeScheduleStore) WriteSchedules(ctx context.Context, sts []*schedule.State, expects []int64) ([]int64, []error) {
	revs, errs := make([]int64, len(sts)), make([]error, len(sts))
	for i, st := range sts {
		revs[i], errs[i] = f.WriteSchedule(ctx, st, expects[i])
	}
	return revs, errs
}

func (f *fakeScheduleStore) DeleteSchedule(_ context.Context, app, id string, expect int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	k := [2]string{app, id}
	old := f.sts[k]
	switch {
	case old == nil:
		return schedule.ErrScheduleNotFound
	case old.Rev != expect:
		return schedule.ErrRevChanged
	}
	delete(f.sts, k)
	return nil
}

// ListSchedules pages by key; the cursor is the last key seen, prefixed
// with "c:" so that another string is a bad cursor, as in the real store.
func (f *fakeScheduleStore) ListSchedules(_ context.Context, app, cursor string, limit int) ([]*schedule.State, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	after := ""
	if cursor != "" {
		if len(cursor) < 3 || cursor[:2] != "c:" {
			return nil, "", scheduler.Invalid("cursor", "bad cursor")
		}
		after = cursor[2:]
	}
	key := func(st *schedule.State) string { return st.App + "\x00" + st.ID }
	var all []*schedule.State
	for _, st := range f.sts {
		if (app == "" || st.App == app) && (after == "" || key(st) > after) {
			all = append(all, st)
		}
	}
	slices.SortFunc(all, func(a, b *schedule.State) int { return cmp.Compare(key(a), key(b)) })
	var out []*schedule.State
	for _, st := range all {
		if len(out) == limit {
			return out, "c:" + key(out[len(out)-1]), nil
		}
		out = append(out, cloneState(st))
	}
	return out, "", nil
}

func (f *fakeScheduleStore) get(app, id string) *schedule.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.sts[[2]string{app, id}]; st != nil {
		return cloneState(st)
	}
	return nil
}

// fakeOccurrences makes a schedule's occurrences events of the fake
// Backend, so runs have statuses and their links open event pages.
type fakeOccurrences struct{ fb *fakeBackend }

func (o fakeOccurrences) CreateMany(_ context.Context, evs []*scheduler.Event, _ time.Time) ([]scheduler.CreateResult, error) {
	out := make([]scheduler.CreateResult, len(evs))
	for i, ev := range evs {
		o.fb.mu.Lock()
		existing := o.fb.find(ev.App, ev.ID)
		o.fb.mu.Unlock()
		if existing != nil {
			cp := *existing
			out[i].Existing = &cp
			continue
		}
		cp := *ev
		o.fb.add(&cp)
	}
	return out, nil
}

func (o fakeOccurrences) ReplacePending(_ context.Context, ev *scheduler.Event, _ time.Time) (*scheduler.Event, error) {
	o.fb.mu.Lock()
	defer o.fb.mu.Unlock()
	if old := o.fb.find(ev.App, ev.ID); old != nil {
		if old.Status != scheduler.StatusPending {
			cp := *old
			return &cp, nil
		}
		*old = *ev
		old.Status = scheduler.StatusPending
		return nil, nil
	}
	cp := *ev
	cp.Status = scheduler.StatusPending
	o.fb.events = append(o.fb.events, &cp)
	return nil, nil
}

func (o fakeOccurrences) Cancel(ctx context.Context, app, id string, _ time.Time) (*scheduler.Event, error) {
	return o.fb.Cancel(ctx, app, id)
}

// withSchedules gives a test UI Schedules over a fresh fake store, returned
// through the pointer; occurrences are events of the fake Backend.
func withSchedules(store **fakeScheduleStore) func(*Config) {
	return func(cfg *Config) {
		*store = newFakeScheduleStore()
		fb := cfg.Backend.(*fakeBackend)
		cfg.Schedules = schedule.New(*store, fakeOccurrences{fb}, schedule.Config{Clock: cfg.Clock, Events: fakeStatuses{fb}})
	}
}

// fakeStatuses reads occurrences' statuses from the fake Backend, as
// scheduler.Scheduler.Status does from Redis and the archive.
type fakeStatuses struct{ fb *fakeBackend }

func (s fakeStatuses) Status(ctx context.Context, app, id string) (scheduler.Status, error) {
	ev, err := s.fb.Get(ctx, app, id)
	if err != nil {
		return "", err
	}
	return ev.Status, nil
}
