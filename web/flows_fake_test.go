package web

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

// fakeFlowStore keeps flow keys and application pauses in memory for a
// real flow.Flows, so the page meets the domain's own validation.
type fakeFlowStore struct {
	mu     sync.Mutex
	flows  map[flow.ID]*flow.State
	paused map[string]bool
	// held is what each application's pause holds, as the store would
	// count parked events.
	held map[string]int
	// err, when set, is returned by every call.
	err error
}

var _ flow.Store = (*fakeFlowStore)(nil)

func newFakeFlowStore() *fakeFlowStore {
	return &fakeFlowStore{flows: map[flow.ID]*flow.State{}, paused: map[string]bool{}, held: map[string]int{}}
}

func (f *fakeFlowStore) PutFlow(_ context.Context, app, key string, l flow.Limits) (*flow.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	id := flow.ID{App: app, Key: key}
	st := f.flows[id]
	if st == nil {
		st = &flow.State{App: app, Key: key}
		f.flows[id] = st
	}
	st.Limits = l
	cp := *st
	return &cp, nil
}

func (f *fakeFlowStore) ReadFlow(_ context.Context, app, key string) (*flow.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	st := f.flows[flow.ID{App: app, Key: key}]
	if st == nil {
		return nil, fmt.Errorf("flow %s/%s: %w", app, key, scheduler.ErrNotFound)
	}
	cp := *st
	return &cp, nil
}

func (f *fakeFlowStore) DeleteFlow(ctx context.Context, app, key string) (*flow.State, error) {
	st, err := f.ReadFlow(ctx, app, key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.flows, flow.ID{App: app, Key: key})
	return st, nil
}

func (f *fakeFlowStore) ListFlows(_ context.Context, app string) ([]*flow.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []*flow.State
	for _, st := range f.flows {
		if app == "" || st.App == app {
			cp := *st
			out = append(out, &cp)
		}
	}
	slices.SortFunc(out, func(a, b *flow.State) int { return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Key, b.Key)) })
	return out, nil
}

func (f *fakeFlowStore) SetAppPaused(ctx context.Context, app string, paused bool) (*flow.AppPause, error) {
	f.mu.Lock()
	if f.err != nil {
		f.mu.Unlock()
		return nil, f.err
	}
	if paused {
		f.paused[app] = true
	} else {
		delete(f.paused, app)
		delete(f.held, app)
	}
	f.mu.Unlock()
	return f.AppPaused(ctx, app)
}

func (f *fakeFlowStore) AppPaused(_ context.Context, app string) (*flow.AppPause, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return &flow.AppPause{App: app, Paused: f.paused[app], Held: f.held[app]}, nil
}

func (f *fakeFlowStore) PausedApps(ctx context.Context) ([]*flow.AppPause, error) {
	f.mu.Lock()
	apps := make([]string, 0, len(f.paused))
	for app := range f.paused {
		apps = append(apps, app)
	}
	f.mu.Unlock()
	slices.Sort(apps)
	out := make([]*flow.AppPause, 0, len(apps))
	for _, app := range apps {
		p, err := f.AppPaused(ctx, app)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// state sets what a key holds now (in flight, held), as deliveries would.
func (f *fakeFlowStore) state(app, key string, inFlight, held int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.flows[flow.ID{App: app, Key: key}]
	st.InFlight, st.Held = inFlight, held
}

func (f *fakeFlowStore) get(app, key string) *flow.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.flows[flow.ID{App: app, Key: key}]; st != nil {
		cp := *st
		return &cp
	}
	return nil
}

func (f *fakeFlowStore) isPaused(app string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused[app]
}

// withFlows gives a test UI Flows over a fresh fake store, returned
// through the pointer.
func withFlows(store **fakeFlowStore) func(*Config) {
	return func(cfg *Config) {
		*store = newFakeFlowStore()
		cfg.Flows = flow.New(*store)
	}
}
