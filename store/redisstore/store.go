// Package redisstore is Cassata's live store: every event that is pending,
// in flight or recently finished lives in Redis (or Redis Cluster), spread
// over shards whose keys share a hash tag. All state changes run as the Lua
// scripts of package luascripts, one shard per script, so they are atomic.
package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

// Defaults.
const (
	DefaultNamespace = "cassata"
	DefaultShards    = 16
	DefaultRetention = 24 * time.Hour
	// DefaultWakeHorizon: creates due further out than this publish no
	// wake-up; workers ask every shard at least this often anyway
	// (scheduler/worker's fullRoundEvery), so a horizon shorter than this
	// can leave such an event late.
	DefaultWakeHorizon = time.Second
)

// Config configures a Store.
type Config struct {
	// Namespace prefixes every key. Defaults to "cassata".
	Namespace string
	// Shards is the number of shards. Zero adopts the count recorded in
	// <ns>:meta, or 16 for a new namespace; a different count than the
	// recorded one is an error, since it would orphan events.
	Shards int
	// Retention is how long a finished event stays in Redis. Defaults to 24h.
	Retention time.Duration
	// WakeHorizon: see DefaultWakeHorizon. Defaults to 1s.
	WakeHorizon time.Duration
	// EventLayout is the event layout a new namespace records (codec.go):
	// 0, this release's (4); 1, hashes, as namespaces made before compact
	// events have; 2 or 3, as earlier releases made them (tests of those
	// layouts). A namespace keeps the layout it recorded; this is not read
	// for one that exists.
	EventLayout int
}

// Store implements scheduler.Store on Redis.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys
	// msgApps: when this process last added each application to
	// <ns>:msgapps (IndexMessage).
	msgApps appsAdded
	// shardedWake: wake-ups go to a channel per shard with sharded pub/sub
	// (SPUBLISH, SSUBSCRIBE), on a Redis Cluster whose servers have it
	// (Redis 7), instead of one channel that a Cluster broadcasts to every
	// master. See wakeChannel.
	shardedWake bool
	// perShard: a script's keys must share a slot (one shard's): rdb is a
	// Redis Cluster client, or the server is a cluster node (a proxy or a
	// single endpoint in front of a cluster), or a call met CROSSSLOT. Else
	// a script may take several shards' keys (FinishMany).
	perShard atomic.Bool
	// layout is how this process writes new events (codec.go): the
	// namespace's, as <ns>:meta recorded it when the store was made.
	layout int
	// claimRecs: the claim records (claim.lua) of this process's claims.
	claimRecs claimRecords
	// perEntry[shard]: records per entry of the last outbox read of the
	// shard that found any, rounded up (packed entries hold many): the
	// next read asks for as many entries as make the records it wants.
	perEntry []atomic.Int32
}

var _ scheduler.Store = (*Store)(nil)

// New connects the store to a namespace: it records or checks the shard
// count in <ns>:meta and loads the scripts.
func New(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := cfg.Shards
	want = defaults.Positive(want, DefaultShards)
	metaKey := cfg.Namespace + ":meta"
	fresh, err := rdb.HSetNX(ctx, metaKey, "shards", want).Result()
	if err != nil {
		return nil, fmt.Errorf("record shard count: %w", err)
	}
	if fresh {
		// A new namespace stores its events compactly and packs its
		// outbox entries from the start. One made before compact events
		// has no layout recorded: its events stay hashes, and one made
		// before packed entries keeps one entry per event, until
		// UseCompactEvents.
		layout := cmp.Or(cfg.EventLayout, layoutNewest)
		if err := rdb.HSet(ctx, metaKey, "layout", layout).Err(); err != nil {
			return nil, fmt.Errorf("record event layout: %w", err)
		}
	}
	got, err := rdb.HGet(ctx, metaKey, "shards").Int()
	if err != nil {
		return nil, fmt.Errorf("read shard count: %w", err)
	}
	if cfg.Shards > 0 && got != cfg.Shards {
		return nil, fmt.Errorf("namespace %q has %d shards, configured %d: the shard count cannot change", cfg.Namespace, got, cfg.Shards)
	}
	if got <= 0 || got > 16384 {
		return nil, fmt.Errorf("namespace %q: invalid shard count %d in %s", cfg.Namespace, got, metaKey)
	}
	cfg.Shards = got
	layout, err := rdb.HGet(ctx, metaKey, "layout").Int()
	if errors.Is(err, redis.Nil) {
		layout, err = layoutHash, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event layout: %w", err)
	}
	if layout < layoutHash || layout > layoutNewest {
		return nil, fmt.Errorf("namespace %q: event layout %d in %s is not one this release knows (1 to %d): a newer release made it", cfg.Namespace, layout, metaKey, layoutNewest)
	}
	s := &Store{rdb: rdb, cfg: cfg, k: newKeys(cfg.Namespace, got), layout: layout, perEntry: make([]atomic.Int32, got)}
	if err := s.LoadScripts(ctx); err != nil {
		return nil, err
	}
	_, isCluster := rdb.(*redis.ClusterClient)
	s.perShard.Store(isCluster || clusterNode(ctx, rdb))
	if s.shardedWake, err = shardedPubSub(ctx, rdb); err != nil {
		return nil, err
	}
	return s, nil
}

