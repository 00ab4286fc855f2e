package redisstore

import (
	"context"
	"log/slog"
	"time"
)

// WatchInterval is how often Watch reads the Redis servers' INFO to notice
// a restart.
const WatchInterval = 5 * time.Second

// RunIDs maps each Redis server's address to its run_id, which changes
// when the server restarts.
type RunIDs map[string]string

// Check runs the start-up checks of the Redis servers (every master of a
// cluster): maxmemory-policy must be noeviction, or it is an error unless
// allowEviction (then a warning); AOF off is worth a warning, and so is a
// cluster whose masters own the shards' slots unevenly. It returns
// the servers' run ids for Watch.
func (s *Store) Check(ctx context.Context, allowEviction bool, log *slog.Logger) (RunIDs, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, err := s.Nodes(cctx)
	if err != nil {
		return nil, err
	}
	if err := CheckNoEviction(nodes); err != nil {
		if !allowEviction {
			return nil, err
		}
		log.Warn("starting anyway (CASSATA_REDIS_ALLOW_EVICTION): " + err.Error())
	}
	if p, err := s.ShardPlacement(cctx); err != nil {
		log.Warn("reading the shards' placement on the cluster failed", "err", err)
	} else if w := placementWarning(s.cfg.Namespace, s.cfg.Shards, p); w != "" {
		log.Warn("redis cluster: uneven shards: " + w)
	}
	runIDs := make(RunIDs, len(nodes))
	for _, n := range nodes {
		runIDs[n.Addr] = n.RunID
		log.Info("redis server", "addr", n.Addr, "version", n.Version, "run_id", n.RunID,
			"maxmemory_policy", n.MaxmemoryPolicy, "aof", n.AOF)
		if !n.AOF {
			log.Warn("redis AOF is off: events acknowledged since the last snapshot are lost if Redis crashes; "+
				"set `appendonly yes` and `appendfsync everysec` (deploy/redis.conf)", "addr", n.Addr)
		}
	}
	return runIDs, nil
}

// Counter counts events; a prometheus.Counter is one.
type Counter interface{ Inc() }

// Watch notices restarts of the Redis servers (a new run_id) until ctx
// ends: it counts them in restarts, loads the scripts again at once rather
// than on the first NOSCRIPT, and checks the eviction policy again (a
// restarted server may run with another configuration). runIDs is what
// Check returned; Watch updates it.
func (s *Store) Watch(ctx context.Context, runIDs RunIDs, restarts Counter, log *slog.Logger) {
	t := time.NewTicker(WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, WatchInterval)
		nodes, err := s.Nodes(cctx)
		if err != nil {
			cancel()
			continue // unreachable: the API answers 503 and workers back off meanwhile
		}
		restarted := false
		for _, n := range nodes {
			if old, ok := runIDs[n.Addr]; ok && old != n.RunID {
				restarted = true
				restarts.Inc()
				log.Warn("redis restarted", "addr", n.Addr, "old_run_id", old, "run_id", n.RunID, "aof", n.AOF)
			}
			runIDs[n.Addr] = n.RunID
		}
		if restarted {
			if err := s.LoadScripts(cctx); err != nil {
				log.Warn("loading scripts after the restart failed; they load on first use", "err", err)
			}
			if err := CheckNoEviction(nodes); err != nil {
				log.Error("after the restart: " + err.Error())
			}
		}
		cancel()
	}
}
