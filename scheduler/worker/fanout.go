package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// Fan-out: what a worker does with a claimed topic message (an event of
// kind message, its "carrier"), instead of sending a request.
//
//	claim ──▶ plan (once) ──▶ create deliveries ──▶ look at their states ──┬─▶ final: finish the carrier
//	            │                (dedup by id)            │                 └─▶ else: recheck later
//	            └ SetPlan keeps the first plan            └ all_or_nothing: cancel, compensate
//
// Exactly once: the plan (which subscriptions matched, and each delivery's
// request) is recorded in the carrier under the lease before any delivery
// is created, and never replaced. Deliveries have ids derived from the
// message and the subscription, so when the worker dies half-way the next
// claim (after the lease expires) follows the same plan and creating a
// delivery that exists is refused by schedule.lua's dedup.
//
// Following: while deliveries are under way, the carrier goes back to `due`
// (recheck.lua, no attempt counted) to be looked at again later; a delivery
// that reaches a final status nudges it (nudge.lua), so the message's next
// step (complete, cancel the pending siblings, compensate) happens at once.
// One worker at a time holds the carrier's lease, so those steps never race.

// FanoutStore is what fan-out needs from the live store.
type FanoutStore interface {
	SetPlan(ctx context.Context, l scheduler.Lease, plan []byte, now time.Time) ([]byte, error)
	Recheck(ctx context.Context, l scheduler.Lease, at, now time.Time) error
	Nudge(ctx context.Context, parent string, now time.Time) error
	CreateMany(ctx context.Context, evs []*scheduler.Event, now time.Time) ([]scheduler.CreateResult, error)
	GetMany(ctx context.Context, ids []scheduler.Ident) ([]*scheduler.Event, error)
	Cancel(ctx context.Context, app, id string, now time.Time) (*scheduler.Event, error)
}

// Subscribers gives the active subscriptions of a topic (topic.Subscriptions).
type Subscribers interface {
	ForTopic(ctx context.Context, app, topicName string) ([]*topic.Subscription, error)
}

// Fanout configures the fan-out of topic messages. A worker without one
// leaves messages to workers that have one.
type Fanout struct {
	Store       FanoutStore
	Subscribers Subscribers
	// Filters caches compiled filters. Defaults to a cache of
	// DefaultFilterCache filters.
	Filters *topic.FilterCache
	// Events reads deliveries Redis no longer has (the archive); may be nil.
	Events topic.EventReader
}

// DefaultFilterCache is the number of compiled filters a worker keeps.
const DefaultFilterCache = 10_000

// Recheck bounds: a message under way is looked at again after a tenth of
// its age, within these bounds (a delivery's final status nudges it sooner).
const (
	MinRecheck = 500 * time.Millisecond
	MaxRecheck = 30 * time.Second
)

// errNoFanout: a message was claimed by a worker configured without fan-out.
var errNoFanout = errors.New("this worker has no fan-out configured")