// clusterNode reports whether the server rdb reaches says it runs in
// cluster mode (INFO cluster); a server that does not answer is taken as
// not (a CROSSSLOT answer corrects it: FinishMany).
func clusterNode(ctx context.Context, rdb redis.UniversalClient) bool {
	info, err := rdb.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// shardedPubSub reports whether rdb is a Redis Cluster whose servers know
// SPUBLISH (Redis 7 and later).
func shardedPubSub(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		return false, nil
	}
	// COMMAND INFO answers nil for a command the server does not know.
	info, err := rdb.Do(ctx, "COMMAND", "INFO", "spublish").Slice()
	if err != nil {
		return false, unavailable("ask for sharded pub/sub", err)
	}
	return len(info) == 1 && info[0] != nil, nil
}

// wakeChannel is the channel a change publishes shard sh's wake-ups on:
// on a Redis Cluster with sharded pub/sub, the shard's own (its hash tag,
// so a script publishes it on the master it runs on, and only that master
// carries it: prelude.lua publish_wake sends SPUBLISH for a channel with a
// hash tag); else the namespace's one channel (PUBLISH: one Redis, or
// miniredis, which has no sharded pub/sub).
func (s *Store) wakeChannel(sh int) string {
	if s.shardedWake {
		return s.k.wakeShard(sh)
	}
	return s.k.wake()
}

// LoadScripts loads every script (on every master of a cluster). Calls fall
// back to EVAL on NOSCRIPT anyway; loading up front saves that round trip.
func (s *Store) LoadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		for _, sc := range luascripts.All {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("load scripts: %w", err)
			}
		}
		return nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, load)
	}
	if c, ok := s.rdb.(*redis.Client); ok {
		return load(ctx, c)
	}
	return nil
}

// Client returns the Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Namespace returns the key namespace.
func (s *Store) Namespace() string { return s.cfg.Namespace }

// Shards implements scheduler.Store.
func (s *Store) Shards() int { return s.cfg.Shards }

