package worker

import (
	"context"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// ReapStore is what the reaper needs: recover expired leases, and end the
// leases of workers that stopped heartbeating.
type ReapStore interface {
	// Shards is the number of shards.
	Shards() int
	// Reap recovers up to limit events of a shard whose lease expired.
	Reap(ctx context.Context, shard, limit, defaultMaxAttempts int, now time.Time) (int, error)
	// DeadWorkers lists the workers whose last heartbeat is older than
	// deadAfter at now (zero: the Redis server's clock).
	DeadWorkers(ctx context.Context, deadAfter time.Duration, now time.Time) ([]string, error)
	// RecoverWorker ends the leases a dead worker holds, so Reap gives its
	// events back, and forgets the worker unless it beat again.
	RecoverWorker(ctx context.Context, id string, deadAfter time.Duration, now time.Time) (int, error)
	// Workers lists the workers whose last heartbeat is newer than since
	// (zero: all).
	Workers(ctx context.Context, since time.Time) ([]scheduler.WorkerInfo, error)
}

// reapLimit bounds events recovered per shard per call, so one call never blocks Redis for long.
const reapLimit = 500

// reapLoop recovers expired leases of every shard, every ReapInterval. Every
// worker runs it; the script is atomic, so concurrent reapers are harmless.
func (w *Worker) reapLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReapInterval)
	defer t.Stop()
	var lastDeadCheck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := w.clock.Now(); now.Sub(lastDeadCheck) >= w.cfg.HeartbeatInterval {
			lastDeadCheck = now
			w.recoverDeadWorkers(ctx)
		}
		for sh := range w.store.Shards() {
			for {
				n, err := w.store.Reap(ctx, sh, reapLimit, w.cfg.Policy.MaxAttempts, w.now())
				if err != nil {
					if ctx.Err() == nil {
						w.log.Warn("reap failed", "shard", sh, "err", err)
					}
					break
				}
				if n > 0 {
					w.log.Info("recovered events with expired leases", "shard", sh, "count", n)
					if w.cfg.Metrics != nil {
						w.cfg.Metrics.Reaped.Add(float64(n))
					}
				}
				if n < reapLimit {
					break
				}
			}
		}
	}
}

// recoverDeadWorkers ends the leases of the workers that stopped beating
// for DeadAfter (crashed, partitioned or paused), so this round of reaping
// gives their events back without waiting for the visibility timeout. A
// worker that was only slow keeps running: the lease check refuses its
// late outcomes and its next heartbeat lists it again.
//
// Only a worker whose own heartbeats have succeeded for DeadAfter judges
// others: after a Redis outage every heartbeat in Redis is old, and the
// others must get the chance to beat again before they count as dead.
func (w *Worker) recoverDeadWorkers(ctx context.Context) {
	if since := w.beatingSince.Load(); since == 0 || w.clock.Now().Sub(time.Unix(0, since)) < w.cfg.DeadAfter {
		return
	}
	ids, err := w.store.DeadWorkers(ctx, w.cfg.DeadAfter, w.now())
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("dead worker check failed", "err", err)
		}
		return
	}
	if len(ids) == 0 {
		return
	}
	// A worker configured with a longer DeadAfter (it may beat less often)
	// is judged by its own: read what each one advertises.
	advertised := map[string]time.Duration{}
	if infos, err := w.store.Workers(ctx, time.Time{}); err == nil {
		for _, info := range infos {
			advertised[info.ID] = time.Duration(info.DeadAfterMS) * time.Millisecond
		}
	} else {
		if ctx.Err() == nil {
			w.log.Warn("dead worker check failed", "err", err)
		}
		return
	}
	var longer map[time.Duration]map[string]bool // DeadAfter → the workers dead by it
	for _, id := range ids {
		if id == w.cfg.ID {
			continue // this worker's own heartbeat lags (Redis was away): it is alive
		}
		deadAfter := max(w.cfg.DeadAfter, advertised[id])
		if deadAfter > w.cfg.DeadAfter {
			if longer == nil {
				longer = map[time.Duration]map[string]bool{}
			}
			if longer[deadAfter] == nil {
				dead, err := w.store.DeadWorkers(ctx, deadAfter, w.now())
				if err != nil {
					return
				}
				longer[deadAfter] = map[string]bool{}
				for _, d := range dead {
					longer[deadAfter][d] = true
				}
			}
			if !longer[deadAfter][id] {
				continue // silent for less than its own DeadAfter
			}
		}
		n, err := w.store.RecoverWorker(ctx, id, deadAfter, w.now())
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("recovering a dead worker's events failed", "dead_worker", id, "err", err)
			}
			return
		}
		w.log.Warn("worker stopped heartbeating; its events go back to due", "dead_worker", id,
			"silent_for_more_than", deadAfter, "leases_ended", n)
	}
}
