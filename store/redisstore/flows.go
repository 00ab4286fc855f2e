package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

// Flow control (API.md §9; the layout is in keys.go, the design in
// scheduler/flow). Each script runs in one slot: the flow key's
// (flowacquire.lua, flowpump.lua) or an event's shard (claim.lua, park.lua,
// unpark.lua, unpause.lua). A step that spans both is ordered so that a
// process dying between them loses nothing: a held event is first queued
// in its key, then parked with a deadline after which it comes back by
// itself; a granted one holds its permit before it is made due again.

const (
	// grantLifetime is the deadline of a permit granted to a held event:
	// time enough to be claimed, after which the claim extends it.
	grantLifetime = 30 * time.Second
	// pumpMax bounds the grants of one pump call.
	pumpMax = 256
	// unpauseBatch bounds the events one unpause.lua call moves.
	unpauseBatch = 1000
)

// pauseField names a pause in the shards' pause tables (claim.lua).
func appPauseField(app string) string       { return "a:" + app }
func flowPauseField(app, key string) string { return "f:" + app + "/" + key }

func (s *Store) flowKeys(app, key string) []string {
	return []string{s.k.flow(app, key), s.k.flowRun(app, key), s.k.flowQ(app, key)}
}

// PutFlow implements flow.Store.
func (s *Store) PutFlow(ctx context.Context, app, key string, l flow.Limits) (*flow.State, error) {
	fk := s.k.flow(app, key)
	set := map[string]any{}
	var del []string
	if l.Rate > 0 {
		set["r"] = strconv.FormatFloat(l.Rate, 'g', -1, 64)
	} else {
		del = append(del, "r")
	}
	if l.Parallelism > 0 {
		set["p"] = l.Parallelism
	} else {
		del = append(del, "p")
	}
	if l.Paused {
		set["z"] = 1
	} else {
		del = append(del, "z")
	}
	if err := s.rdb.SAdd(ctx, s.k.flows(), app+"/"+key).Err(); err != nil {
		return nil, unavailable("put flow", err)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(set) > 0 {
			p.HSet(ctx, fk, set)
		}
		if len(del) > 0 {
			p.HDel(ctx, fk, del...)
		}
		p.HSetNX(ctx, fk, "tat", 0) // the record exists even with no limit at all
		return nil
	})
	if err != nil {
		return nil, unavailable("put flow", err)
	}
	field := flowPauseField(app, key)
	if l.Paused {
		if err := s.pauseShards(ctx, field); err != nil {
			return nil, err
		}
	} else {
		if err := s.unpauseShards(ctx, field); err != nil {
			return nil, err
		}
		if err := s.pumpAll(ctx, app, key); err != nil {
			return nil, err
		}
	}
	return s.ReadFlow(ctx, app, key)
}

// pumpAll grants a key's held events what its limits allow now, in as
// many pump calls as that takes (a raised limit, a resume, a delete).
func (s *Store) pumpAll(ctx context.Context, app, key string) error {
	for {
		res := s.PumpFlows(ctx, []flow.Pump{{ID: flow.ID{App: app, Key: key}}}, time.Time{})
		if res[0].Err != nil {
			return res[0].Err
		}
		if res[0].Granted < pumpMax {
			return nil
		}
	}
}

// pauseShards sets a pause in every shard's pause table.
func (s *Store) pauseShards(ctx context.Context, field string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range s.cfg.Shards {
			p.HSet(ctx, s.k.paused(sh), field, 1)
		}
		return nil
	})
	return unavailable("pause", err)
}

// unpauseShards ends a pause in every shard and moves the events it parked
// back to due.
func (s *Store) unpauseShards(ctx context.Context, field string) error {
	todo := make([]int, s.cfg.Shards)
	for i := range todo {
		todo[i] = i
	}
	for len(todo) > 0 {
		calls := make([]scriptCall, len(todo))
		for i, sh := range todo {
			calls[i] = scriptCall{keys: []string{s.k.paused(sh), s.k.due(sh), s.k.park(sh, field)},
				args: []any{field, unpauseBatch, s.k.evPrefix(sh), s.wakeChannel(sh), sh}}
		}
		var more []int
		for i, c := range s.runMany(ctx, luascripts.Unpause, calls) {
			n, err := c.Int64()
			if err != nil {
				return unavailable("resume", err)
			}
			if n > 0 {
				more = append(more, todo[i])
			}
		}
		todo = more
	}
	return nil
}

