package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// fakeFinishStore records every FinishMany call and answers each item by
// its attempt number: Held is false for odd attempts, and attempts that are
// multiples of 5 fail, with an error naming the attempt. A call holds until
// gate is closed (nil: answers at once); a call with an item for the event
// "slow" holds until slowGate is closed.
type fakeFinishStore struct {
	gate     chan struct{}
	slowGate chan struct{}

	inFlight atomic.Int64
	returned atomic.Int64 // calls that have returned

	mu    sync.Mutex
	calls [][]scheduler.FinishItem
}

func (f *fakeFinishStore) FinishMany(ctx context.Context, items []scheduler.FinishItem) []scheduler.FinishResult {
	f.mu.Lock()
	f.calls = append(f.calls, items)
	f.mu.Unlock()
	f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	defer f.returned.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	for _, it := range items {
		if it.Lease.ID == "slow" {
			<-f.slowGate
		}
	}
	res := make([]scheduler.FinishResult, len(items))
	for i, it := range items {
		res[i] = expectedResult(it.Lease.Attempt)
	}
	return res
}

func expectedResult(attempt int) scheduler.FinishResult {
	if attempt%5 == 0 {
		return scheduler.FinishResult{Err: fmt.Errorf("attempt %d: %w", attempt, scheduler.ErrUnavailable)}
	}
	return scheduler.FinishResult{Held: attempt%2 == 0}
}

func (f *fakeFinishStore) snapshot() [][]scheduler.FinishItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]scheduler.FinishItem(nil), f.calls...)
}

// release closes a gate once, whoever asks first: the test, or its
// deferred cleanup when it fails with round trips held (close would wait
// for them forever).
func release(gate chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

func finishItem(id string, attempt int) scheduler.FinishItem {
	return scheduler.FinishItem{Lease: scheduler.Lease{App: "a", ID: id, Worker: "w", Attempt: attempt}}
}

// pollUntil polls cond every 5ms until it holds or timeout passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkResult reports whether a caller got the answer for its own attempt.
func checkResult(t *testing.T, attempt int, held bool, err error) {
	t.Helper()
	want := expectedResult(attempt)
	if held != want.Held || (err == nil) != (want.Err == nil) {
		t.Errorf("attempt %d: held %v, err %v; want held %v, err %v", attempt, held, err, want.Held, want.Err)
		return
	}
	if err != nil && (err.Error() != want.Err.Error() || !errors.Is(err, scheduler.ErrUnavailable)) {
		t.Errorf("attempt %d: err %q, want %q (another caller's result?)", attempt, err, want.Err)
	}
}

// TestFinisherBatchesConcurrentOutcomes: many deliveries finishing at once
// are recorded in far fewer round trips than outcomes, no round trip
// carries more than maxFinishBatch, every outcome is recorded exactly once,
// and each caller gets the result of its own outcome, whatever batch and
// position it landed in.
func TestFinisherBatchesConcurrentOutcomes(t *testing.T) {
	t.Parallel()
	const n = 1000
	st := &fakeFinishStore{gate: make(chan struct{})}
	f := newFinisher(st)
	defer f.close()
	open := release(st.gate)
	defer open()

	var started atomic.Int64
	var wg sync.WaitGroup
	for attempt := 1; attempt <= n; attempt++ {
		wg.Go(func() {
			started.Add(1)
			held, err := f.finish(context.Background(), finishItem(fmt.Sprint("ev", attempt), attempt), false)
			checkResult(t, attempt, held, err)
		})
	}
	// Hold the round trips until every outcome is on its way, as when Redis
	// is slower than the deliveries finishing.
	pollUntil(t, 10*time.Second, "the finisher did not start finishParallel round trips", func() bool {
		return started.Load() == n && st.inFlight.Load() == finishParallel
	})
	// started counts goroutines before they hand their outcome over: on a
	// loaded machine some are still on their way. Give them time to queue,
	// or the batcher drains the queue faster than they arrive and the
	// bound below fails without anything being wrong.
	time.Sleep(200 * time.Millisecond)
	open()
	wg.Wait()

	calls := st.snapshot()
	seen := map[int]int{}
	for _, items := range calls {
		if len(items) < 1 || len(items) > maxFinishBatch {
			t.Errorf("a FinishMany call of %d items, want 1 to %d", len(items), maxFinishBatch)
		}
		for _, it := range items {
			seen[it.Lease.Attempt]++
		}
	}
	for attempt := 1; attempt <= n; attempt++ {
		if seen[attempt] != 1 {
			t.Errorf("attempt %d recorded %d times, want once", attempt, seen[attempt])
		}
	}
	// Without batching there would be n calls; with it, about
	// finishParallel + n/maxFinishBatch. The bound is loose on purpose.
	if len(calls) > n/10 {
		t.Errorf("%d outcomes took %d FinishMany calls, want far fewer (at most %d)", n, len(calls), n/10)
	}
	t.Logf("%d outcomes in %d FinishMany calls", n, len(calls))
}

// TestFinisherResultsRoutedToTheirCaller: outcomes handed over one at a
// time (each in a batch of its own) or all at once get their own results.
func TestFinisherResultsRoutedToTheirCaller(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		concurrent bool
	}{{"one at a time", false}, {"concurrently", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFinisher(&fakeFinishStore{})
			defer f.close()
			var wg sync.WaitGroup
			for attempt := 1; attempt <= 200; attempt++ {
				run := func() {
					held, err := f.finish(context.Background(), finishItem("ev", attempt), false)
					checkResult(t, attempt, held, err)
				}
				if tc.concurrent {
					wg.Go(run)
				} else {
					run()
				}
			}
			wg.Wait()
		})
	}
}

