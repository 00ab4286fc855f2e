package worker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// gatedDo is a batcher's do that records each batch and, while gate is
// set, blocks every batch until the gate is closed.
type gatedDo struct {
	mu      sync.Mutex
	batches [][]int
	gate    chan struct{}
	started chan int // the size of every batch as it starts
}

func newGatedDo() *gatedDo { return &gatedDo{started: make(chan int, 100)} }

func (g *gatedDo) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedDo) release() {
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
}

func (g *gatedDo) do(_ context.Context, in []int) []int {
	g.mu.Lock()
	g.batches = append(g.batches, slices.Clone(in))
	gate := g.gate
	g.mu.Unlock()
	g.started <- len(in)
	if gate != nil {
		<-gate
	}
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = v * 10
	}
	return out
}

func (g *gatedDo) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s []int
	for _, b := range g.batches {
		s = append(s, len(b))
	}
	return s
}

// callAsync calls b with v in a goroutine and delivers the output on the
// returned channel.
func callAsync(b *batcher[int, int], v int) <-chan int { return callAsyncUrgent(b, v, false) }

// callAsyncUrgent is callAsync with the input's urgency.
func callAsyncUrgent(b *batcher[int, int], v int, urgent bool) <-chan int {
	ch := make(chan int, 1)
	go func() {
		out, ok := b.call(context.Background(), v, urgent)
		if !ok {
			out = -1
		}
		ch <- out
	}()
	return ch
}

// heldBatch starts a batcher on a gatedDo (max 8, 4 in flight, no linger,
// stalled after stall), holds its batches and sends a first call, which is
// in flight when it returns.
func heldBatch(t *testing.T, stall time.Duration) (*gatedDo, *batcher[int, int], <-chan int) {
	t.Helper()
	g := newGatedDo()
	b := startBatcher(&batcher[int, int]{do: g.do, max: 8, parallel: 4, stall: stall, timeout: time.Minute})
	t.Cleanup(b.close)
	g.hold()
	first := callAsync(b, 1)
	if n := waitStarted(t, g); n != 1 {
		t.Fatalf("first batch has %d inputs, want 1", n)
	}
	return g, b, first
}

func waitStarted(t *testing.T, g *gatedDo) int {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no batch started")
		return 0
	}
}

func TestBatcherLoneCallGoesAtOnce(t *testing.T) {
	t.Parallel()
	g := newGatedDo()
	// Nothing in flight and no linger: sent at once, not after the stall.
	b := startBatcher(&batcher[int, int]{do: g.do, max: 8, parallel: 4, stall: time.Hour, timeout: time.Minute})
	defer b.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, ok := b.call(ctx, 7, false)
	if !ok || out != 70 {
		t.Fatalf("call = %d, %v; want 70, true (a lone call waited)", out, ok)
	}
}

// While a batch is in flight the calls that arrive wait for it and then go
// as one batch, not one round trip each (the old batcher sent each at once
// while fewer than parallel were in flight).
func TestBatcherGathersBehindABatchInFlight(t *testing.T) {
	t.Parallel()
	// Stalled only after a minute: on a busy machine the five calls may
	// take a while to arrive.
	g, b, first := heldBatch(t, time.Minute)
	var rest []<-chan int
	for v := 2; v <= 6; v++ {
		rest = append(rest, callAsync(b, v))
	}
	// Give the five calls time to reach the batcher: none may start a
	// batch of its own while the first is in flight (and not stalled).
	time.Sleep(200 * time.Millisecond)
	select {
	case n := <-g.started:
		t.Fatalf("a batch of %d started while the first was in flight", n)
	default:
	}
	g.release()
	if got := <-first; got != 10 {
		t.Errorf("first call = %d, want 10", got)
	}
	if n := waitStarted(t, g); n != 5 {
		t.Errorf("second batch has %d inputs, want the 5 gathered", n)
	}
	for i, ch := range rest {
		if got, want := <-ch, (i+2)*10; got != want {
			t.Errorf("call %d = %d, want %d", i+2, got, want)
		}
	}
	if s := g.sizes(); !slices.Equal(s, []int{1, 5}) {
		t.Errorf("batches %v, want [1 5]", s)
	}
}

// A batch in flight for longer than stallAfter (a node that stopped
// answering) no longer holds the next one back.
func TestBatcherStalledBatchLetsTheNextGo(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	g, b, first := heldBatch(t, stall)
	sent := time.Now()
	second := callAsync(b, 2)
	if n := waitStarted(t, g); n != 1 {
		t.Fatalf("second batch has %d inputs, want 1", n)
	}
	if d := time.Since(sent); d < stall/2 {
		t.Errorf("second batch started after %v, want it gathered for about the stall (%v)", d, stall)
	}
	g.release()
	if a, b := <-first, <-second; a != 10 || b != 20 {
		t.Errorf("calls = %d, %d; want 10, 20", a, b)
	}
}