// parkedCount is the number of events parked under a pause field, over
// every shard.
func (s *Store) parkedCount(ctx context.Context, field string) (int, error) {
	cmds := make([]*redis.IntCmd, s.cfg.Shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range s.cfg.Shards {
			cmds[sh] = p.ZCard(ctx, s.k.park(sh, field))
		}
		return nil
	})
	if err != nil {
		return 0, unavailable("count parked", err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// ReadFlow implements flow.Store.
func (s *Store) ReadFlow(ctx context.Context, app, key string) (*flow.State, error) {
	var cfg *redis.MapStringStringCmd
	var run, held *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cfg = p.HGetAll(ctx, s.k.flow(app, key))
		run = p.ZCard(ctx, s.k.flowRun(app, key)) // expired ones go at the next pump (flowSweep)
		held = p.ZCard(ctx, s.k.flowQ(app, key))
		return nil
	})
	if err != nil {
		return nil, unavailable("read flow", err)
	}
	if len(cfg.Val()) == 0 {
		return nil, fmt.Errorf("flow %s/%s: %w", app, key, scheduler.ErrNotFound)
	}
	parked, err := s.parkedCount(ctx, flowPauseField(app, key))
	if err != nil {
		return nil, err
	}
	st := flowState(app, key, cfg.Val())
	st.InFlight = int(run.Val())
	st.Held = int(held.Val()) + parked
	return st, nil
}

func flowState(app, key string, m map[string]string) *flow.State {
	st := &flow.State{App: app, Key: key}
	st.Rate, _ = strconv.ParseFloat(m["r"], 64)
	st.Parallelism, _ = strconv.Atoi(m["p"])
	st.Paused = m["z"] == "1"
	return st
}

// DeleteFlow implements flow.Store.
func (s *Store) DeleteFlow(ctx context.Context, app, key string) (*flow.State, error) {
	st, err := s.ReadFlow(ctx, app, key)
	if err != nil {
		return nil, err
	}
	// Without limits the pump grants every held event: let them all go,
	// then forget the key.
	if err := s.rdb.HDel(ctx, s.k.flow(app, key), "r", "p", "z").Err(); err != nil {
		return nil, unavailable("delete flow", err)
	}
	if err := s.unpauseShards(ctx, flowPauseField(app, key)); err != nil {
		return nil, err
	}
	if err := s.pumpAll(ctx, app, key); err != nil {
		return nil, err
	}
	if err := s.rdb.Del(ctx, s.flowKeys(app, key)...).Err(); err != nil {
		return nil, unavailable("delete flow", err)
	}
	if err := s.rdb.SRem(ctx, s.k.flows(), app+"/"+key).Err(); err != nil {
		return nil, unavailable("delete flow", err)
	}
	return st, nil
}

