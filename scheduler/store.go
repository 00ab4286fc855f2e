package scheduler

import (
	"context"
	"time"
)

// Store is what the Scheduler needs from the live store (Redis, see
// store/redisstore): create, read, cancel and requeue events, and the
// dashboard's live figures. The worker declares what it needs in
// scheduler/worker. A zero `now` asks the store to use its own server
// clock, so that processes with skewed clocks still agree on what is due.
type Store interface {
	// Create stores a new PENDING event. When the identity exists it returns
	// the existing event and stores nothing.
	Create(ctx context.Context, ev *Event, now time.Time) (existing *Event, err error)
	// CreateMany is Create for many events in one round trip; results are in
	// order. A non-nil error means none of the results can be trusted.
	CreateMany(ctx context.Context, evs []*Event, now time.Time) ([]CreateResult, error)
	// Get returns the live event or ErrNotFound.
	Get(ctx context.Context, app, id string) (*Event, error)
	// GetMany returns the live events of many identities in one round trip,
	// each as Get returns it, nil where Redis no longer has one.
	GetMany(ctx context.Context, ids []Ident) ([]*Event, error)
	// Cancel cancels a PENDING event and returns it as cancelled (as Get
	// would read it): ErrNotFound or *StatusError otherwise.
	Cancel(ctx context.Context, app, id string, now time.Time) (*Event, error)
	// Requeue makes an event in one of the allowed statuses PENDING and due
	// now, resetting its attempts when asked, and returns it as requeued (as
	// Get would read it): ErrNotFound or *StatusError otherwise.
	Requeue(ctx context.Context, app, id string, allowed []Status, resetAttempts bool, now time.Time) (*Event, error)

	// Workers lists the workers whose last heartbeat is newer than since.
	Workers(ctx context.Context, since time.Time) ([]WorkerInfo, error)
	// Live counts the live events: PENDING, of those due before dueBefore,
	// and PROCESSING.
	Live(ctx context.Context, dueBefore time.Time) (LiveCounts, error)
	// OutboxLag reports the outbox entries not yet archived and the oldest
	// one's time.
	OutboxLag(ctx context.Context) (entries int64, oldest time.Time, err error)
}

// Ident is an event's identity.
type Ident struct{ App, ID string }

// CreateResult is one result of CreateMany.
type CreateResult struct {
	Existing *Event
	Err      error
}

// ClaimRequest asks one shard for up to Batch due events.
type ClaimRequest struct {
	Shard int
	Batch int
}

// Claim is the result of claiming one shard.
type Claim struct {
	// Now is the store's clock at the claim.
	Now time.Time
	// NextDue is the earliest due time left in the shard; zero when none.
	NextDue time.Time
	// Events were claimed: PROCESSING, Attempts already counting this one.
	Events []*Event
}

// Lease identifies a claim: the worker and the attempt number it claimed.
// Finishing and extending check it, so a worker that lost its lease cannot
// overwrite the outcome of the worker that took the event over.
type Lease struct {
	App, ID string
	Worker  string
	Attempt int
}

// Outcome is the result of one attempt as the store records it.
type Outcome struct {
	// Status is the event's status after the attempt: COMPLETED, FAILED,
	// SERVICE_UNAVAILABLE, or PENDING for a retry after Backoff.
	Status  Status
	Backoff time.Duration
	Attempt Attempt
}

// LiveCounts counts the events in Redis that are not finished.
type LiveCounts struct {
	Pending, DueSoon, Processing int64
}

// WorkerInfo is what a worker's heartbeat says.
type WorkerInfo struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	InFlight  int       `json:"in_flight"`
	Heartbeat time.Time `json:"heartbeat"`
	// DeadAfterMS is the worker's own DeadAfter: others judge it by the
	// larger of theirs and this, so workers configured differently never
	// take a live one for dead.
	DeadAfterMS int64 `json:"dead_after_ms,omitempty"`
}

// FinishItem is one outcome to record (Store.FinishMany): Now as in Finish.
type FinishItem struct {
	Lease   Lease
	Outcome Outcome
	Now     time.Time
}

// FinishResult is what recording one outcome gave: Held as Finish's bool.
type FinishResult struct {
	Held bool
	Err  error
}