// TestFinisherSlowRoundTripDoesNotHoldUpOthers: while up to
// finishParallel-1 round trips hang (a Redis node that stopped answering),
// other outcomes are still recorded; the hung ones get their results once
// their round trips return.
func TestFinisherSlowRoundTripDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	st := &fakeFinishStore{slowGate: make(chan struct{})}
	f := newFinisher(st)
	defer f.close()
	unhang := release(st.slowGate)
	defer unhang()

	slowDone := make(chan struct{})
	var slowWG sync.WaitGroup
	for i := 1; i < finishParallel; i++ {
		attempt := 2 * i // held
		slowWG.Go(func() {
			held, err := f.finish(context.Background(), finishItem("slow", attempt), false)
			checkResult(t, attempt, held, err)
		})
		pollUntil(t, 5*time.Second, "the slow round trip did not start", func() bool {
			return st.inFlight.Load() == int64(i)
		})
	}
	go func() { slowWG.Wait(); close(slowDone) }()

	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		var wg sync.WaitGroup
		for attempt := 1; attempt <= 50; attempt++ {
			wg.Go(func() {
				held, err := f.finish(context.Background(), finishItem("fast", attempt), false)
				checkResult(t, attempt, held, err)
			})
		}
		wg.Wait()
	}()
	select {
	case <-fastDone:
	case <-time.After(10 * time.Second):
		t.Fatal("outcomes not recorded while other round trips hang")
	}
	select {
	case <-slowDone:
		t.Fatal("the hung round trips answered before they returned")
	default:
	}
	unhang()
	select {
	case <-slowDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the hung round trips' callers got no result after they returned")
	}
}

// TestFinisherCloseWaitsForInFlightRoundTrips: close, at the worker's
// shutdown, returns only once the outcomes already handed over are
// recorded, so none is lost with the process.
func TestFinisherCloseWaitsForInFlightRoundTrips(t *testing.T) {
	t.Parallel()
	st := &fakeFinishStore{gate: make(chan struct{})}
	f := newFinisher(st)
	open := release(st.gate)
	defer open() // should the test fail first, let the round trip end
	got := make(chan error, 1)
	go func() {
		held, err := f.finish(context.Background(), finishItem("ev", 2), false)
		if err == nil && !held {
			err = errors.New("held false, want true")
		}
		got <- err
	}()
	pollUntil(t, 5*time.Second, "the round trip did not start", func() bool { return st.inFlight.Load() == 1 })

	closed := make(chan struct{})
	go func() { f.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a round trip was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	open()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return once the round trip did")
	}
	if st.returned.Load() != 1 {
		t.Errorf("close returned before FinishMany did")
	}
	if err := <-got; err != nil {
		t.Errorf("the outcome handed over before close: %v", err)
	}
}

// TestFinisherCallerGivingUpBlocksNobody: a caller whose context ends
// while its round trip is in flight gets its context's error, and the
// finisher goes on recording the others' outcomes.
func TestFinisherCallerGivingUpBlocksNobody(t *testing.T) {
	t.Parallel()
	st := &fakeFinishStore{gate: make(chan struct{})}
	f := newFinisher(st)
	defer f.close()
	open := release(st.gate)
	defer open()
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := f.finish(ctx, finishItem("ev", 2), false)
		gaveUp <- err
	}()
	pollUntil(t, 5*time.Second, "the round trip did not start", func() bool { return st.inFlight.Load() == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
	}
	open() // the abandoned reply must not block the finisher
	for attempt := 3; attempt < 10; attempt++ {
		held, err := f.finish(context.Background(), finishItem("ev", attempt), false)
		checkResult(t, attempt, held, err)
	}
}