// Ping checks that Redis answers, runs Cassata's scripts (loading them
// again when a restart or SCRIPT FLUSH dropped them) and agrees on the
// namespace's shard count (recording it again if Redis lost its data).
func (s *Store) Ping(ctx context.Context) error {
	v, err := luascripts.Ping.Run(ctx, s.rdb, []string{s.k.meta()}, s.cfg.Shards).Int64Slice()
	if err != nil {
		return unavailable("ping", err)
	}
	if len(v) != 2 || v[0] != int64(s.cfg.Shards) {
		return fmt.Errorf("ping: namespace %q has %v shards in %s, this process uses %d: restart it",
			s.cfg.Namespace, v, s.k.meta(), s.cfg.Shards)
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func member(app, id string) string { return app + "/" + id }

// unavailable marks connection-level failures, so the API can answer 503.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, scheduler.ErrUnavailable, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isConnRedisError(rerr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, scheduler.ErrUnavailable, err)
}

// isConnRedisError reports whether a Redis error reply says the server
// cannot serve now (loading, a replica, a cluster without quorum, out of
// memory, failing to persist), by its error code, as classify.go does.
func isConnRedisError(err redis.Error) bool {
	for _, p := range unavailablePrefixes {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// Create implements scheduler.Store.
func (s *Store) Create(ctx context.Context, ev *scheduler.Event, now time.Time) (*scheduler.Event, error) {
	keys, args := s.scheduleCall(ev, now)
	res, err := luascripts.Schedule.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, unavailable("schedule", err)
	}
	return existingEvent(ev, res)
}

// scheduleCall is the schedule.lua call that creates ev.
func (s *Store) scheduleCall(ev *scheduler.Event, now time.Time) ([]string, []any) {
	m := ev.Member()
	sh := s.k.shard(m)
	args := []any{m, ms(ev.DueAt), s.wakeChannel(sh), sh, ms(now), s.cfg.WakeHorizon.Milliseconds(),
		ms(ev.CreatedAt), ev.URL, cmp.Or(ev.Method, "POST"), ev.FlowKey}
	return []string{s.k.ev(sh, m), s.k.due(sh), s.k.out(sh)}, s.appendEvent(args, ev)
}

// appendEvent appends new event ev as schedule.lua and schedulemany.lua
// take it, in the namespace's layout: its compact value, or its hash's
// field, value pairs.
func (s *Store) appendEvent(args []any, ev *scheduler.Event) []any {
	if s.compact() {
		return append(args, encodeCompact(ev, s.layout >= layoutTabled))
	}
	return append(args, encode(ev)...)
}

// EventLayout is the layout this store writes new events in: 1, hashes
// (a namespace made before compact events, until UseCompactEvents), 2,
// compact values (codec.go), 3, compact values and packed outbox
// entries, or 4, those with common headers as codes (a namespace made by
// this release).
func (s *Store) EventLayout() int { return s.layout }

// compact tells whether new events are compact values (layouts 2 to 4).
func (s *Store) compact() bool { return s.layout >= layoutCompact }

// packed tells whether batches write packed outbox entries (layouts 3
// and 4).
func (s *Store) packed() bool { return s.layout >= layoutPacked }

// packFlag is the batch scripts' argument that asks for packed outbox
// entries: "1" in layouts 3 and 4, else "0".
func (s *Store) packFlag() string {
	if s.packed() {
		return "1"
	}
	return "0"
}

// scriptLayout is the event layout as the scripts take it (ev_get in
// prelude.lua): 1 or 2; layouts 3 and 4 store events as 2 does (the
// scripts never read inside the headers field).
func (s *Store) scriptLayout() int { return min(s.layout, layoutCompact) }

// UseCompactEvents switches a namespace made before this release to its
// layout (layoutNewest): processes that connect from then on write new
// events as compact values (codec.go) with common headers as codes and
// batches' outbox entries packed (outbox.go), and read every kind, as
// every process of this release does. Run it once no process older than this release works on the
// namespace: those read hashes only, or one outbox entry per event, and
// one that starts after the switch refuses to. Events and entries already
// stored stay as they are; events leave Redis as they finish and their
// retention ends. s itself, like every process connected before, goes on
// writing its layout (read once, in New, and never changed under the
// goroutines using it). Returns whether the namespace was switched now
// (false: it was already).
func (s *Store) UseCompactEvents(ctx context.Context) (bool, error) {
	old, err := s.rdb.HGet(ctx, s.k.meta(), "layout").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, unavailable("read event layout", err)
	}
	if old >= layoutNewest {
		return false, nil
	}
	if err := s.rdb.HSet(ctx, s.k.meta(), "layout", layoutNewest).Err(); err != nil {
		return false, unavailable("record event layout", err)
	}
	return true, nil
}

// existingEvent reads schedule.lua's reply: nil when ev was created, else
// the event that holds its identity.
func existingEvent(ev *scheduler.Event, res []any) (*scheduler.Event, error) {
	if len(res) == 1 {
		return nil, nil
	}
	if len(res) != 1+numFields {
		return nil, fmt.Errorf("schedule: reply of %d values", len(res))
	}
	return decodeValues(ev.App, ev.ID, res[1:])
}

// CreateMany implements scheduler.Store: one schedulemany.lua call per shard
// (at most createBatch events each), all in one pipeline (per node, for a
// cluster). Scripts are called by SHA; on NOSCRIPT (Redis restarted or
// flushed) they are loaded and the pipeline is sent again, which is safe
// because creating never overwrites: what the first try created reads as
// existing, with the same content, which callers take as a replay.
func (s *Store) CreateMany(ctx context.Context, evs []*scheduler.Event, now time.Time) ([]scheduler.CreateResult, error) {
	type call struct {
		idx []int // positions in evs, in the call's order
		cmd *redis.Cmd
	}
	for try := 0; ; try++ {
		byShard := make(map[int][]int)
		var order []int
		for i, ev := range evs {
			sh := s.k.shard(ev.Member())
			if _, ok := byShard[sh]; !ok {
				order = append(order, sh)
			}
			byShard[sh] = append(byShard[sh], i)
		}
		pipe := s.rdb.Pipeline()
		var calls []call
		for _, sh := range order {
			idx := byShard[sh]
			for len(idx) > 0 {
				part := idx[:min(len(idx), createBatch)]
				idx = idx[len(part):]
				args := []any{s.k.evPrefix(sh), s.wakeChannel(sh), sh, ms(now), s.cfg.WakeHorizon.Milliseconds(), s.packFlag()}
				for _, i := range part {
					ev := evs[i]
					at := len(args)
					args = append(args, 0, ev.Member(), ms(ev.DueAt), ms(ev.CreatedAt), ev.URL,
						cmp.Or(ev.Method, "POST"), ev.FlowKey)
					args = s.appendEvent(args, ev)
					args[at] = len(args) - at - 1
				}
				calls = append(calls, call{idx: part,
					cmd: luascripts.ScheduleMany.EvalSha(ctx, pipe, []string{s.k.due(sh), s.k.out(sh)}, args...)})
			}
		}
		_, _ = pipe.Exec(ctx)
		out := make([]scheduler.CreateResult, len(evs))
		noscript := false
		for _, c := range calls {
			res, err := c.cmd.Slice()
			if err != nil {
				if redis.HasErrorPrefix(err, "NOSCRIPT") {
					noscript = true
					break
				}
				return nil, unavailable("schedule", err)
			}
			if len(res) != len(c.idx) {
				return nil, fmt.Errorf("schedule: %d results for %d events", len(res), len(c.idx))
			}
			for j, i := range c.idx {
				if vals, ok := res[j].([]any); ok {
					out[i].Existing, out[i].Err = decodeValues(evs[i].App, evs[i].ID, vals)
				}
			}
		}
		if !noscript {
			return out, nil
		}
		if try > 0 {
			return nil, fmt.Errorf("schedule: scripts keep disappearing (NOSCRIPT)")
		}
		if err := s.LoadScripts(ctx); err != nil {
			return nil, unavailable("schedule", err)
		}
	}
}

// readEvents reads the events at keys, in either layout (codec.go), in the
// positional form of decodeValues, nil for one that is not there: one
// pipelined read each in the namespace's layout (a GET, or an HGETALL),
// then, for those in the other one (the read failed with WRONGTYPE: events
// stored before a namespace moved to compact values, or after, for a
// process that started before), one pipelined read each in that layout.
// Without history, the history is left out (nil): decoding a long one is
// most of the work, for a reader that has every attempt already.
func (s *Store) readEvents(ctx context.Context, keys []string, withoutHistory bool) ([][]any, error) {
	out, _, err := s.readEventsRaw(ctx, keys, withoutHistory)
	return out, err
}

// readEventsRaw is readEvents that also returns each compact value as
// stored ("" for a hash or an event that is not there).
func (s *Store) readEventsRaw(ctx context.Context, keys []string, withoutHistory bool) ([][]any, []string, error) {
	out := make([][]any, len(keys))
	raws := make([]string, len(keys))
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	compact := s.compact()
	for try := 0; try < 2 && len(idx) > 0; try, compact = try+1, !compact {
		pipe := s.rdb.Pipeline()
		gets := make([]*redis.StringCmd, len(idx))
		hashes := make([]*redis.MapStringStringCmd, len(idx))
		for j, i := range idx {
			if compact {
				gets[j] = pipe.Get(ctx, keys[i])
			} else {
				hashes[j] = pipe.HGetAll(ctx, keys[i])
			}
		}
		_, _ = pipe.Exec(ctx) // errors are per command
		var other []int
		for j, i := range idx {
			var err error
			if compact {
				var v string
				if v, err = gets[j].Result(); err == nil {
					if out[i], err = compactValues(v); err != nil {
						return nil, nil, fmt.Errorf("%s: %w", keys[i], err)
					}
					raws[i] = v
				}
			} else {
				var h map[string]string
				if h, err = hashes[j].Result(); err == nil && len(h) > 0 {
					out[i] = hashValues(h)
				}
			}
			switch {
			case err == nil, errors.Is(err, redis.Nil): // read, or not there
			case redis.HasErrorPrefix(err, "WRONGTYPE"):
				other = append(other, i)
			default:
				return nil, nil, err
			}
		}
		idx = other
	}
	if withoutHistory {
		for _, v := range out {
			if v != nil {
				v[fHistory] = nil
			}
		}
	}
	return out, raws, nil
}

// createBatch is the most events CreateMany sends in one script call.
const createBatch = 256

// Get implements scheduler.Store.
func (s *Store) Get(ctx context.Context, app, id string) (*scheduler.Event, error) {
	evs, err := s.GetMany(ctx, []scheduler.Ident{{App: app, ID: id}})
	if err != nil {
		return nil, err
	}
	if evs[0] == nil {
		return nil, scheduler.ErrNotFound
	}
	return evs[0], nil
}

// GetMany implements scheduler.Store: whole events, as Get returns them,
// read in one round trip (readEvents).
func (s *Store) GetMany(ctx context.Context, ids []scheduler.Ident) ([]*scheduler.Event, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		m := member(id.App, id.ID)
		keys[i] = s.k.ev(s.k.shard(m), m)
	}
	vals, err := s.readEvents(ctx, keys, false)
	if err != nil {
		return nil, unavailable("get", err)
	}
	out := make([]*scheduler.Event, len(ids))
	for i, v := range vals {
		if v == nil { // gone
			continue
		}
		ev, err := decodeValues(ids[i].App, ids[i].ID, v)
		if err != nil {
			return nil, err
		}
		out[i] = ev
	}
	return out, nil
}

