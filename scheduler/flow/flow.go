package flow

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Limits are a flow key's controls; zero values mean no limit.
type Limits struct {
	// Rate is the most requests started per second, spread 1/Rate apart.
	Rate float64
	// Parallelism is the most requests in flight at once.
	Parallelism int
	// Paused holds every event of the key back.
	Paused bool
}

// Limited reports whether l limits how fast the key's events go (pausing
// aside).
func (l Limits) Limited() bool { return l.Rate > 0 || l.Parallelism > 0 }

// State is a flow key's record with what it holds now.
type State struct {
	App, Key string
	Limits
	// InFlight is the number of permits out: requests being delivered, or
	// held events granted a permit and about to be claimed.
	InFlight int
	// Held is the number of the key's due events waiting for a permit or
	// for the key to be resumed.
	Held int
}

// AppPause is an application's pause as the store records it.
type AppPause struct {
	App    string
	Paused bool
	// Held is the number of the application's due events waiting for it to
	// be resumed.
	Held int
}

// Bounds of the limits.
const (
	// MaxRate bounds Rate (requests per second).
	MaxRate = 1_000_000
	// MaxParallelism bounds Parallelism.
	MaxParallelism = 1_000_000
)

// Store keeps flow keys' records and applications' pauses.
type Store interface {
	// PutFlow writes a key's limits and applies them at once: a pause holds
	// the key's events from the next claim on, a resume or a raised limit
	// lets held events go.
	PutFlow(ctx context.Context, app, key string, l Limits) (*State, error)
	// ReadFlow returns a key's state; scheduler.ErrNotFound without a record.
	ReadFlow(ctx context.Context, app, key string) (*State, error)
	// DeleteFlow removes a key's record, letting its held events go, and
	// returns the state it had; scheduler.ErrNotFound without a record.
	DeleteFlow(ctx context.Context, app, key string) (*State, error)
	// ListFlows returns the keys with a record of app ("" for every
	// application), sorted by application and key.
	ListFlows(ctx context.Context, app string) ([]*State, error)
	// SetAppPaused pauses or resumes an application.
	SetAppPaused(ctx context.Context, app string, paused bool) (*AppPause, error)
	// AppPaused returns an application's pause.
	AppPaused(ctx context.Context, app string) (*AppPause, error)
	// PausedApps lists the paused applications.
	PausedApps(ctx context.Context) ([]*AppPause, error)
}

// Flows is the flow-control component the API and the admin UI use.
type Flows struct {
	store Store
}

// New returns the component over store.
func New(store Store) *Flows { return &Flows{store: store} }

// Validate checks a key and its limits; errors name the field.
func Validate(app, key string, l Limits) error {
	if !scheduler.ValidApp(app) {
		return scheduler.Invalid("app", "app must match [A-Za-z0-9._-]{1,64}")
	}
	if !scheduler.ValidFlowKey(key) {
		return scheduler.Invalid("key", "flow key must match [A-Za-z0-9._:-]{1,128}")
	}
	if math.IsNaN(l.Rate) || l.Rate < 0 || l.Rate > MaxRate {
		return scheduler.Invalid("rate", "rate must be a number of requests per second above 0 and at most %d", MaxRate)
	}
	if l.Parallelism < 0 || l.Parallelism > MaxParallelism {
		return scheduler.Invalid("parallelism", "parallelism must be between 1 and %d", MaxParallelism)
	}
	return nil
}

// Put creates or replaces a key's limits (a limit left out is no limit).
func (f *Flows) Put(ctx context.Context, app, key string, l Limits) (*State, error) {
	if err := Validate(app, key, l); err != nil {
		return nil, err
	}
	return f.store.PutFlow(ctx, app, key, l)
}

// Get returns a key's state.
func (f *Flows) Get(ctx context.Context, app, key string) (*State, error) {
	if !scheduler.ValidFlowKey(key) {
		return nil, fmt.Errorf("flow %s/%s: %w", app, key, scheduler.ErrNotFound)
	}
	return f.store.ReadFlow(ctx, app, key)
}

// Delete removes a key's limits; its held events go at once.
func (f *Flows) Delete(ctx context.Context, app, key string) (*State, error) {
	if !scheduler.ValidFlowKey(key) {
		return nil, fmt.Errorf("flow %s/%s: %w", app, key, scheduler.ErrNotFound)
	}
	return f.store.DeleteFlow(ctx, app, key)
}

// List returns the keys with limits of app ("" for all).
func (f *Flows) List(ctx context.Context, app string) ([]*State, error) {
	return f.store.ListFlows(ctx, app)
}

// PauseApp holds every due event of app until ResumeApp.
func (f *Flows) PauseApp(ctx context.Context, app string) (*AppPause, error) {
	return f.store.SetAppPaused(ctx, app, true)
}

// ResumeApp lets a paused application's held events go, in due order.
func (f *Flows) ResumeApp(ctx context.Context, app string) (*AppPause, error) {
	return f.store.SetAppPaused(ctx, app, false)
}

// AppPaused returns whether app is paused and how many events it holds.
func (f *Flows) AppPaused(ctx context.Context, app string) (*AppPause, error) {
	return f.store.AppPaused(ctx, app)
}

// PausedApps lists the paused applications.
func (f *Flows) PausedApps(ctx context.Context) ([]*AppPause, error) {
	return f.store.PausedApps(ctx)
}

// Permits: the worker's side (scheduler/worker/flow.go).

// ID names a flow key.
type ID struct{ App, Key string }

// Verdict is a flow key's answer to a claimed event.
type Verdict int

const (
	// Unlimited: the key has no rate or parallelism; deliver, no permit.
	Unlimited Verdict = iota
	// Granted: deliver under a permit, released after the attempt.
	Granted
	// Held: the event waits in the key's queue; park it.
	Held
)

// Acquire asks a key for a permit for one claimed event.
type Acquire struct {
	ID
	// Member is the event's identity "<app>/<id>".
	EventID string
	// Due is the event's place in the key's queue.
	Due time.Time
}

// Answer is a key's answer to an Acquire.
type Answer struct {
	Verdict Verdict
	// Wake is when a held event may get a permit (zero: on a release).
	Wake time.Time
	Err  error
}

// Pump releases a permit (Release, an event id, or "") and grants permits
// to the key's held events as far as its limits allow.
type Pump struct {
	ID
	Release string
}

// Pumped is what a Pump did.
type Pumped struct {
	// Granted is the number of held events made due again.
	Granted int
	// Wake is when more may be granted while events are held (zero: on a
	// release only).
	Wake time.Time
	Err  error
}