// FlowIDs returns every key with a record.
func (s *Store) FlowIDs(ctx context.Context) ([]flow.ID, error) {
	all, err := s.rdb.SMembers(ctx, s.k.flows()).Result()
	if err != nil {
		return nil, unavailable("list flows", err)
	}
	ids := make([]flow.ID, 0, len(all))
	for _, m := range all {
		if app, key, ok := strings.Cut(m, "/"); ok {
			ids = append(ids, flow.ID{App: app, Key: key})
		}
	}
	slices.SortFunc(ids, func(a, b flow.ID) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return ids, nil
}

// ListFlows implements flow.Store.
func (s *Store) ListFlows(ctx context.Context, app string) ([]*flow.State, error) {
	ids, err := s.FlowIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*flow.State, 0, len(ids))
	for _, id := range ids {
		if app != "" && id.App != app {
			continue
		}
		st, err := s.ReadFlow(ctx, id.App, id.Key)
		if errors.Is(err, scheduler.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// SetAppPaused implements flow.Store.
func (s *Store) SetAppPaused(ctx context.Context, app string, paused bool) (*flow.AppPause, error) {
	field := appPauseField(app)
	if paused {
		if err := s.rdb.HSetNX(ctx, s.k.pausedApps(), app, time.Now().UnixMilli()).Err(); err != nil {
			return nil, unavailable("pause app", err)
		}
		if err := s.pauseShards(ctx, field); err != nil {
			return nil, err
		}
	} else {
		if err := s.unpauseShards(ctx, field); err != nil {
			return nil, err
		}
		if err := s.rdb.HDel(ctx, s.k.pausedApps(), app).Err(); err != nil {
			return nil, unavailable("resume app", err)
		}
	}
	return s.AppPaused(ctx, app)
}

// AppPaused implements flow.Store.
func (s *Store) AppPaused(ctx context.Context, app string) (*flow.AppPause, error) {
	ok, err := s.rdb.HExists(ctx, s.k.pausedApps(), app).Result()
	if err != nil {
		return nil, unavailable("read app pause", err)
	}
	held, err := s.parkedCount(ctx, appPauseField(app))
	if err != nil {
		return nil, err
	}
	return &flow.AppPause{App: app, Paused: ok, Held: held}, nil
}

// PausedApps implements flow.Store.
func (s *Store) PausedApps(ctx context.Context) ([]*flow.AppPause, error) {
	apps, err := s.rdb.HKeys(ctx, s.k.pausedApps()).Result()
	if err != nil {
		return nil, unavailable("list paused apps", err)
	}
	slices.Sort(apps)
	out := make([]*flow.AppPause, 0, len(apps))
	for _, app := range apps {
		p, err := s.AppPaused(ctx, app)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// AcquireFlows asks each request's flow key for a permit (flowacquire.lua),
// in one round trip; lifetime is the permit's deadline from now.
func (s *Store) AcquireFlows(ctx context.Context, reqs []flow.Acquire, lifetime time.Duration, now time.Time) []flow.Answer {
	out := make([]flow.Answer, len(reqs))
	// In due order, so that of the events of one key claimed together the
	// older ones get the permits.
	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return reqs[a].Due.Compare(reqs[b].Due) })
	calls := make([]scriptCall, len(reqs))
	for j, i := range order {
		r := reqs[i]
		calls[j] = scriptCall{keys: s.flowKeys(r.App, r.Key),
			args: []any{member(r.App, r.EventID), r.Due.UnixMilli(), ms(now), lifetime.Milliseconds()}}
	}
	for j, c := range s.runMany(ctx, luascripts.FlowAcquire, calls) {
		i := order[j]
		v, err := c.Int64Slice()
		if err != nil || len(v) != 2 {
			out[i].Err = unavailable("acquire flow permit", cmp.Or(err, errShortReply))
			continue
		}
		out[i].Verdict = flow.Verdict(v[0])
		if v[1] > 0 {
			out[i].Wake = time.UnixMilli(v[1])
		}
	}
	return out
}

// errShortReply: a script answered with less than it always returns.
var errShortReply = errors.New("short reply")

// Park hands a claimed event its flow key held back to PENDING without
// using its attempt, due at until at the latest (park.lua). It reports
// false when the lease was no longer the caller's.
func (s *Store) Park(ctx context.Context, l scheduler.Lease, until, now time.Time) (bool, error) {
	m := member(l.App, l.ID)
	sh := s.k.shard(m)
	n, err := luascripts.Park.Run(ctx, s.rdb, []string{s.k.ev(sh, m), s.k.lease(sh), s.k.due(sh)},
		m, l.Worker, l.Attempt, ms(now), until.UnixMilli()).Int64()
	if err != nil {
		return false, unavailable("park", err)
	}
	return n == 1, nil
}

// ExtendFlow pushes an event's permit deadline to now + lifetime, while its
// request runs (a released or taken-back permit stays so). A zero now is
// the Redis server's clock, the one permits are compared with.
func (s *Store) ExtendFlow(ctx context.Context, id flow.ID, eventID string, lifetime time.Duration, now time.Time) error {
	err := luascripts.FlowExtend.Run(ctx, s.rdb, []string{s.k.flowRun(id.App, id.Key)},
		member(id.App, eventID), ms(now), lifetime.Milliseconds()).Err()
	return unavailable("extend flow permit", err)
}

// grant is a held event granted a permit, to make due again.
type grant struct {
	key   flow.ID
	m     string
	score int64
}

// PumpFlows runs flowpump.lua for each request in one round trip (releasing
// its permit, if any, and granting the held events of its key what the
// limits allow), makes the granted events due again (unpark.lua, one more
// round trip), and releases at once the permits of granted events that
// are gone meanwhile (cancelled while held).
func (s *Store) PumpFlows(ctx context.Context, reqs []flow.Pump, now time.Time) []flow.Pumped {
	out := make([]flow.Pumped, len(reqs))
	todo := reqs
	idx := make([]int, len(reqs))
	for i := range idx {
		idx[i] = i
	}
	for round := 0; len(todo) > 0 && round < 4; round++ {
		grants := s.pumpRound(ctx, todo, idx, now, out)
		var again []flow.Pump
		var againIdx []int
		for j, gone := range s.unpark(ctx, grants, now) {
			if gone {
				g := grants[j]
				again = append(again, flow.Pump{ID: g.key, Release: g.m[len(g.key.App)+1:]})
				againIdx = append(againIdx, g.index)
			}
		}
		todo, idx = again, againIdx
	}
	return out
}

type indexedGrant struct {
	grant
	index int
}

func (s *Store) pumpRound(ctx context.Context, reqs []flow.Pump, idx []int, now time.Time, out []flow.Pumped) []indexedGrant {
	args := func(r flow.Pump) []any {
		rel := ""
		if r.Release != "" {
			rel = member(r.App, r.Release)
		}
		return []any{ms(now), grantLifetime.Milliseconds(), pumpMax, rel}
	}
	calls := make([]scriptCall, len(reqs))
	for i, r := range reqs {
		calls[i] = scriptCall{keys: s.flowKeys(r.App, r.Key), args: args(r)}
	}
	var grants []indexedGrant
	for i, c := range s.runMany(ctx, luascripts.FlowPump, calls) {
		r := reqs[i]
		v, err := c.Slice()
		o := &out[idx[i]]
		if err != nil || len(v) == 0 {
			o.Err = unavailable("pump flow", cmp.Or(err, errShortReply))
			continue
		}
		if w, _ := v[0].(int64); w > 0 {
			o.Wake = time.UnixMilli(w)
		} else {
			o.Wake = time.Time{}
		}
		for j := 1; j+1 < len(v); j += 2 {
			m, _ := v[j].(string)
			sc, _ := strconv.ParseInt(fmt.Sprint(v[j+1]), 10, 64)
			grants = append(grants, indexedGrant{grant{key: r.ID, m: m, score: sc}, idx[i]})
			o.Granted++
		}
	}
	return grants
}

// unpark makes granted events due again and reports which are gone.
func (s *Store) unpark(ctx context.Context, grants []indexedGrant, now time.Time) (gone []bool) {
	gone = make([]bool, len(grants))
	if len(grants) == 0 {
		return gone
	}
	calls := make([]scriptCall, len(grants))
	for i, g := range grants {
		sh := s.k.shard(g.m)
		calls[i] = scriptCall{keys: []string{s.k.ev(sh, g.m), s.k.due(sh)},
			args: []any{g.m, g.score, ms(now), s.cfg.WakeHorizon.Milliseconds(), s.wakeChannel(sh), sh}}
	}
	for i, c := range s.runMany(ctx, luascripts.Unpark, calls) {
		n, err := c.Int64()
		_ = err // a failed unpark leaves the event parked until its deadline: it comes back by itself
		gone[i] = err == nil && n == 0
	}
	return gone
}

// scriptCall is one call of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// runMany runs calls of sc in one pipeline (one round trip per node of a
// cluster) by SHA, and runs again with EVAL the ones that met NOSCRIPT (a
// Redis restart or SCRIPT FLUSH since the scripts were loaded). Each
// command has its own result or error.
func (s *Store) runMany(ctx context.Context, sc *redis.Script, calls []scriptCall) []*redis.Cmd {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = sc.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			cmds[i] = sc.Run(ctx, s.rdb, calls[i].keys, calls[i].args...)
		}
	}
	return cmds
}

// Unpark makes a parked event due again at due (unpark.lua); an event not
// PENDING is left alone.
func (s *Store) Unpark(ctx context.Context, app, id string, due, now time.Time) error {
	m := member(app, id)
	sh := s.k.shard(m)
	err := luascripts.Unpark.Run(ctx, s.rdb, []string{s.k.ev(sh, m), s.k.due(sh)}, m, due.UnixMilli(), ms(now),
		s.cfg.WakeHorizon.Milliseconds(), s.wakeChannel(sh), sh).Err()
	return unavailable("unpark", err)
}