// follow takes a claimed message one step: plan and create its deliveries,
// act on their states, and finish it or hand it back to look again.
func (w *Worker) follow(ctx context.Context, ev *scheduler.Event, lease scheduler.Lease) error {
	f := w.cfg.Fanout
	if f == nil || f.Store == nil || f.Subscribers == nil {
		return errNoFanout
	}
	now := w.now()
	clock := w.clock.Now().UTC().Truncate(time.Millisecond)
	msgID := strings.TrimPrefix(ev.ID, topic.CarrierPrefix)

	plan, fresh, err := w.plan(ctx, f, ev, msgID, lease, now)
	if err != nil {
		return err
	}
	// The deliveries are created when the plan is recorded. A later claim
	// creates those that are missing: an earlier claim may have died
	// half-way (its lease expired), or its step failed after recording the
	// plan (recheck.lua hands the message back without counting the
	// attempt). Missing means not live in Redis and, through f.Events, not
	// in the archive either (Redis forgets a finished delivery some time
	// after archiving it); a worker without that reader recreates only
	// right after a lease expired. Creating one that exists changes nothing.
	var missing []*scheduler.Event
	var deliveries, rollbacks []topic.Delivery
	if fresh {
		for _, p := range plan.Deliveries {
			missing = append(missing, topic.DeliveryEvent(ev, msgID, p, clock))
		}
	} else {
		var err error
		if deliveries, rollbacks, err = topic.States(ctx, f.Store, nil, ev, plan); err != nil {
			return err
		}
		for i, d := range deliveries {
			if d.Status != "" {
				continue
			}
			if f.Events != nil {
				_, err := f.Events.Get(ctx, ev.App, d.EventID)
				if err == nil {
					continue // archived, and forgotten by Redis
				}
				if !errors.Is(err, scheduler.ErrNotFound) {
					return err
				}
			} else if ev.Attempts <= 1 {
				continue
			}
			missing = append(missing, topic.DeliveryEvent(ev, msgID, plan.Deliveries[i], clock))
		}
	}
	if err := w.createAll(ctx, f, missing); err != nil {
		return err
	}
	if !topic.Followed(ev) {
		// Done once fanned out: the message's status is derived from its
		// deliveries whenever it is read.
		return w.finishCarrier(ctx, ev, lease, now, clock, fmt.Sprintf("fanned out: %d deliveries", len(plan.Deliveries)))
	}
	if fresh || len(missing) > 0 || slices.ContainsFunc(deliveries, func(d topic.Delivery) bool { return d.Status == "" }) {
		var err error
		if deliveries, rollbacks, err = topic.States(ctx, f.Store, f.Events, ev, plan); err != nil {
			return err
		}
	}
	if ev.Mode == topic.ModeAllOrNothing && slices.ContainsFunc(deliveries, func(d topic.Delivery) bool { return topic.DeliveryFailed(d.Status) }) {
		acted, err := w.rollBack(ctx, f, ev, msgID, plan, deliveries, rollbacks, clock)
		if err != nil {
			return err
		}
		if acted {
			if deliveries, rollbacks, err = topic.States(ctx, f.Store, f.Events, ev, plan); err != nil {
				return err
			}
		}
	}
	status := topic.DeriveStatus(ev, plan, deliveries, rollbacks)
	if status.Final() {
		return w.finishCarrier(ctx, ev, lease, now, clock,
			fmt.Sprintf("message %s: %d deliveries, %d compensations", status, len(deliveries), len(rollbacks)))
	}
	wait := min(max(clock.Sub(ev.CreatedAt)/10, MinRecheck), MaxRecheck)
	return f.Store.Recheck(context.WithoutCancel(ctx), lease, clock.Add(wait), now)
}

// finishCarrier records a message's carrier COMPLETED: nothing more to do.
func (w *Worker) finishCarrier(ctx context.Context, ev *scheduler.Event, lease scheduler.Lease, now, clock time.Time, what string) error {
	out := scheduler.Outcome{Status: scheduler.StatusCompleted, Attempt: scheduler.Attempt{
		Attempt: ev.Attempts, Worker: w.cfg.ID, At: clock.UnixMilli(), Response: what,
	}}
	_, err := w.fin.finish(context.WithoutCancel(ctx), scheduler.FinishItem{Lease: lease, Outcome: out, Now: now}, w.slotsScarce())
	return err
}

// plan returns the message's plan: the one recorded, or a new one made
// from the topic's subscriptions now and recorded (fresh).
func (w *Worker) plan(ctx context.Context, f *Fanout, ev *scheduler.Event, msgID string, lease scheduler.Lease, now time.Time) (*topic.Plan, bool, error) {
	if p, err := topic.DecodePlan(ev.Plan); err != nil || p != nil {
		return p, false, err
	}
	subs, err := f.Subscribers.ForTopic(ctx, ev.App, ev.Topic)
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(subs, func(a, b *topic.Subscription) int { return strings.Compare(a.ID, b.ID) })
	data := topic.MessageData(ev.App, ev.Topic, msgID, ev.Method, ev.Headers, ev.Body)
	p := &topic.Plan{Deliveries: []topic.Planned{}}
	for _, s := range subs {
		if s.Filter != "" {
			flt, err := f.Filters.Get(ev.App+"/"+s.ID, s.UpdatedAt.UnixNano(), s.Filter)
			if err == nil {
				var ok bool
				ok, err = flt.Match(data)
				if err == nil && !ok {
					continue
				}
			}
			if err != nil {
				p.FilterErrors = append(p.FilterErrors, topic.FilterError{Subscription: s.ID, Error: err.Error()})
				continue
			}
		}
		p.Deliveries = append(p.Deliveries, topic.Planned{
			Subscription: s.ID, URL: s.URL, Method: s.Method, Headers: s.Headers, RollbackURL: s.RollbackURL,
			MaxAttempts: s.MaxAttempts, TimeoutMS: s.Timeout.Milliseconds(),
			MinBackoffMS: s.MinBackoff.Milliseconds(), MaxBackoffMS: s.MaxBackoff.Milliseconds(),
			Callback: s.CallbackURL, FailureCallback: s.FailureCallbackURL, FlowKey: s.FlowKey,
		})
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, false, err
	}
	kept, err := f.Store.SetPlan(ctx, lease, b, now)
	if err != nil {
		return nil, false, err
	}
	if string(kept) != string(b) {
		p, err := topic.DecodePlan(kept)
		return p, false, err
	}
	w.log.Debug("message fanned out", "app", ev.App, "message", msgID, "topic", ev.Topic,
		"deliveries", len(p.Deliveries), "filter_errors", len(p.FilterErrors))
	return p, true, nil
}

