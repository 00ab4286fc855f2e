package scheduler

import (
	"context"
	"time"
)

// reapLimit bounds events recovered per shard per call, so one call never blocks Redis for long.
const reapLimit = 500

// reapLoop recovers expired leases of every shard, every ReapInterval. Every
// worker runs it; the script is atomic, so concurrent reapers are harmless.
func (w *Worker) reapLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
