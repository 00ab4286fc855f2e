package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

// A topic message is an event of kind "message" (codec.go): it waits in
// `due`, is claimed and leased like any event, and its worker fans it out
// (scheduler/worker fanout.go) instead of sending a request. The methods
// here are the few steps a message has that a request has not: recording
// its fan-out plan once, being handed back to be looked at again while its
// deliveries are under way, being nudged when one of them ends, and an
// index per application for listing.
//
// The index: <ns>:{<ns>:msg:<app>}:idx, a sorted set of message ids scored
// by creation time in ms, one key per application (its own slot), and
// <ns>:msgapps, the set of applications that published messages. Entries
// whose message Redis no longer has are dropped when a listing meets them.

// SetPlan records the fan-out plan of a claimed message unless one was
// recorded before, and returns the plan to follow: plan when it was
// recorded, else the earlier one. scheduler.ErrLeaseLost when l is not held.
func (s *Store) SetPlan(ctx context.Context, l scheduler.Lease, plan []byte, now time.Time) ([]byte, error) {
	m := member(l.App, l.ID)
	sh := s.k.shard(m)
	res, err := luascripts.MsgPlan.Run(ctx, s.rdb, []string{s.k.ev(sh, m)},
		l.Worker, l.Attempt, plan, ms(now)).Slice()
	if err != nil {
		return nil, unavailable("set plan", err)
	}
	if len(res) < 2 {
		return nil, scheduler.ErrLeaseLost
	}
	p, _ := res[1].(string)
	return []byte(p), nil
}

// Recheck hands a claimed message back to `due` at `at`, without counting
// an attempt. scheduler.ErrLeaseLost when l is not held.
func (s *Store) Recheck(ctx context.Context, l scheduler.Lease, at, now time.Time) error {
	m := member(l.App, l.ID)
	sh := s.k.shard(m)
	n, err := luascripts.Recheck.Run(ctx, s.rdb,
		[]string{s.k.ev(sh, m), s.k.lease(sh), s.k.due(sh)},
		m, l.Worker, l.Attempt, ms(at), ms(now), s.wakeChannel(sh), sh, s.cfg.WakeHorizon.Milliseconds()).Int64()
	if err != nil {
		return unavailable("recheck", err)
	}
	if n == 0 {
		return scheduler.ErrLeaseLost
	}
	return nil
}

// Nudge makes the PENDING event parent ("<app>/<id>") due now when it is
// due later; anything else is left alone.
func (s *Store) Nudge(ctx context.Context, parent string, now time.Time) error {
	sh := s.k.shard(parent)
	err := luascripts.Nudge.Run(ctx, s.rdb, []string{s.k.due(sh)},
		parent, ms(now), s.wakeChannel(sh), sh, s.cfg.WakeHorizon.Milliseconds()).Err()
	return unavailable("nudge", err)
}

// IndexMessage adds a message to its application's index, and the
// application to <ns>:msgapps when this process has not done so within
// msgAppsRefresh: that set is one global key (one Redis Cluster slot), so
// adding to it for every message would put a command of every publish on
// one master, whatever the number of masters.
func (s *Store) IndexMessage(ctx context.Context, app, id string, created time.Time) error {
	idx := redis.Z{Score: float64(created.UnixMilli()), Member: id}
	if !s.msgApps.due(app, created) {
		return unavailable("index message", s.rdb.ZAdd(ctx, s.k.msgIndex(app), idx).Err())
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.k.msgApps(), app)
		p.ZAdd(ctx, s.k.msgIndex(app), idx)
		return nil
	})
	if err == nil {
		s.msgApps.added(app, created)
	}
	return unavailable("index message", err)
}

// msgAppsRefresh is how long a process trusts its own earlier SADD of an
// application to <ns>:msgapps. Adding again after it bounds how long a
// set lost with Redis' data (a restart without persistence) lacks an
// application that publishes again: MessageApps lists across applications
// for the admin UI, nothing delivers from it.
const msgAppsRefresh = time.Minute

// appsAdded remembers when this process last added each application to a
// global set. The zero value is ready to use.
type appsAdded struct {
	mu sync.Mutex
	at map[string]time.Time
}

// due reports whether app should be added (again) at now.
func (a *appsAdded) due(app string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[app]
	return !ok || now.Sub(at) >= msgAppsRefresh || now.Before(at)
}

// added records that app was added at now.
func (a *appsAdded) added(app string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil || len(a.at) >= 100_000 { // a bound, not a policy: applications are few
		a.at = map[string]time.Time{}
	}
	a.at[app] = now
}

// MessageIDs lists an application's message ids, newest first, starting
// after the id `after` (empty: from the newest), at most limit of them.
func (s *Store) MessageIDs(ctx context.Context, app, after string, limit int) ([]string, error) {
	key := s.k.msgIndex(app)
	start := int64(0)
	if after != "" {
		r, err := s.rdb.ZRevRank(ctx, key, after).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, nil
		case err != nil:
			return nil, unavailable("list messages", err)
		}
		start = r + 1
	}
	ids, err := s.rdb.ZRevRange(ctx, key, start, start+int64(limit)-1).Result()
	return ids, unavailable("list messages", err)
}

// ForgetMessages drops ids from an application's index (their messages
// are gone from Redis).
func (s *Store) ForgetMessages(ctx context.Context, app string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	return unavailable("forget messages", s.rdb.ZRem(ctx, s.k.msgIndex(app), members...).Err())
}

// MessageApps lists the applications that published messages.
func (s *Store) MessageApps(ctx context.Context) ([]string, error) {
	apps, err := s.rdb.SMembers(ctx, s.k.msgApps()).Result()
	return apps, unavailable("message apps", err)
}
