package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

// Heartbeat implements scheduler.Store. The heartbeat's time in the workers
// zset is the Redis server's (heartbeat.lua) unless now is set (tests), so
// a worker with a skewed clock is neither taken for dead nor kept alive by
// it; w.Heartbeat, the worker's own clock, is only shown.
func (s *Store) Heartbeat(ctx context.Context, w scheduler.WorkerInfo, now time.Time) error {
	info, err := json.Marshal(w)
	if err != nil {
		return err
	}
	if err := luascripts.Heartbeat.Run(ctx, s.rdb, []string{s.k.workers()}, w.ID, ms(now)).Err(); err != nil {
		return unavailable("heartbeat", err)
	}
	return unavailable("heartbeat", s.rdb.HSet(ctx, s.k.workerInfo(), w.ID, info).Err())
}

// RemoveWorker deletes a worker's heartbeat (at graceful shutdown).
func (s *Store) RemoveWorker(ctx context.Context, id string) error {
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, s.k.workers(), id)
	pipe.HDel(ctx, s.k.workerInfo(), id)
	_, err := pipe.Exec(ctx)
	return unavailable("remove worker", err)
}

// Workers lists the workers whose heartbeat is newer than since.
func (s *Store) Workers(ctx context.Context, since time.Time) ([]scheduler.WorkerInfo, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.workers(), &redis.ZRangeBy{Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil || len(ids) == 0 {
		return nil, unavailable("workers", err)
	}
	vals, err := s.rdb.HMGet(ctx, s.k.workerInfo(), ids...).Result()
	if err != nil {
		return nil, unavailable("workers", err)
	}
	out := make([]scheduler.WorkerInfo, 0, len(ids))
	for i, v := range vals {
		w := scheduler.WorkerInfo{ID: ids[i]}
		if str, ok := v.(string); ok {
			_ = json.Unmarshal([]byte(str), &w)
		}
		out = append(out, w)
	}
	return out, nil
}

// deadWorkersLimit bounds the dead workers handled in one call.
const deadWorkersLimit = 100

// DeadWorkers implements scheduler.Store: the workers whose last heartbeat,
// on the Redis server's clock (now zero) or now, is older than deadAfter.
func (s *Store) DeadWorkers(ctx context.Context, deadAfter time.Duration, now time.Time) ([]string, error) {
	ids, err := luascripts.DeadWorkers.Run(ctx, s.rdb, []string{s.k.workers()},
		ms(now), deadAfter.Milliseconds(), deadWorkersLimit).StringSlice()
	return ids, unavailable("dead workers", err)
}

// RecoverWorker implements scheduler.Store: it ends the leases the dead
// worker id holds in every shard (the reaper then gives those events back)
// and forgets the worker, unless it beat again meanwhile. It returns the
// number of leases ended.
func (s *Store) RecoverWorker(ctx context.Context, id string, deadAfter time.Duration, now time.Time) (int, error) {
	total := 0
	for sh := range s.cfg.Shards {
		n, err := luascripts.ExpireWorker.Run(ctx, s.rdb, []string{s.k.lease(sh)}, ms(now), s.k.evPrefix(sh), id).Int()
		if err != nil {
			return total, unavailable("recover worker", err)
		}
		total += n
	}
	gone, err := luascripts.ForgetWorker.Run(ctx, s.rdb, []string{s.k.workers()}, id, ms(now), deadAfter.Milliseconds()).Int()
	if err != nil {
		return total, unavailable("recover worker", err)
	}
	if gone == 1 {
		// Its claim records, and the processing lists a worker of an
		// earlier release kept: nothing reads them once it is forgotten.
		pipe := s.rdb.Pipeline()
		pipe.HDel(ctx, s.k.workerInfo(), id)
		for sh := range s.cfg.Shards {
			pipe.Del(ctx, s.k.claims(sh, id))
			pipe.Del(ctx, s.k.proc(sh, id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return total, unavailable("recover worker", err)
		}
	}
	return total, nil
}

// GiveBackOrphans implements scheduler.Store: one giveback.lua call per
// shard, pipelined (per node, for a cluster), so the whole check is one
// round trip. A call that met NOSCRIPT (a restart or SCRIPT FLUSH in
// between) runs again on its own; the script only acts on what it finds,
// so running it again is harmless.
func (s *Store) GiveBackOrphans(ctx context.Context, worker string, holding [][]string, grace time.Duration, now time.Time) (int, error) {
	if len(holding) != s.cfg.Shards {
		return 0, fmt.Errorf("give back orphans: %d shards of holdings, the namespace has %d", len(holding), s.cfg.Shards)
	}
	type call struct {
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	calls := make([]call, s.cfg.Shards)
	pipe := s.rdb.Pipeline()
	for sh := range s.cfg.Shards {
		args := make([]any, 0, 6+len(holding[sh]))
		args = append(args, ms(now), grace.Milliseconds(), s.k.evPrefix(sh), worker, s.wakeChannel(sh), sh)
		for _, m := range holding[sh] {
			args = append(args, m)
		}
		keys := []string{s.k.claims(sh, worker), s.k.lease(sh), s.k.due(sh)}
		calls[sh] = call{keys: keys, args: args, cmd: luascripts.GiveBack.EvalSha(ctx, pipe, keys, args...)}
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	total := 0
	var firstErr error
	for sh, c := range calls {
		n, err := c.cmd.Int()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			n, err = luascripts.GiveBack.Run(ctx, s.rdb, c.keys, c.args...).Int()
		}
		if err != nil {
			if firstErr == nil {
				firstErr = unavailable(fmt.Sprintf("give back orphans of shard %d", sh), err)
			}
			continue
		}
		total += n
	}
	return total, firstErr
}
