package worker

import (
	"context"
	"sync"
	"time"
)

// batcher runs many callers' requests in few round trips: each caller
// hands its input over and waits for its output; the batcher takes
// whatever inputs are waiting (never waiting for more, so a lone caller is
// not delayed) and runs them with one call of do, with up to parallel
// batches in flight, so one slow round trip (a Redis Cluster node that
// stopped answering) does not hold up the others. Under load this turns a
// round trip per caller into one per batch.
type batcher[In, Out any] struct {
	do       func(ctx context.Context, in []In) []Out
	max      int
	parallel int
	timeout  time.Duration
	reqs     chan batchReq[In, Out]
	done     chan struct{}
}

type batchReq[In, Out any] struct {
	in    In
	reply chan Out // buffered: the batcher never blocks on a caller that gave up
}

func newBatcher[In, Out any](max, parallel int, timeout time.Duration, do func(context.Context, []In) []Out) *batcher[In, Out] {
	b := &batcher[In, Out]{do: do, max: max, parallel: parallel, timeout: timeout,
		reqs: make(chan batchReq[In, Out]), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher[In, Out]) run() {
	defer close(b.done)
	sem := make(chan struct{}, b.parallel)
	var wg sync.WaitGroup
	for first := range b.reqs {
		batch := []batchReq[In, Out]{first}
	more:
		for len(batch) < b.max {
			select {
			case r, ok := <-b.reqs:
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
			in := make([]In, len(batch))
			for i, r := range batch {
				in[i] = r.in
			}
			ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
			out := b.do(ctx, in)
			cancel()
			for i, r := range batch {
				r.reply <- out[i]
			}
		})
	}
	wg.Wait()
}

// call runs one request; ok is false when ctx ended first.
func (b *batcher[In, Out]) call(ctx context.Context, in In) (out Out, ok bool) {
	reply := make(chan Out, 1)
	select {
	case b.reqs <- batchReq[In, Out]{in: in, reply: reply}:
	case <-ctx.Done():
		return out, false
	}
	select {
	case out = <-reply:
		return out, true
	case <-ctx.Done():
		return out, false
	}
}

// close stops the batcher once no caller will hand it a request.
func (b *batcher[In, Out]) close() {
	close(b.reqs)
	<-b.done
}
