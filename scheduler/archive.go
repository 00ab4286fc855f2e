package scheduler

import (
	"context"
	"slices"
	"time"
)

// The archive keeps every event's story after Redis lets it go: one row per
// run of an identity (a run begins when the identity is created; retries of
// a finished run continue it) and one row per attempt. Workers feed it from
// each shard's outbox stream (see Archiver); reads fall back to it; search
// runs on it.
//
// Every change of an event reaches the outbox: creates, attempts, final
// outcomes and requeues, so the archive knows live events too (with the
// archiver's lag) and one SQL query finds live and archived events alike;
// search then overlays the live rows of a page with their current Redis
// state.

// RecordKind says what an outbox record reports.
type RecordKind string

// Outbox record kinds.
const (
	// RecordCreate: the run began (PENDING). Carries no body.
	RecordCreate RecordKind = "create"
	// RecordAttempt: an attempt ended; the event goes on (retry) or the
	// attempt was stale.
	RecordAttempt RecordKind = "attempt"
	// RecordFinal: the run reached a final status; carries the whole event
	// (the store reads it when the record is read), or none when the store
	// no longer has it (the attempt then tells the outcome).
	RecordFinal RecordKind = "final"
	// RecordRequeue: a finished run was retried, or a pending one made due now.
	RecordRequeue RecordKind = "requeue"
)

// Record is one outbox entry as the archive writes it.
type Record struct {
	// Shard and StreamID locate the entry in the outbox. An entry holds one
	// record, or Parts records (a packed entry: a batch's creates or final
	// outcomes), of which this is the Part-th, counting from 0; such an
	// entry is acknowledged once all its records are archived.
	Shard    int
	StreamID string
	Part     int
	Parts    int
	Kind     RecordKind
	// App, ID and CreatedMS identify the run.
	App       string
	ID        string
	CreatedMS int64
	// UpdatedMS orders changes of one run: the archive never lets an older
	// change overwrite a newer one.
	UpdatedMS int64
	// Status is the run's status after this change.
	Status Status
	// Event carries the fields known at this change: for RecordCreate url,
	// method, due; for RecordFinal everything (body included unless dropped),
	// or nil when the live store no longer had the event;
	// for RecordRequeue and a retry's RecordAttempt the next due time. Nil
	// for other attempts.
	Event *Event
	// Attempt is set for RecordAttempt and, when an attempt ended the run,
	// for RecordFinal.
	Attempt *Attempt
	// Seen is the live store's own, handed back to it with the record
	// (Outbox.AckOutbox): for a final record, the event as the store read
	// it when it made the record (redisstore: its stored value, when it
	// showed the run's end, so that acknowledging need not decode it
	// again). Others carry it along untouched.
	Seen string
}

// Archive is what the Scheduler reads from the archive database (see
// store/archive): events Redis no longer has, searches, and the
// dashboard's figures. The worker's archiver writes it (worker.ArchiveWriter).
type Archive interface {
	// Get returns the latest run of an identity with its attempt history, or
	// ErrNotFound.
	Get(ctx context.Context, app, id string) (*Event, error)
	// Search lists runs matching q, newest run first, with keyset pagination.
	Search(ctx context.Context, q SearchQuery) (SearchPage, error)
	// Counts returns the number of runs per status.
	Counts(ctx context.Context) (map[Status]int64, error)
	// PerMinute returns attempts and failed attempts per minute since a time.
	PerMinute(ctx context.Context, since time.Time) ([]MinuteStat, error)
}

// SearchQuery filters a search. Zero fields do not filter.
type SearchQuery struct {
	App    string
	Status Status
	// Statuses, when set, matches any of them (with Status, both must match).
	Statuses []Status
	// Q matches an event id prefix or a URL substring.
	Q string
	// From and To bound the due time (inclusive, exclusive).
	From, To time.Time
	// Limit bounds the page. Defaults to 50, at most 500.
	Limit int
	// Cursor continues a previous page (its NextCursor); opaque to clients.
	Cursor string
}

// matches reports whether a status passes the query's status filters.
func (q SearchQuery) matches(st Status) bool {
	if q.Status != "" && st != q.Status {
		return false
	}
	return len(q.Statuses) == 0 || slices.Contains(q.Statuses, st)
}

// Search limits.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
)

// SearchPage is one page of results.
type SearchPage struct {
	Events []*Event
	// NextCursor continues the search; empty on the last page.
	NextCursor string
}

// MinuteStat is one minute of the deliveries chart.
type MinuteStat struct {
	Minute     time.Time
	Deliveries int64
	Failures   int64
}