// A full batch goes at once although another is in flight, and never more
// than parallel batches are.
func TestBatcherFullBatchAndParallelBound(t *testing.T) {
	t.Parallel()
	g := newGatedDo()
	const max, parallel = 2, 2
	// Never stalled: only a full batch goes while one is in flight.
	b := startBatcher(&batcher[int, int]{do: g.do, max: max, parallel: parallel, stall: time.Hour, timeout: time.Minute})
	defer b.close()
	g.hold()
	var outs []<-chan int
	outs = append(outs, callAsync(b, 1))
	waitStarted(t, g)
	for v := 2; v <= 7; v++ {
		outs = append(outs, callAsync(b, v))
	}
	// The next full batch (2 inputs) goes at once, the rest waits: two
	// batches are in flight.
	if n := waitStarted(t, g); n != max {
		t.Errorf("second batch has %d inputs, want %d", n, max)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case n := <-g.started:
		t.Fatalf("a third batch of %d started with %d in flight", n, parallel)
	default:
	}
	g.release()
	for i, ch := range outs {
		if got, want := <-ch, (i+1)*10; got != want {
			t.Errorf("call %d = %d, want %d", i+1, got, want)
		}
	}
	for _, n := range g.sizes() {
		if n > max {
			t.Errorf("batch of %d inputs, want at most %d", n, max)
		}
	}
}

// close returns only once the batches in flight are done and their callers
// served.
func TestBatcherCloseWaitsForBatchesInFlight(t *testing.T) {
	t.Parallel()
	g := newGatedDo()
	b := newBatcher(8, 4, 0, time.Second, g.do)
	g.hold()
	first := callAsync(b, 1)
	waitStarted(t, g)
	second := callAsync(b, 2)
	waitStarted(t, g) // after stallAfter: both in flight
	closed := make(chan struct{})
	go func() {
		b.close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned with two batches in flight")
	case <-time.After(stallAfter):
	}
	g.release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return")
	}
	if a, b := <-first, <-second; a != 10 || b != 20 {
		t.Errorf("calls = %d, %d; want 10, 20", a, b)
	}
}

// With a linger, a lone input waits for others to share its call, and the
// ones that come meanwhile go with it.
func TestBatcherLingersForMore(t *testing.T) {
	t.Parallel()
	g := newGatedDo()
	const linger = 500 * time.Millisecond
	b := newBatcher(8, 4, linger, time.Second, g.do)
	defer b.close()
	start := time.Now()
	var outs []<-chan int
	for v := 1; v <= 3; v++ {
		outs = append(outs, callAsync(b, v))
		time.Sleep(linger / 50)
	}
	if n := waitStarted(t, g); n != 3 {
		t.Errorf("batch of %d inputs, want the 3 that came within the linger", n)
	}
	if d := time.Since(start); d < linger*9/10 {
		t.Errorf("batch sent %v after the first input, want about the linger (%v)", d, linger)
	}
	for i, ch := range outs {
		if got, want := <-ch, (i+1)*10; got != want {
			t.Errorf("call %d = %d, want %d", i+1, got, want)
		}
	}
}

// An urgent input does not linger, and takes the lingering ones along.
func TestBatcherUrgentDoesNotLinger(t *testing.T) {
	t.Parallel()
	g := newGatedDo()
	b := startBatcher(&batcher[int, int]{do: g.do, max: 8, parallel: 4, linger: time.Hour, stall: time.Hour, timeout: time.Minute})
	defer b.close()
	lingering := callAsync(b, 1)
	time.Sleep(200 * time.Millisecond) // it reaches the batcher, and lingers
	start := time.Now()
	urgent := callAsyncUrgent(b, 2, true)
	if n := waitStarted(t, g); n != 2 {
		t.Errorf("batch of %d inputs, want the lingering one and the urgent one", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("urgent input sent after %v", d)
	}
	if a, u := <-lingering, <-urgent; a != 10 || u != 20 {
		t.Errorf("calls = %d, %d; want 10, 20", a, u)
	}
	// While a batch is in flight, an urgent input goes at once too.
	g.hold()
	first := callAsyncUrgent(b, 3, true)
	waitStarted(t, g)
	second := callAsyncUrgent(b, 4, true)
	waitStarted(t, g) // not after the stall (an hour)
	g.release()
	if a, u := <-first, <-second; a != 30 || u != 40 {
		t.Errorf("calls = %d, %d; want 30, 40", a, u)
	}
}

// Behind a batch stalled in flight (a Cluster node that stopped answering:
// up to the batcher's timeout) the later inputs go at once, not each after
// a stall measured from the batch before it, which came back.
func TestBatcherStalledBatchHoldsNothingBack(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	do := func(_ context.Context, in []int) []int {
		if slices.Contains(in, 0) {
			<-stuck
		}
		out := make([]int, len(in))
		for i, v := range in {
			out[i] = v * 10
		}
		return out
	}
	const stall = 200 * time.Millisecond
	b := startBatcher(&batcher[int, int]{do: do, max: 8, parallel: 4, stall: stall, timeout: time.Minute})
	defer b.close()
	defer close(stuck)
	go b.call(context.Background(), 0, false)
	time.Sleep(2 * stall) // the first batch has stalled
	const n = 10
	start := time.Now()
	for v := 1; v <= n; v++ {
		if out, ok := b.call(context.Background(), v, false); !ok || out != v*10 {
			t.Fatalf("call %d = %d, %v", v, out, ok)
		}
	}
	// Each waiting for the stall would take n × 200 ms.
	if d := time.Since(start); d > n*stall/2 {
		t.Errorf("%d calls one after another behind a stalled batch took %v, want each sent at once", n, d)
	}
}
