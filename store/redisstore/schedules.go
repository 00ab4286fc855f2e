package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// Schedules (keys.go): each schedule is a hash of its own, under its own
// hash tag, holding r (the revision) and d (the record, JSON), so writes
// are one compare-and-set script in one slot (schcas.lua) and schedules
// spread over a cluster's nodes. Listing goes through a per-application
// index (a sorted set of ids, all scored 0, read in lexical order) and the
// set of applications that have schedules; both are added to before a
// record is written and removed from after it is deleted, so every stored
// schedule is listed and a stale entry lists nothing.
//
// Occurrences are ordinary events: a schedule costs nothing while idle but
// its record and its one pending occurrence.

var _ schedule.Store = (*Store)(nil)

// schRecord is the stored form of schedule.State; times are Unix ms,
// durations ms.
type schRecord struct {
	Created            int64             `json:"created"`
	Updated            int64             `json:"updated"`
	Cron               string            `json:"cron,omitempty"`
	Every              string            `json:"every,omitempty"`
	Timezone           string            `json:"tz,omitempty"`
	Start              int64             `json:"start,omitempty"`
	End                int64             `json:"end,omitempty"`
	Paused             bool              `json:"paused,omitempty"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers,omitempty"`
	Body               []byte            `json:"body,omitempty"`
	MaxAttempts        int               `json:"max_attempts,omitempty"`
	TimeoutMS          int64             `json:"timeout_ms,omitempty"`
	MinBackoffMS       int64             `json:"min_backoff_ms,omitempty"`
	MaxBackoffMS       int64             `json:"max_backoff_ms,omitempty"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
	Next               int64             `json:"next,omitempty"`
	Runs               []int64           `json:"runs,omitempty"`
}

func optMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func optTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func encodeSchedule(st *schedule.State) []byte {
	s := st.Schedule
	r := schRecord{Created: ms(s.CreatedAt), Updated: ms(s.UpdatedAt), Cron: s.Cron, Every: s.Every,
		Timezone: s.Timezone, Start: optMS(s.StartAt), End: optMS(s.EndAt), Paused: s.Paused, URL: s.URL,
		Method: s.Method, Headers: s.Headers, Body: s.Body, MaxAttempts: s.MaxAttempts,
		TimeoutMS: s.Timeout.Milliseconds(), MinBackoffMS: s.MinBackoff.Milliseconds(),
		MaxBackoffMS: s.MaxBackoff.Milliseconds(), CallbackURL: s.CallbackURL,
		FailureCallbackURL: s.FailureCallbackURL, FlowKey: s.FlowKey, Next: optMS(st.Next)}
	for _, t := range st.Runs {
		r.Runs = append(r.Runs, t.UnixMilli())
	}
	b, _ := json.Marshal(r) // strings, numbers, bytes and a string map: cannot fail
	return b
}

func decodeSchedule(app, id string, rev int64, data string) (*schedule.State, error) {
	var r schRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, fmt.Errorf("decode schedule record %s/%s: %w", app, id, err)
	}
	st := &schedule.State{Rev: rev, Next: optTime(r.Next), Schedule: &schedule.Schedule{App: app, ID: id,
		Cron: r.Cron, Every: r.Every, Timezone: r.Timezone, StartAt: optTime(r.Start), EndAt: optTime(r.End),
		Paused: r.Paused, URL: r.URL, Method: r.Method, Headers: r.Headers, Body: r.Body,
		MaxAttempts: r.MaxAttempts, Timeout: time.Duration(r.TimeoutMS) * time.Millisecond,
		MinBackoff: time.Duration(r.MinBackoffMS) * time.Millisecond,
		MaxBackoff: time.Duration(r.MaxBackoffMS) * time.Millisecond, CallbackURL: r.CallbackURL,
		FailureCallbackURL: r.FailureCallbackURL, FlowKey: r.FlowKey,
		CreatedAt: fromMS(r.Created), UpdatedAt: fromMS(r.Updated)}}
	for _, t := range r.Runs {
		st.Runs = append(st.Runs, time.UnixMilli(t).UTC())
	}
	return st, nil
}

// ReadSchedule implements schedule.Store.
func (s *Store) ReadSchedule(ctx context.Context, app, id string) (*schedule.State, error) {
	v, err := s.rdb.HMGet(ctx, s.k.sched(app, id), "r", "d").Result()
	if err != nil {
		return nil, unavailable("read schedule", err)
	}
	rev, _ := v[0].(string)
	d, _ := v[1].(string)
	if rev == "" || d == "" {
		return nil, schedule.ErrScheduleNotFound
	}
	return decodeSchedule(app, id, atoi(rev), d)
}

// WriteSchedule implements schedule.Store.
func (s *Store) WriteSchedule(ctx context.Context, st *schedule.State, expect int64) (int64, error) {
	if expect == 0 {
		// The indexes first: a stored schedule is always listed.
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s.k.schedApps(), st.App)
			p.ZAdd(ctx, s.k.schedIndex(st.App), redis.Z{Member: st.ID})
			return nil
		}); err != nil {
			return 0, unavailable("index schedule", err)
		}
	}
	return s.schCAS(ctx, st.App, st.ID, expect, "set", encodeSchedule(st))
}

// DeleteSchedule implements schedule.Store.
func (s *Store) DeleteSchedule(ctx context.Context, app, id string, expect int64) error {
	if _, err := s.schCAS(ctx, app, id, expect, "del", ""); err != nil {
		return err
	}
	if err := s.rdb.ZRem(ctx, s.k.schedIndex(app), id).Err(); err != nil {
		return unavailable("unindex schedule", err)
	}
	return nil
}

func (s *Store) schCAS(ctx context.Context, app, id string, expect int64, op string, rec any) (int64, error) {
	res, err := luascripts.SchCAS.Run(ctx, s.rdb, []string{s.k.sched(app, id)}, expect, op, rec).Int64Slice()
	if err != nil {
		return 0, unavailable(op+" schedule", err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("%s schedule: unexpected reply %v", op, res)
	}
	if res[0] != 1 {
		if res[1] == 0 && expect != 0 {
			return 0, schedule.ErrScheduleNotFound
		}
		return res[1], fmt.Errorf("%s schedule %s/%s at revision %d (it is at %d): %w", op, app, id, expect, res[1], schedule.ErrRevChanged)
	}
	return res[1], nil
}

// ListSchedules implements schedule.Store: applications in name order,
// each application's schedules in id order; the cursor is "<app>/<id>" of
// the last one shown.
func (s *Store) ListSchedules(ctx context.Context, app, cursor string, limit int) ([]*schedule.State, string, error) {
	var afterApp, afterID string
	if cursor != "" {
		a, id, ok := strings.Cut(cursor, "/")
		if !ok || !scheduler.ValidApp(a) || !schedule.ValidID(id) || app != "" && a != app {
			return nil, "", scheduler.Invalid("cursor", "cursor is not one a previous page gave")
		}
		afterApp, afterID = a, id
	}
	apps := []string{app}
	if app == "" {
		all, err := s.rdb.SMembers(ctx, s.k.schedApps()).Result()
		if err != nil {
			return nil, "", unavailable("list schedules", err)
		}
		slices.Sort(all)
		apps = all
	}
	var page []*schedule.State
	for _, a := range apps {
		if a < afterApp {
			continue
		}
		min := "-"
		if a == afterApp && afterID != "" {
			min = "(" + afterID
		}
		for len(page) <= limit {
			ids, err := s.rdb.ZRangeByLex(ctx, s.k.schedIndex(a), &redis.ZRangeBy{Min: min, Max: "+",
				Count: int64(limit + 1 - len(page))}).Result()
			if err != nil {
				return nil, "", unavailable("list schedules", err)
			}
			if len(ids) == 0 {
				break
			}
			for _, id := range ids {
				st, err := s.ReadSchedule(ctx, a, id)
				if errors.Is(err, scheduler.ErrNotFound) {
					continue // deleted meanwhile, or a create that failed half-way
				}
				if err != nil {
					return nil, "", err
				}
				page = append(page, st)
			}
			min = "(" + ids[len(ids)-1]
		}
		if len(page) > limit {
			break
		}
	}
	if len(page) <= limit {
		return page, "", nil
	}
	page = page[:limit]
	last := page[limit-1]
	return page, last.App + "/" + last.ID, nil
}

// ReplacePending implements schedule.Occurrences: occreplace.lua (a
// PENDING or CANCELLED event is replaced), with the replaced event's
// creation time kept (the archive's identity of the run).
func (s *Store) ReplacePending(ctx context.Context, ev *scheduler.Event, now time.Time) (*scheduler.Event, error) {
	m := ev.Member()
	sh := s.k.shard(m)
	if c, err := s.rdb.HGet(ctx, s.k.ev(sh, m), name(fCreated)).Result(); err == nil {
		ev.CreatedAt = msTime(c)
	} else if !errors.Is(err, redis.Nil) {
		return nil, unavailable("replace", err)
	}
	keys, args := s.scheduleCall(ev, now)
	res, err := luascripts.OccReplace.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, unavailable("replace", err)
	}
	return existingEvent(ev, res)
}
