package worker

import (
	"context"
	"sync"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

// FlowGate is the flow control a worker applies to the events it claims
// (API.md §9, scheduler/flow; store/redisstore implements it). Pauses need
// nothing here: claim.lua parks a paused application's or key's events.
type FlowGate interface {
	// AcquireFlows asks each event's flow key for a permit, in one round
	// trip; a permit not extended ends lifetime after now.
	AcquireFlows(ctx context.Context, reqs []flow.Acquire, lifetime time.Duration, now time.Time) []flow.Answer
	// Park hands a claimed event its key held back to PENDING without using
	// its attempt, due at until at the latest; false when the lease was lost.
	Park(ctx context.Context, l scheduler.Lease, until, now time.Time) (bool, error)
	// Unpark makes a parked event due again at due.
	Unpark(ctx context.Context, app, id string, due, now time.Time) error
	// PumpFlows releases permits and grants the keys' held events permits
	// as far as the limits allow, making them due again.
	PumpFlows(ctx context.Context, reqs []flow.Pump, now time.Time) []flow.Pumped
	// ExtendFlow pushes a permit's deadline lifetime from now (zero: the
	// store's clock).
	ExtendFlow(ctx context.Context, id flow.ID, eventID string, lifetime time.Duration, now time.Time) error
	// FlowIDs lists the keys with a record.
	FlowIDs(ctx context.Context) ([]flow.ID, error)
}

// Batches and timings of the flow gate.
const (
	maxFlowBatch = 128
	flowParallel = 4
	flowTimeout  = 5 * time.Second
	// parkFor is how long a held event stays parked at most. Whoever frees
	// a permit makes the oldest held event due at once; this is the safety
	// net should that process die in between.
	parkFor = 2 * time.Minute
	// flowSweep is how often the gate pumps every key with a record: keys
	// whose permits a dead worker held come back to life this way.
	flowSweep = 2 * time.Second
	// minFlowWake is the least time before the pump loop pumps a key again.
	minFlowWake = 5 * time.Millisecond
)

// flowGate applies FlowGate for one worker: permits are asked for and
// released in batches, and a timer pumps keys when their next rate slot or
// permit deadline comes.
type flowGate struct {
	w    *Worker
	gate FlowGate
	acq  *batcher[flow.Acquire, flow.Answer]
	pump *batcher[flow.Pump, flow.Pumped]

	mu    sync.Mutex
	wakes map[flow.ID]time.Time // when to pump each key next
	kick  chan struct{}
}

func newFlowGate(w *Worker, g FlowGate) *flowGate {
	f := &flowGate{w: w, gate: g, wakes: map[flow.ID]time.Time{}, kick: make(chan struct{}, 1)}
	f.acq = newBatcher(maxFlowBatch, flowParallel, 0, flowTimeout, func(ctx context.Context, in []flow.Acquire) []flow.Answer {
		return g.AcquireFlows(ctx, in, w.cfg.Visibility, w.now())
	})
	f.pump = newBatcher(maxFlowBatch, flowParallel, 0, flowTimeout, func(ctx context.Context, in []flow.Pump) []flow.Pumped {
		return g.PumpFlows(ctx, in, w.now())
	})
	return f
}

func (f *flowGate) close() {
	f.acq.close()
	f.pump.close()
}

// admit asks ev's flow key whether ev may go now. It returns the key when
// ev holds a permit (to release after the attempt), and ok false when ev
// must not be delivered now: held and parked (PENDING, no attempt used),
// or left to its lease.
func (f *flowGate) admit(ctx context.Context, ev *scheduler.Event, l scheduler.Lease, rec *claimRec) (permit *flow.ID, ok bool) {
	id := flow.ID{App: ev.App, Key: ev.FlowKey}
	req := flow.Acquire{ID: id, EventID: ev.ID, Due: ev.DueAt}
	ans, called := f.acq.call(ctx, req, false)
	if called && ans.Err == nil {
		switch ans.Verdict {
		case flow.Unlimited:
			return nil, true
		case flow.Granted:
			return &id, true
		}
	}
	// Held, or the key could not be asked (Redis unreachable): back to
	// PENDING without an attempt. When held, whoever frees a permit makes
	// it due again; else it comes back shortly by itself.
	until := parkFor
	if !called || ans.Err != nil {
		until = time.Second
		f.w.log.Warn("asking the flow key for a permit failed: the event waits", "app", ev.App, "id", ev.ID,
			"flow_key", ev.FlowKey, "err", ans.Err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flowTimeout)
	defer cancel()
	parked, err := f.gate.Park(pctx, l, f.w.clock.Now().Add(until), f.w.now())
	f.w.untrack(rec, err == nil)
	if err != nil || !parked {
		if err != nil {
			f.w.log.Warn("handing back a held event failed; it is recovered after its lease", "app", ev.App, "id", ev.ID, "err", err)
		}
		return nil, false
	}
	if until != parkFor {
		return nil, false
	}
	f.arm(id, ans.Wake)
	// A permit freed while this worker was parking the event may have been
	// granted to it then (its pump could not make a PROCESSING event due):
	// look again, now that it is parked.
	again, called := f.acq.call(pctx, req, false)
	if called && again.Err == nil && again.Verdict != flow.Held {
		if err := f.gate.Unpark(pctx, ev.App, ev.ID, ev.DueAt, f.w.now()); err != nil {
			f.w.log.Warn("making a granted event due failed; it comes back after its park", "app", ev.App, "id", ev.ID, "err", err)
		}
	}
	return nil, false
}

// release ends ev's permit after its attempt and lets the key's oldest held
// events go, as far as its limits allow.
func (f *flowGate) release(ctx context.Context, id flow.ID, eventID string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flowTimeout)
	defer cancel()
	res, ok := f.pump.call(rctx, flow.Pump{ID: id, Release: eventID}, false)
	if !ok || res.Err != nil {
		f.w.log.Warn("releasing a flow permit failed; it ends at its deadline", "app", id.App, "flow_key", id.Key, "err", res.Err)
		return
	}
	f.arm(id, res.Wake)
}

// extend pushes a permit's deadline out with its event's lease.
func (f *flowGate) extend(ctx context.Context, id flow.ID, eventID string) {
	if err := f.gate.ExtendFlow(ctx, id, eventID, f.w.cfg.Visibility, f.w.now()); err != nil {
		f.w.log.Warn("extending a flow permit failed", "app", id.App, "flow_key", id.Key, "err", err)
	}
}

// arm makes the pump loop pump key id at wake (zero: nothing to do).
func (f *flowGate) arm(id flow.ID, wake time.Time) {
	if wake.IsZero() {
		return
	}
	// Wake times are on the Redis server's clock: one that has passed on
	// this worker's clock is looked at shortly, not in a tight loop.
	if soon := f.w.clock.Now().Add(minFlowWake); wake.Before(soon) {
		wake = soon
	}
	f.mu.Lock()
	if cur, ok := f.wakes[id]; !ok || wake.Before(cur) {
		f.wakes[id] = wake
	}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// loop pumps keys when their wake times come, and every key with a record
// every flowSweep, until ctx ends.
func (f *flowGate) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	nextSweep := f.w.clock.Now()
	for {
		now := f.w.clock.Now()
		var ids []flow.ID
		f.mu.Lock()
		next := nextSweep
		for id, at := range f.wakes {
			if !at.After(now) {
				ids = append(ids, id)
				delete(f.wakes, id)
			} else if at.Before(next) {
				next = at
			}
		}
		f.mu.Unlock()
		if !now.Before(nextSweep) {
			sctx, cancel := context.WithTimeout(ctx, flowTimeout)
			all, err := f.gate.FlowIDs(sctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				f.w.log.Warn("listing flow keys failed", "err", err)
			}
			ids = append(ids, all...)
			nextSweep = now.Add(flowSweep)
			if nextSweep.Before(next) {
				next = nextSweep
			}
		}
		if len(ids) > 0 {
			pctx, cancel := context.WithTimeout(ctx, flowTimeout)
			reqs := make([]flow.Pump, len(ids))
			for i, id := range ids {
				reqs[i] = flow.Pump{ID: id}
			}
			for i, res := range f.gate.PumpFlows(pctx, reqs, f.w.now()) {
				if res.Err == nil {
					f.arm(ids[i], res.Wake)
				}
			}
			cancel()
			continue // pumping took time, and may have armed sooner wakes
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}
