package scheduler

import (
	"context"
	"time"
)

// Store is what the scheduler needs from the live store (Redis, see
// store/redisstore). A zero `now` asks the store to use its own server clock,
// so that workers with skewed clocks still agree on what is due.
type Store interface {
	// Outbox: every change of an event is appended to its shard's outbox,
	// which the archiver reads. Shards is the number of shards.
	Outbox
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

	// Claim takes up to batch due events of a shard for a worker.
	Claim(ctx context.Context, shard int, worker string, batch int, visibility time.Duration, now time.Time) (Claim, error)
	// Finish records an attempt's outcome. It reports false when the worker
	// no longer held the lease, in which case only the history records it.
	Finish(ctx context.Context, l Lease, o Outcome, now time.Time) (bool, error)
	// FinishMany is Finish for many outcomes in one round trip; the results
	// are in order, each on its own.
	FinishMany(ctx context.Context, items []FinishItem) []FinishResult
	// Extend pushes a held lease out by visibility; false when it was lost.
	Extend(ctx context.Context, l Lease, visibility time.Duration, now time.Time) (bool, error)
	// Reap recovers up to limit events of a shard whose lease expired.
	Reap(ctx context.Context, shard, limit, defaultMaxAttempts int, now time.Time) (int, error)
	// Heartbeat records that a worker is alive at now (zero: the Redis
	// server's clock).
	Heartbeat(ctx context.Context, w WorkerInfo, now time.Time) error
	// DeadWorkers lists the workers whose last heartbeat is older than
	// deadAfter at now (zero: the Redis server's clock).
	DeadWorkers(ctx context.Context, deadAfter time.Duration, now time.Time) ([]string, error)
	// RecoverWorker ends the leases a dead worker holds, so the reaper gives
	// its events back, and forgets the worker unless it beat again. It
	// returns the number of leases ended.
	RecoverWorker(ctx context.Context, id string, deadAfter time.Duration, now time.Time) (int, error)
	// GiveBackOrphans returns to due, without counting an attempt, the
	// events in worker's processing lists that it claimed at least grace ago
	// (on the store's clock, or now) but does not hold: claims whose reply
	// was lost. holding lists, per shard, the members the worker is
	// delivering or finishing. Members whose lease expired are left to Reap.
	// It returns the number of events given back.
	GiveBackOrphans(ctx context.Context, worker string, holding [][]string, grace time.Duration, now time.Time) (int, error)
	// Workers lists the workers whose last heartbeat is newer than since.
	Workers(ctx context.Context, since time.Time) ([]WorkerInfo, error)
	// Live counts the live events: PENDING, of those due before dueBefore,
	// and PROCESSING.
	Live(ctx context.Context, dueBefore time.Time) (LiveCounts, error)
	// Wakeups delivers a value whenever an event may have become due earlier
	// than the workers planned. The channel closes when ctx ends.
	Wakeups(ctx context.Context) <-chan struct{}
}

// Ident is an event's identity.
type Ident struct{ App, ID string }

// CreateResult is one result of CreateMany.
type CreateResult struct {
	Existing *Event
	Err      error
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
