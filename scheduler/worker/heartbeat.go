package worker

import (
	"context"
	"os"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// HeartbeatStore is what the heartbeat needs: record this worker alive,
// and forget it when it stops.
type HeartbeatStore interface {
	// Heartbeat records that a worker is alive at now (zero: the Redis
	// server's clock).
	Heartbeat(ctx context.Context, w scheduler.WorkerInfo, now time.Time) error
	// RemoveWorker forgets a worker that stopped cleanly, so the dashboard
	// does not list it and no peer waits for it to be judged dead.
	RemoveWorker(ctx context.Context, id string) error
}

// heartbeatRetry is how soon a failed heartbeat is tried again (at most
// HeartbeatInterval): the worker claims nothing until one succeeds.
const heartbeatRetry = time.Second

// heartbeatLoop reports the worker alive with its in-flight count. Every
// success is recorded in lastBeat and signalled on beat: the claim loop
// claims only while the last success is recent (heartbeatFresh).
func (w *Worker) heartbeatLoop(ctx context.Context) {
	host, _ := os.Hostname()
	beat := func() bool {
		sent := w.mono()
		hctx, cancel := context.WithTimeout(ctx, max(w.cfg.HeartbeatInterval, time.Second))
		err := w.store.Heartbeat(hctx, scheduler.WorkerInfo{
			ID: w.cfg.ID, Host: host, PID: os.Getpid(), Started: w.started,
			InFlight: w.InFlight(), Heartbeat: w.clock.Now(), DeadAfterMS: w.cfg.DeadAfter.Milliseconds(),
		}, w.now())
		cancel()
		if err != nil {
			w.beatingSince.Store(0)
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "err", err)
			}
			return false
		}
		if w.beatingSince.Load() == 0 {
			w.beatingSince.Store(w.clock.Now().UnixNano())
		}
		w.lastBeat.Store(int64(sent) + 1)
		select {
		case w.beat <- struct{}{}:
		default:
		}
		return true
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if beat() {
			t.Reset(w.cfg.HeartbeatInterval)
		} else {
			t.Reset(min(w.cfg.HeartbeatInterval, heartbeatRetry))
		}
	}
}

// leave removes the stopped worker from the workers list.
func (w *Worker) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.store.RemoveWorker(ctx, w.cfg.ID); err != nil {
		w.log.Warn("removing the stopped worker from the workers list failed; peers will judge it dead", "err", err)
	}
}