// changedEvent reads the reply of a script that changes an event (cancel,
// requeue): {1, status, the event's values} when it did, {0, status} when
// the event's status forbids it, {-1, ""} when there is no such event.
func changedEvent(op, app, id string, res []any, err error) (*scheduler.Event, error) {
	if err != nil {
		return nil, unavailable(op, err)
	}
	if len(res) < 2 {
		return nil, fmt.Errorf("%s: unexpected reply %v", op, res)
	}
	code, _ := res[0].(int64)
	st, _ := res[1].(string)
	switch code {
	case 1:
		if len(res) != 2+numFields {
			return nil, fmt.Errorf("%s: reply of %d values", op, len(res))
		}
		return decodeValues(app, id, res[2:])
	case -1:
		return nil, scheduler.ErrNotFound
	}
	opName := map[string]string{"cancel": "deleted", "requeue": "retried"}[op]
	return nil, &scheduler.StatusError{Status: scheduler.Status(st), Op: opName}
}

// Cancel implements scheduler.Store.
func (s *Store) Cancel(ctx context.Context, app, id string, now time.Time) (*scheduler.Event, error) {
	m := member(app, id)
	sh := s.k.shard(m)
	res, err := luascripts.Cancel.Run(ctx, s.rdb, []string{s.k.ev(sh, m), s.k.due(sh), s.k.out(sh)},
		m, ms(now)).Slice()
	return changedEvent("cancel", app, id, res, err)
}

