package scheduler

import (
	"context"
	"os"
	"time"
)

// heartbeatLoop reports the worker alive with its in-flight count.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	host, _ := os.Hostname()
	beat := func() {
		err := w.store.Heartbeat(ctx, WorkerInfo{
			ID: w.cfg.ID, Host: host, PID: os.Getpid(), Started: w.started,
			InFlight: w.InFlight(), Heartbeat: time.Now(), DeadAfterMS: w.cfg.DeadAfter.Milliseconds(),
		}, w.now())
		switch {
		case err != nil:
			w.beatingSince.Store(0)
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "err", err)
			}
		case w.beatingSince.Load() == 0:
			w.beatingSince.Store(time.Now().UnixNano())
		}
	}
	beat()
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			beat()
		}
	}
}
