package worker

import (
	"context"
	"sync"
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
// round trip: each delivery hands its outcome over and waits for the
// answer; the finisher takes whatever outcomes are waiting (never waiting
// for more, so a lone delivery is not delayed) and records them with one
// pipelined Store.FinishMany. Under load this turns a Redis round trip per
// delivery into one per batch.
type finisher struct {
	store FinishStore
	reqs  chan finishReq
	done  chan struct{}
}

type finishReq struct {
	item  scheduler.FinishItem
	reply chan scheduler.FinishResult // buffered: the finisher never blocks on a caller that gave up
}

func newFinisher(store FinishStore) *finisher {
	f := &finisher{store: store, reqs: make(chan finishReq), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *finisher) run() {
	defer close(f.done)
	// Up to finishParallel batches in flight: one slow round trip (a Redis
	// Cluster node that stopped answering) does not hold up the others.
	sem := make(chan struct{}, finishParallel)
	var wg sync.WaitGroup
	for first := range f.reqs {
		batch := []finishReq{first}
	more:
		for len(batch) < maxFinishBatch {
			select {
			case r, ok := <-f.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			items := make([]scheduler.FinishItem, len(batch))
			for i, r := range batch {
				items[i] = r.item
			}
			ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
			res := f.store.FinishMany(ctx, items)
			cancel()
			for i, r := range batch {
				r.reply <- res[i]
			}
		})
	}
	wg.Wait()
}

// finish records one outcome, like Store.Finish.
func (f *finisher) finish(ctx context.Context, it scheduler.FinishItem) (bool, error) {
	reply := make(chan scheduler.FinishResult, 1)
	select {
	case f.reqs <- finishReq{item: it, reply: reply}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.Held, r.Err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// close stops the finisher once no delivery will hand it an outcome.
func (f *finisher) close() {
	close(f.reqs)
	<-f.done
}
