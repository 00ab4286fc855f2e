package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cassata/cassata/store/redisstore"
)

// redisWatchInterval is how often a process reads its Redis servers' INFO to
// notice a restart.
const redisWatchInterval = 5 * time.Second

// checkRedis runs the start-up checks of the Redis servers (every master of
// a cluster): maxmemory-policy must be noeviction, or the process refuses to
// start unless allowEviction; AOF off is worth a warning. It returns the
// servers' run ids for watchRedis.
func checkRedis(ctx context.Context, store *redisstore.Store, allowEviction bool, log *slog.Logger) (map[string]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, err := store.Nodes(cctx)
	if err != nil {
		return nil, err
	}
	if err := redisstore.CheckNoEviction(nodes); err != nil {
		if !allowEviction {
			return nil, err
		}
		log.Warn("starting anyway (CASSATA_REDIS_ALLOW_EVICTION): " + err.Error())
	}
	runIDs := make(map[string]string, len(nodes))
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

// watchRedis notices restarts of the Redis servers (a new run_id) until ctx
// ends: it counts them, loads the scripts again at once rather than on the
// first NOSCRIPT, and checks the eviction policy again (a restarted server
// may run with another configuration).
func watchRedis(ctx context.Context, store *redisstore.Store, runIDs map[string]string, restarts prometheus.Counter, log *slog.Logger) {
	t := time.NewTicker(redisWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, redisWatchInterval)
		nodes, err := store.Nodes(cctx)
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
			if err := store.LoadScripts(cctx); err != nil {
				log.Warn("loading scripts after the restart failed; they load on first use", "err", err)
			}
			if err := redisstore.CheckNoEviction(nodes); err != nil {
				log.Error("after the restart: " + err.Error())
			}
		}
		cancel()
	}
}
