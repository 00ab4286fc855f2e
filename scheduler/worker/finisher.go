package worker

import (
	"context"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// maxFinishBatch bounds the outcomes recorded in one round trip.
const maxFinishBatch = 128

// finishParallel bounds the finisher's round trips in flight.
const finishParallel = 4

// finishTimeout bounds one round trip of the finisher.
const finishTimeout = 10 * time.Second

// finishLinger is how long an outcome waits for others to share its round
// trip while none is in flight: under a steady load (1,000 deliveries/s)
// each outcome had a FinishMany of its own, and a few milliseconds gather
// several (make bench's steady workload: Redis CPU per delivery −17%,
// the worker's −14%). It delays only the outcome's recording (the event
// shows PROCESSING that much longer; its slot is taken that much longer),
// never a delivery; an outcome that something waits for goes at once
// (finish's urgent).
const finishLinger = 5 * time.Millisecond

// FinishStore is what the finisher needs: record outcomes.
type FinishStore interface {
	// FinishMany records many attempts' outcomes in one round trip; the
	// results are in order, each on its own. Held is false when the worker
	// no longer held the lease (only the history records the attempt).
	FinishMany(ctx context.Context, items []scheduler.FinishItem) []scheduler.FinishResult
}

// finisher records delivery outcomes for the worker's deliveries, many per
// round trip (batcher): each delivery hands its outcome over and waits for
// the answer, and waiting outcomes are recorded with one pipelined
// Store.FinishMany.
type finisher struct {
	b *batcher[scheduler.FinishItem, scheduler.FinishResult]
}

func newFinisher(store FinishStore) *finisher {
	return &finisher{b: newBatcher(maxFinishBatch, finishParallel, finishLinger, finishTimeout, store.FinishMany)}
}

// finish records one outcome, like Store.Finish. An urgent one (the next
// event of a flow key waits for its permit, released once it is recorded)
// is sent without lingering.
func (f *finisher) finish(ctx context.Context, it scheduler.FinishItem, urgent bool) (bool, error) {
	r, ok := f.b.call(ctx, it, urgent)
	if !ok {
		return false, ctx.Err()
	}
	return r.Held, r.Err
}

// close stops the finisher once no delivery will hand it an outcome.
func (f *finisher) close() { f.b.close() }
