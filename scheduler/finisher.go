package scheduler

import (
	"context"
	"time"
)

// maxFinishBatch bounds the outcomes recorded in one round trip.
const maxFinishBatch = 128

// finishTimeout bounds one round trip of the finisher.
const finishTimeout = 10 * time.Second

// finisher records delivery outcomes for the worker's deliveries, many per
// round trip: each delivery hands its outcome over and waits for the
// answer; the finisher takes whatever outcomes are waiting (never waiting
// for more, so a lone delivery is not delayed) and records them with one
// pipelined Store.FinishMany. Under load this turns a Redis round trip per
// delivery into one per batch.
type finisher struct {
	store Store
	reqs  chan finishReq
	done  chan struct{}
}

type finishReq struct {
	item  FinishItem
	reply chan FinishResult // buffered: the finisher never blocks on a caller that gave up
}

func newFinisher(store Store) *finisher {
	f := &finisher{store: store, reqs: make(chan finishReq), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *finisher) run() {
	defer close(f.done)
	batch := make([]finishReq, 0, maxFinishBatch)
	items := make([]FinishItem, 0, maxFinishBatch)
	for first := range f.reqs {
		batch = append(batch[:0], first)
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
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.item)
		}
		ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		res := f.store.FinishMany(ctx, items)
		cancel()
		for i, r := range batch {
			r.reply <- res[i]
		}
	}
}

// finish records one outcome, like Store.Finish.
func (f *finisher) finish(ctx context.Context, it FinishItem) (bool, error) {
	reply := make(chan FinishResult, 1)
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