// Requeue implements scheduler.Store.
func (s *Store) Requeue(ctx context.Context, app, id string, allowed []scheduler.Status, reset bool, now time.Time) (*scheduler.Event, error) {
	m := member(app, id)
	sh := s.k.shard(m)
	list := ""
	for _, st := range allowed {
		list += string(st) + " "
	}
	resetArg := "0"
	if reset {
		resetArg = "1"
	}
	res, err := luascripts.Requeue.Run(ctx, s.rdb, []string{s.k.ev(sh, m), s.k.due(sh), s.k.out(sh)},
		m, ms(now), s.wakeChannel(sh), sh, list, resetArg).Slice()
	return changedEvent("requeue", app, id, res, err)
}

// Claim implements scheduler.Store.
func (s *Store) Claim(ctx context.Context, shard int, worker string, batch int, visibility time.Duration, now time.Time) (scheduler.Claim, error) {
	keys, args, confirmed := s.claimCall(shard, worker, batch, visibility, now)
	res, err := luascripts.Claim.Run(ctx, s.rdb, keys, args...).Slice()
	return s.claimResult(shard, worker, res, err, confirmed)
}

// claimCall is the keys and arguments of claim.lua for one shard: a new
// claim record's name and the records whose reply came since the last
// call (confirmed, taken from s.records).
func (s *Store) claimCall(shard int, worker string, batch int, visibility time.Duration, now time.Time) ([]string, []any, []string) {
	name, confirmed := s.claimRecs.next(worker, shard)
	args := make([]any, 0, 9+len(confirmed))
	args = append(args, ms(now), batch, visibility.Milliseconds(), worker, s.k.evPrefix(shard), s.k.paused(shard),
		s.k.parkPrefix(shard), s.scriptLayout(), name)
	for _, c := range confirmed {
		args = append(args, c)
	}
	return []string{s.k.due(shard), s.k.lease(shard), s.k.claims(shard, worker)}, args, confirmed
}

// claimResult parses a claim.lua reply (or its error) and remembers the
// claim record it wrote for the next call to delete. A call that failed
// may not have run: the records it named stay to be named again (deleting
// one twice is harmless).
func (s *Store) claimResult(shard int, worker string, res []any, err error, confirmed []string) (scheduler.Claim, error) {
	if err != nil {
		s.claimRecs.confirm(worker, shard, confirmed...)
		return scheduler.Claim{}, unavailable(fmt.Sprintf("claim shard %d", shard), err)
	}
	c, record, err := parseClaim(res, worker)
	if err != nil {
		// The events it claimed are not the worker's: their record stays,
		// and giveback.lua hands them back.
		return c, err
	}
	if record != "" {
		s.claimRecs.confirm(worker, shard, record)
	}
	return c, nil
}

