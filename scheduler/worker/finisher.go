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
	return &finisher{b: newBatcher(maxFinishBatch, finishParallel, finishTimeout, store.FinishMany)}
}

// finish records one outcome, like Store.Finish.
func (f *finisher) finish(ctx context.Context, it scheduler.FinishItem) (bool, error) {
	r, ok := f.b.call(ctx, it)
	if !ok {
		return false, ctx.Err()
	}
	return r.Held, r.Err
}

// close stops the finisher once no delivery will hand it an outcome.
func (f *finisher) close() { f.b.close() }
