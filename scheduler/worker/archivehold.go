package worker

import (
	"time"

	"github.com/cassata/cassata/scheduler"
)

// The archiver holds creates back briefly so that a prompt delivery's
// create and final outcome are written as one row (ArchiverConfig.HoldCreates):
//
//	read:  create(e1) ─► held, not written, not acknowledged (still pending in the group)
//	       ...           (a later read, within the hold)
//	read:  final(e1)  ─► batch: final(e1) + create(e1) ─► Write merges them: one row
//	                     (or, the hold ran out: create(e1) alone, as without a hold)
//
// A held entry stays in the consumer group's pending list until the batch
// that writes it is committed and acknowledged, so a crash loses nothing:
// the entry is read again as pending after a restart, or taken over by
// another archiver after ClaimIdle.

// runKey names a run: the archive's row of an event.
type runKey struct {
	app, id string
	created int64
}

func runOf(r *scheduler.Record) runKey { return runKey{app: r.App, id: r.ID, created: r.CreatedMS} }

// heldCreate is a create entry waiting for another record of its run.
type heldCreate struct {
	rec      scheduler.Record
	deadline time.Time
	taken    bool // left the hold; dropped from entries at the next compact
}

// createHold is the archiver's set of held creates: at most one per run
// (any other record of the run releases it) and at most max in all.
type createHold struct {
	max     int
	entries []*heldCreate // in the order they were held
	byRun   map[runKey]*heldCreate
	taken   int           // entries taken but not yet compacted away
	free    []*heldCreate // compacted entries, for reuse
}

func newCreateHold(max int) *createHold {
	return &createHold{max: max, byRun: map[runKey]*heldCreate{}}
}

// len is the number of creates held.
func (h *createHold) len() int { return len(h.byRun) }

// full reports whether no more creates may be held.
func (h *createHold) full() bool { return len(h.byRun) >= h.max }

// holds reports whether a create of run k is held.
func (h *createHold) holds(k runKey) bool {
	_, ok := h.byRun[k]
	return ok
}

// add holds r until deadline. The caller checks full and holds first.
func (h *createHold) add(r scheduler.Record, deadline time.Time) {
	var e *heldCreate
	if n := len(h.free); n > 0 {
		e, h.free = h.free[n-1], h.free[:n-1]
		*e = heldCreate{rec: r, deadline: deadline}
	} else {
		e = &heldCreate{rec: r, deadline: deadline}
	}
	h.entries = append(h.entries, e)
	h.byRun[runOf(&r)] = e
}

// take releases the create held for run k, if any.
func (h *createHold) take(k runKey) (scheduler.Record, bool) {
	e, ok := h.byRun[k]
	if !ok {
		return scheduler.Record{}, false
	}
	h.drop(e)
	return e.rec, true
}

// expire makes the create held for run k due now: it is written by the
// next round (its batch had no room for it in this one).
func (h *createHold) expire(k runKey) {
	if e, ok := h.byRun[k]; ok {
		e.deadline = time.Time{}
	}
}

func (h *createHold) drop(e *heldCreate) {
	delete(h.byRun, runOf(&e.rec))
	e.taken = true
	h.taken++
}

// takeExpired appends to batch, up to limit records in all, the creates
// whose hold has run out at now, oldest first.
func (h *createHold) takeExpired(now time.Time, batch []scheduler.Record, limit int) []scheduler.Record {
	for _, e := range h.entries {
		if len(batch) >= limit {
			break
		}
		if !e.taken && !e.deadline.After(now) {
			h.drop(e)
			batch = append(batch, e.rec)
		}
	}
	return batch
}

// takeAll appends every held create to batch and empties the hold.
func (h *createHold) takeAll(batch []scheduler.Record) []scheduler.Record {
	for _, e := range h.entries {
		if !e.taken {
			batch = append(batch, e.rec)
		}
	}
	h.reset()
	return batch
}

// reset forgets every held create (they stay pending in the outbox).
func (h *createHold) reset() {
	for _, e := range h.entries {
		h.recycle(e)
	}
	clear(h.entries)
	h.entries = h.entries[:0]
	clear(h.byRun)
	h.taken = 0
}

// next returns the earliest deadline of the held creates.
func (h *createHold) next() (time.Time, bool) {
	var t time.Time
	found := false
	for _, e := range h.entries {
		if !e.taken && (!found || e.deadline.Before(t)) {
			t, found = e.deadline, true
		}
	}
	return t, found
}

// compact drops the entries taken since the last compact.
func (h *createHold) compact() {
	if h.taken == 0 {
		return
	}
	keep := h.entries[:0]
	for _, e := range h.entries {
		if e.taken {
			h.recycle(e)
			continue
		}
		keep = append(keep, e)
	}
	clear(h.entries[len(keep):])
	h.entries = keep
	h.taken = 0
}

// recycle keeps an entry no longer held for reuse, without its record (so
// that the record's event can be collected).
func (h *createHold) recycle(e *heldCreate) {
	*e = heldCreate{}
	h.free = append(h.free, e)
}