// createAll creates events in batches; one that exists already is fine.
func (w *Worker) createAll(ctx context.Context, f *Fanout, evs []*scheduler.Event) error {
	const batch = 500
	for len(evs) > 0 {
		n := min(batch, len(evs))
		res, err := f.Store.CreateMany(ctx, evs[:n], time.Time{})
		if err != nil {
			return err
		}
		for i, r := range res {
			if r.Err != nil {
				return fmt.Errorf("create %s/%s: %w", evs[i].App, evs[i].ID, r.Err)
			}
		}
		evs = evs[n:]
	}
	return nil
}

// rollBack takes an all_or_nothing message with a failed delivery a step
// towards ROLLED_BACK: it cancels the deliveries not sent yet and
// compensates the completed ones that have a rollback_url. It reports
// whether it changed anything. Both steps are idempotent.
func (w *Worker) rollBack(ctx context.Context, f *Fanout, ev *scheduler.Event, msgID string, plan *topic.Plan,
	deliveries, rollbacks []topic.Delivery, now time.Time) (bool, error) {
	acted := false
	compensated := make(map[string]bool, len(rollbacks))
	for _, r := range rollbacks {
		compensated[r.Subscription] = true
	}
	var comps []*scheduler.Event
	for i, d := range deliveries {
		switch {
		case d.Status == scheduler.StatusPending:
			_, err := f.Store.Cancel(ctx, ev.App, d.EventID, time.Time{})
			var se *scheduler.StatusError
			switch {
			case err == nil:
				acted = true
			case errors.As(err, &se), errors.Is(err, scheduler.ErrNotFound):
				// Claimed meanwhile: compensated once it completes.
			default:
				return acted, err
			}
		case d.Status == scheduler.StatusCompleted && plan.Deliveries[i].RollbackURL != "" && !compensated[d.Subscription]:
			comps = append(comps, topic.CompensationEvent(ev, msgID, plan.Deliveries[i], now))
		}
	}
	if len(comps) > 0 {
		if err := w.createAll(ctx, f, comps); err != nil {
			return acted, err
		}
		acted = true
		w.log.Info("message rolling back: compensations created", "app", ev.App, "message", msgID, "compensations", len(comps))
	}
	return acted, nil
}

// nudgeParent tells a delivery's message that the delivery reached a final
// status; a lost nudge only delays the message until its next recheck.
func (w *Worker) nudgeParent(ctx context.Context, ev *scheduler.Event, now time.Time) {
	f := w.cfg.Fanout
	if ev.Parent == "" || f == nil || f.Store == nil {
		return
	}
	if err := f.Store.Nudge(ctx, ev.Parent, now); err != nil {
		w.log.Warn("nudge message failed; it moves on at its next recheck", "message", ev.Parent, "err", err, slog.String("event", ev.ID))
	}
}

// processMessage follows a claimed message (follow). When a step fails
// (Redis unavailable, a worker without fan-out), the message is handed back
// to look at again shortly; when even that fails, its lease expires and
// any worker's reaper recovers it.
func (w *Worker) processMessage(ctx context.Context, ev *scheduler.Event, lease scheduler.Lease, rec *claimRec) {
	err := w.follow(ctx, ev, lease)
	if err != nil && !errors.Is(err, scheduler.ErrLeaseLost) {
		w.log.Warn("message step failed; looking again shortly", "app", ev.App, "id", ev.ID, "err", err)
		if f := w.cfg.Fanout; f != nil && f.Store != nil {
			clock := w.clock.Now()
			if rerr := f.Store.Recheck(context.WithoutCancel(ctx), lease, clock.Add(MinRecheck*2), w.now()); rerr == nil {
				err = nil
			}
		}
	}
	w.untrack(rec, err == nil)
}