// ClaimShards claims from several shards in one round trip: claim.lua per
// shard in a pipeline (per node, for a cluster). Each result is the
// shard's claim or its error; a shard's error leaves the others' claims
// good. A claim whose reply is lost (an error after Redis ran it) is an
// orphan the worker gives back (its claim record stays); NOSCRIPT means it
// did not run, and that shard is claimed again with the script loaded.
func (s *Store) ClaimShards(ctx context.Context, reqs []scheduler.ClaimRequest, worker string, visibility time.Duration, now time.Time) ([]scheduler.Claim, []error) {
	claims := make([]scheduler.Claim, len(reqs))
	errs := make([]error, len(reqs))
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	confirmed := make([][]string, len(reqs))
	for i, r := range reqs {
		var keys []string
		var args []any
		keys, args, confirmed[i] = s.claimCall(r.Shard, worker, r.Batch, visibility, now)
		cmds[i] = luascripts.Claim.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			s.claimRecs.confirm(worker, reqs[i].Shard, confirmed[i]...)
			claims[i], errs[i] = s.Claim(ctx, reqs[i].Shard, worker, reqs[i].Batch, visibility, now)
			continue
		}
		claims[i], errs[i] = s.claimResult(reqs[i].Shard, worker, res, err, confirmed[i])
	}
	return claims, errs
}

// claimStride is the number of values per event in a claim reply: its
// member, its attempts, the event (decodeClaimed).
const claimStride = 3

func parseClaim(res []any, worker string) (scheduler.Claim, string, error) {
	if len(res) < 4 {
		return scheduler.Claim{}, "", fmt.Errorf("claim: short reply")
	}
	var c scheduler.Claim
	now, _ := res[0].(int64)
	c.Now = time.UnixMilli(now)
	if next, _ := res[1].(int64); next >= 0 {
		c.NextDue = time.UnixMilli(next)
	}
	record, _ := res[2].(string)
	n, _ := res[3].(int64)
	if len(res) != 4+int(n)*claimStride {
		return scheduler.Claim{}, "", fmt.Errorf("claim: reply of %d values for %d events", len(res), n)
	}
	c.Events = make([]*scheduler.Event, 0, n)
	for i := 4; i < len(res); i += claimStride {
		m, _ := res[i].(string)
		app, id, ok := strings.Cut(m, "/")
		if !ok {
			return scheduler.Claim{}, "", fmt.Errorf("claim: bad member %q", m)
		}
		attempts, _ := res[i+1].(int64)
		ev, err := decodeClaimed(app, id, worker, now, attempts, res[i+2])
		if err != nil {
			return scheduler.Claim{}, "", err
		}
		c.Events = append(c.Events, ev)
	}
	return c, record, nil
}

// Finish implements scheduler.Store.
func (s *Store) Finish(ctx context.Context, l scheduler.Lease, o scheduler.Outcome, now time.Time) (bool, error) {
	r := s.FinishMany(ctx, []scheduler.FinishItem{{Lease: l, Outcome: o, Now: now}})[0]
	return r.Held, r.Err
}

// finishBatch bounds the outcomes one finishmany.lua call records: a call
// holds the shard (and Redis) for its whole length.
const finishBatch = 256

// finishArgs appends to args the 11 values finishmany.lua takes for
// outcome o under lease l, after its shard slot.
func finishArgs(args []any, l scheduler.Lease, o scheduler.Outcome, now time.Time) ([]any, error) {
	// The line names the lease it is recorded under: finishing is
	// idempotent per line (finish_attempt in luascripts/prelude.lua), so a
	// call sent again is recognised, and another lease's is not.
	a := o.Attempt
	if a.Worker == "" {
		a.Worker = l.Worker
	}
	if a.Attempt == 0 {
		a.Attempt = l.Attempt
	}
	line, err := json.Marshal(a)
	if err != nil {
		return args, err
	}
	code := ""
	if o.Attempt.StatusCode > 0 {
		code = strconv.Itoa(o.Attempt.StatusCode)
	}
	op, arg := "ack", any(string(o.Status))
	pre, post := "", ""
	if o.Status == scheduler.StatusPending {
		op, arg = "retry", o.Backoff.Milliseconds()
	} else {
		pre, post = outcomeFields(string(o.Status), code, line, o.Attempt.Error)
	}
	return append(args, op, member(l.App, l.ID), l.Worker, l.Attempt, arg, code, o.Attempt.Error, line, ms(now),
		pre, post), nil
}

