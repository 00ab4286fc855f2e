package worker

import (
	"context"
	"slices"
	"sync"
	"time"
)

// batcher runs many callers' requests in few round trips: each caller
// hands its input over and waits for its output. While no batch is in
// flight the batcher sends what is waiting once the oldest input has
// waited linger (at once with no linger, or when an input is urgent); while
// one is, it gathers the inputs that arrive until that batch returns, so
// under load a batch grows with the round trip instead of most callers
// having one of their own. A call's fixed cost dwarfs an input's: Redis
// spends ~51 µs on a FinishMany of one outcome and ~12 µs an outcome on one
// of 20 (the script's set-up, an outbox entry per call, reading the request
// and writing the reply; redisstore's BenchmarkFinishBatch), and more in a
// busy process, where every round trip also wakes Redis. A full batch, an
// urgent input, or a batch in flight for longer than stallAfter (a Redis
// Cluster node that stopped answering) lets the next one go at once, with
// up to parallel batches in flight, so one slow round trip does not hold up
// the others for long. Once closed, it sends what waits at once.
type batcher[In, Out any] struct {
	do       func(ctx context.Context, in []In) []Out
	max      int
	parallel int
	linger   time.Duration
	stall    time.Duration // stallAfter, but in tests
	timeout  time.Duration
	reqs     chan batchReq[In, Out]
	done     chan struct{}
}

// stallAfter is how long a batch may be in flight before the batcher
// stops gathering behind it and sends the next (batcher): well above a
// loaded Redis's round trip for a full batch (a few milliseconds), well
// below the batchers' timeouts (seconds).
const stallAfter = 20 * time.Millisecond

type batchReq[In, Out any] struct {
	in     In
	urgent bool      // sent without lingering
	at     time.Time // when the batcher took it
	reply  chan Out  // buffered: the batcher never blocks on a caller that gave up
}

// newBatcher returns a batcher of up to max inputs a call of do, parallel
// calls in flight, each with timeout, lingering linger (0: none) for more
// inputs while none is in flight.
func newBatcher[In, Out any](max, parallel int, linger, timeout time.Duration, do func(context.Context, []In) []Out) *batcher[In, Out] {
	return startBatcher(&batcher[In, Out]{do: do, max: max, parallel: parallel, linger: linger,
		stall: stallAfter, timeout: timeout})
}

// startBatcher starts b, whose do, max, parallel, linger, stall and timeout
// are set.
func startBatcher[In, Out any](b *batcher[In, Out]) *batcher[In, Out] {
	b.reqs, b.done = make(chan batchReq[In, Out]), make(chan struct{})
	go b.run()
	return b
}

func (b *batcher[In, Out]) run() {
	defer close(b.done)
	var (
		wg      sync.WaitGroup
		waiting []batchReq[In, Out]
		urgent  int         // urgent inputs in waiting
		sentAt  []time.Time // when each batch in flight was sent
		reqs    = b.reqs    // nil once closed: the loop ends when nothing is waiting
		ended   = make(chan time.Time, b.parallel)
		timer   = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	// wait is how long the batch waiting may still wait (<= 0: send it now),
	// given the batches in flight.
	wait := func() time.Duration {
		switch {
		case len(waiting) >= b.max || reqs == nil:
			return 0
		case len(sentAt) > 0:
			if urgent > 0 {
				return 0
			}
			// Gather behind the batches in flight until the newest has
			// been in flight for the stall (one that came back does not
			// count: a stalled batch alone holds nothing back).
			return b.stall - time.Since(slices.MaxFunc(sentAt, time.Time.Compare))
		case urgent > 0:
			return 0
		default:
			return b.linger - time.Since(waiting[0].at)
		}
	}
	take := func(in []batchReq[In, Out], r batchReq[In, Out]) []batchReq[In, Out] {
		r.at = time.Now()
		if r.urgent {
			urgent++
		}
		return append(in, r)
	}
	for reqs != nil || len(waiting) > 0 || len(sentAt) > 0 {
		for len(waiting) > 0 && len(sentAt) < b.parallel && wait() <= 0 {
			n := min(len(waiting), b.max)
			batch := waiting[:n:n]
			waiting = waiting[n:]
			if len(waiting) == 0 {
				waiting = nil // the next batch gets an array of its own
			}
			for _, r := range batch {
				if r.urgent {
					urgent--
				}
			}
			at := time.Now()
			sentAt = append(sentAt, at)
			wg.Go(func() {
				defer func() { ended <- at }()
				b.send(batch)
			})
		}
		var timeUp <-chan time.Time
		if len(waiting) > 0 && len(sentAt) < b.parallel {
			timer.Reset(wait())
			timeUp = timer.C
		}
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			waiting = take(waiting, r)
			// Whatever else is waiting joins without blocking.
		more:
			for len(waiting) < b.max {
				select {
				case r, ok := <-reqs:
					if !ok {
						reqs = nil
						break more
					}
					waiting = take(waiting, r)
				default:
					break more
				}
			}
		case at := <-ended:
			// One entry: two batches may have been sent at the same instant.
			i := slices.IndexFunc(sentAt, at.Equal)
			sentAt = slices.Delete(sentAt, i, i+1)
		case <-timeUp:
		}
	}
	wg.Wait()
}

// send runs one batch and hands each caller its output.
func (b *batcher[In, Out]) send(batch []batchReq[In, Out]) {
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
}

// call runs one request; ok is false when ctx ended first. An urgent one
// is sent without lingering.
func (b *batcher[In, Out]) call(ctx context.Context, in In, urgent bool) (out Out, ok bool) {
	reply := make(chan Out, 1)
	select {
	case b.reqs <- batchReq[In, Out]{in: in, urgent: urgent, reply: reply}:
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
