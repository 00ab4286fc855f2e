package worker

import (
	"context"
	"errors"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// Recurrence keeps schedules' chains of occurrences (schedule.Schedules).
type Recurrence interface {
	// AdvanceMany moves the schedules of claimed occurrences on to their
	// next occurrences and makes sure those events exist, in a few round
	// trips for all of them; the results are in order.
	AdvanceMany(ctx context.Context, occurrences []scheduler.Ident) []schedule.AdvanceResult
}

// Batches of the advancer: the occurrences due at one instant (a minute's
// cron schedules) are chained a batch per few round trips.
const (
	maxAdvanceBatch = 128
	advanceParallel = 4
	advanceTimeout  = 10 * time.Second
)

// advanceTries bounds the attempts at one Advance: a failure is Redis
// being unreachable, which recording the outcome would run into too.
const advanceTries = 4

// chain runs Advance for a claimed occurrence while its request is being
// delivered, and returns a function that waits for it: the outcome is
// recorded only once the next occurrence exists, so a worker killed before
// that leaves the claim to be repeated (by the reaper, after the lease)
// and no occurrence is ever lost. For other events it returns nil.
func (w *Worker) chain(ctx context.Context, ev *scheduler.Event, rec *claimRec) (wait func() error) {
	if ev.Kind != scheduler.KindOccurrence {
		return nil
	}
	if w.adv == nil { // no Recurrence configured
		w.log.Error("claimed a schedule's occurrence without recurrence configured: its schedule stops here",
			"app", ev.App, "id", ev.ID)
		return nil
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for try := 0; try < advanceTries; try++ {
			res, ok := w.adv.call(ctx, scheduler.Ident{App: ev.App, ID: ev.ID}, false)
			if !ok {
				err = ctx.Err()
				break
			}
			err = res.Err
			if err == nil {
				if res.Verdict == schedule.Stale {
					w.log.Debug("occurrence of a changed, paused or deleted schedule: nothing follows from it",
						"app", ev.App, "id", ev.ID)
				}
				break
			}
			if ctx.Err() != nil || w.leaseLeft(rec) <= 0 || !errors.Is(err, scheduler.ErrUnavailable) {
				break
			}
			sleep(ctx, time.Duration(100*(try+1))*time.Millisecond)
		}
		done <- err
	}()
	return func() error { return <-done }
}