// outcomeFields returns the compact fields a final outcome appends to its
// event before its times (status, last status code) and after them (the
// history line, the last error), as ack_event in prelude.lua would write
// them (compact_field: an empty long value is written as its absence).
func outcomeFields(status, code string, line []byte, lastError string) (pre, post string) {
	b := make([]byte, 0, 24+len(line)+len(lastError))
	b = appendScriptField(appendScriptField(b, fStatus, status), fLastCode, code)
	n := len(b)
	b = appendCompactField(b, fHistory, append(line, '\n'))
	b = appendScriptField(b, fLastError, lastError)
	return string(b[:n]), string(b[n:])
}

// appendScriptField appends field f with value v as compact_field in
// prelude.lua writes it: an empty long value as the field's absence.
func appendScriptField(b []byte, f int, v string) []byte {
	if v == "" && eventFields[f].long {
		return append(b, byte(129+f))
	}
	return appendCompactField(b, f, v)
}

// FinishMany implements scheduler.Store: finishmany.lua calls of up to
// finishBatch outcomes, all in one pipelined round trip (per cluster node):
// one call per shard on a Redis Cluster (a script's keys share a slot),
// one for every shard on one Redis. A call that met NOSCRIPT (a restart or
// SCRIPT FLUSH in between) did nothing and is run again on its own. A call
// that failed otherwise fails its outcomes; the finisher sends them again,
// which recording each outcome once per history line makes harmless.
func (s *Store) FinishMany(ctx context.Context, items []scheduler.FinishItem) []scheduler.FinishResult {
	out := make([]scheduler.FinishResult, len(items))
	type call struct {
		keys  []string
		slots []any       // 3 values per shard slot (finishmany.lua)
		slot  map[int]int // shard → its slot, from 1
		vals  []any       // 12 values per outcome
		idx   []int       // the items it records, in order
		cmd   *redis.Cmd
		args  []any
	}
	var calls []*call
	open := map[int]*call{} // group (the shard on a cluster, else 0) → its call being filled
	for i, it := range items {
		sh := s.k.shard(member(it.Lease.App, it.Lease.ID))
		group := 0
		if s.perShard.Load() {
			group = sh
		}
		c := open[group]
		if c == nil || len(c.idx) == finishBatch {
			c = &call{slot: map[int]int{}}
			open[group] = c
			calls = append(calls, c)
		}
		j, ok := c.slot[sh]
		if !ok {
			j = len(c.slot) + 1
			c.slot[sh] = j
			c.keys = append(c.keys, s.k.lease(sh), s.k.due(sh), s.k.out(sh))
			c.slots = append(c.slots, s.k.evPrefix(sh), s.wakeChannel(sh), sh)
		}
		vals, err := finishArgs(append(c.vals, j), it.Lease, it.Outcome, it.Now)
		if err != nil {
			out[i].Err = err
			continue
		}
		c.vals = vals
		c.idx = append(c.idx, i)
	}
	for _, c := range calls {
		c.args = make([]any, 0, 3+len(c.slots)+len(c.vals))
		c.args = append(c.args, len(c.slot))
		c.args = append(c.args, c.slots...)
		c.args = append(c.args, s.cfg.WakeHorizon.Milliseconds(), s.scriptLayout(), s.packFlag())
		c.args = append(c.args, c.vals...)
	}
	pipe := s.rdb.Pipeline()
	for _, c := range calls {
		if len(c.idx) > 0 {
			c.cmd = luascripts.FinishMany.EvalSha(ctx, pipe, c.keys, c.args...)
		}
	}
	if len(calls) > 0 {
		_, _ = pipe.Exec(ctx) // errors are per call
	}
	var again []int // items of calls refused with CROSSSLOT (nothing of them ran)
	for _, c := range calls {
		if c.cmd == nil {
			continue
		}
		res, err := c.cmd.Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			res, err = luascripts.FinishMany.Run(ctx, s.rdb, c.keys, c.args...).Int64Slice() // EVAL caches it again
		}
		if err != nil && len(c.slot) > 1 && redis.HasErrorPrefix(err, "CROSSSLOT") {
			again = append(again, c.idx...)
			continue
		}
		if err == nil && len(res) != len(c.idx) {
			err = fmt.Errorf("%d results for %d outcomes", len(res), len(c.idx))
		}
		for j, i := range c.idx {
			if err != nil {
				out[i].Err = unavailable("finish", err)
				continue
			}
			out[i].Held = res[j] > 0
		}
	}
	if len(again) > 0 && !s.perShard.Swap(true) {
		slog.Warn("Redis refuses scripts over several shards' keys (a cluster node behind one address): recording outcomes with one call per shard")
	}
	if len(again) > 0 {
		items2 := make([]scheduler.FinishItem, len(again))
		for j, i := range again {
			items2[j] = items[i]
		}
		for j, r := range s.FinishMany(ctx, items2) {
			out[again[j]] = r
		}
	}
	return out
}

