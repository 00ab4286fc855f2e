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
	// Advance moves the schedule of a claimed occurrence on to its next
	// occurrence and makes sure that one's event exists.
	Advance(ctx context.Context, app, eventID string) (schedule.Verdict, error)
}

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
	r := w.cfg.Recurrence
	if r == nil {
		w.log.Error("claimed a schedule's occurrence without recurrence configured: its schedule stops here",
			"app", ev.App, "id", ev.ID)
		return nil
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for try := 0; try < advanceTries; try++ {
			var v schedule.Verdict
			v, err = r.Advance(ctx, ev.App, ev.ID)
			if err == nil {
				if v == schedule.Stale {
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