// Extend implements scheduler.Store.
func (s *Store) Extend(ctx context.Context, l scheduler.Lease, visibility time.Duration, now time.Time) (bool, error) {
	m := member(l.App, l.ID)
	sh := s.k.shard(m)
	n, err := luascripts.Extend.Run(ctx, s.rdb, []string{s.k.ev(sh, m), s.k.lease(sh)},
		m, l.Worker, l.Attempt, ms(now), visibility.Milliseconds()).Int64()
	if err != nil {
		return false, unavailable("extend", err)
	}
	return n > 0, nil
}

// Reap implements scheduler.Store.
func (s *Store) Reap(ctx context.Context, shard, limit, defaultMaxAttempts int, now time.Time) (int, error) {
	n, err := luascripts.Reap.Run(ctx, s.rdb, []string{s.k.lease(shard), s.k.due(shard), s.k.out(shard)},
		ms(now), limit, s.k.evPrefix(shard), defaultMaxAttempts,
		s.wakeChannel(shard), shard).Int()
	if err != nil {
		return 0, unavailable(fmt.Sprintf("reap shard %d", shard), err)
	}
	return n, nil
}

// Live implements scheduler.Store.
func (s *Store) Live(ctx context.Context, dueBefore time.Time) (scheduler.LiveCounts, error) {
	pipe := s.rdb.Pipeline()
	all := make([]*redis.IntCmd, s.cfg.Shards)
	due := make([]*redis.IntCmd, s.cfg.Shards)
	proc := make([]*redis.IntCmd, s.cfg.Shards)
	for sh := range s.cfg.Shards {
		all[sh] = pipe.ZCard(ctx, s.k.due(sh))
		due[sh] = pipe.ZCount(ctx, s.k.due(sh), "-inf", strconv.FormatInt(dueBefore.UnixMilli(), 10))
		proc[sh] = pipe.ZCard(ctx, s.k.lease(sh))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return scheduler.LiveCounts{}, unavailable("live counts", err)
	}
	var c scheduler.LiveCounts
	for sh := range s.cfg.Shards {
		c.Pending += all[sh].Val()
		c.DueSoon += due[sh].Val()
		c.Processing += proc[sh].Val()
	}
	return c, nil
}

// Wakeups implements the worker's Store: a subscription to the
// namespace's wake-up channel (one channel per shard with sharded pub/sub).
// Every message names the shard whose earliest due time it moved (the
// scripts publish the shard number); one that names none counts for every
// shard, and so does the subscription's first confirmation (wake-ups
// published before it took effect are lost).
func (s *Store) Wakeups(ctx context.Context) *scheduler.Wakeups {
	out := scheduler.NewWakeups(s.cfg.Shards)
	var subs []*redis.PubSub
	if cc, ok := s.rdb.(*redis.ClusterClient); ok && s.shardedWake {
		// One sharded subscription per shard: each lives on the master that
		// owns the shard's slot (and follows it when the slot moves).
		for sh := range s.cfg.Shards {
			subs = append(subs, cc.SSubscribe(ctx, s.k.wakeShard(sh)))
		}
	} else {
		subs = append(subs, s.rdb.Subscribe(ctx, s.k.wake()))
	}
	// Once all subscriptions are confirmed, wake the worker once for every
	// shard so it re-plans. Every goroutine that may wake is in wg: out
	// closes after them.
	var wg, confirmed sync.WaitGroup
	confirmed.Add(len(subs))
	wg.Add(1)
	go func() {
		defer wg.Done()
		confirmed.Wait()
		if ctx.Err() == nil {
			out.Wake(-1)
		}
	}()
	for _, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			_, _ = sub.Receive(ctx)
			confirmed.Done()
			ch := sub.Channel()
			for {
				select {
				case <-ctx.Done():
					return
				case msg, ok := <-ch:
					if !ok {
						return
					}
					sh, err := strconv.Atoi(msg.Payload)
					if err != nil {
						sh = -1
					}
					out.Wake(sh)
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		out.Close()
	}()
	return out
}
