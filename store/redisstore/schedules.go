package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/schedule"
)

// Schedules (keys.go): an application's schedules are one hash under the
// application's own hash tag, field = schedule id, value = "<revision>|<record
// JSON>", so a write is one compare-and-set script in one slot
// (schcas.lua), the hash itself lists the application's schedules, and an
// idle schedule costs one hash field besides its pending occurrence (the
// bytes of an idle schedule are a design target). One application's
// schedules live on one node of a cluster; its occurrences, ordinary
// events, spread over all shards.

var _ schedule.Store = (*Store)(nil)

// schRecord is the stored form of schedule.State: short names, times in
// Unix ms, durations in ms, defaults left out, the body as a string when
// it is UTF-8 (b) and in base64 only when it is not (b64), since an idle
// schedule's bytes are a design target.
type schRecord struct {
	Created            int64             `json:"c"`
	Updated            int64             `json:"t,omitempty"` // 0: Created
	Cron               string            `json:"cr,omitempty"`
	Every              string            `json:"ev,omitempty"`
	Timezone           string            `json:"tz,omitempty"`
	Start              int64             `json:"sa,omitempty"`
	End                int64             `json:"ea,omitempty"`
	Paused             bool              `json:"p,omitempty"`
	URL                string            `json:"u"`
	Method             string            `json:"m,omitempty"` // "": POST
	Headers            map[string]string `json:"h,omitempty"`
	Body               *string           `json:"b,omitempty"`
	Body64             []byte            `json:"b64,omitempty"`
	MaxAttempts        int               `json:"x,omitempty"`
	TimeoutMS          int64             `json:"to,omitempty"`
	MinBackoffMS       int64             `json:"bn,omitempty"`
	MaxBackoffMS       int64             `json:"bx,omitempty"`
	CallbackURL        string            `json:"cb,omitempty"`
	FailureCallbackURL string            `json:"fcb,omitempty"`
	FlowKey            string            `json:"fk,omitempty"`
	Next               int64             `json:"n,omitempty"`
	Runs               []int64           `json:"r,omitempty"`
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
	r := schRecord{Created: ms(s.CreatedAt), Cron: s.Cron, Every: s.Every,
		Timezone: s.Timezone, Start: optMS(s.StartAt), End: optMS(s.EndAt), Paused: s.Paused, URL: s.URL,
		Headers: s.Headers, MaxAttempts: s.MaxAttempts,
		TimeoutMS: s.Timeout.Milliseconds(), MinBackoffMS: s.MinBackoff.Milliseconds(),
		MaxBackoffMS: s.MaxBackoff.Milliseconds(), CallbackURL: s.CallbackURL,
		FailureCallbackURL: s.FailureCallbackURL, FlowKey: s.FlowKey, Next: optMS(st.Next)}
	if u := ms(s.UpdatedAt); u != r.Created {
		r.Updated = u
	}
	if s.Method != "POST" {
		r.Method = s.Method
	}
	switch {
	case s.Body == nil:
	case utf8.Valid(s.Body):
		b := string(s.Body)
		r.Body = &b
	default:
		r.Body64 = s.Body
	}
	for _, t := range st.Runs {
		r.Runs = append(r.Runs, t.UnixMilli())
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(r) // strings, numbers, bytes and a string map: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func decodeSchedule(app, id string, rev int64, data string) (*schedule.State, error) {
	var r schRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, fmt.Errorf("decode schedule record %s/%s: %w", app, id, err)
	}
	st := &schedule.State{Rev: rev, Next: optTime(r.Next), Schedule: &schedule.Schedule{App: app, ID: id,
		Cron: r.Cron, Every: r.Every, Timezone: r.Timezone, StartAt: optTime(r.Start), EndAt: optTime(r.End),
		Paused: r.Paused, URL: r.URL, Method: cmp.Or(r.Method, "POST"), Headers: r.Headers, Body: r.Body64,
		MaxAttempts: r.MaxAttempts, Timeout: time.Duration(r.TimeoutMS) * time.Millisecond,
		MinBackoff: time.Duration(r.MinBackoffMS) * time.Millisecond,
		MaxBackoff: time.Duration(r.MaxBackoffMS) * time.Millisecond, CallbackURL: r.CallbackURL,
		FailureCallbackURL: r.FailureCallbackURL, FlowKey: r.FlowKey,
		CreatedAt: fromMS(r.Created), UpdatedAt: fromMS(cmp.Or(r.Updated, r.Created))}}
	if r.Body != nil {
		st.Body = []byte(*r.Body)
	}
	for _, t := range r.Runs {
		st.Runs = append(st.Runs, time.UnixMilli(t).UTC())
	}
	return st, nil
}

// ReadSchedule implements schedule.Store.
func (s *Store) ReadSchedule(ctx context.Context, app, id string) (*schedule.State, error) {
	v, err := s.rdb.HGet(ctx, s.k.scheds(app), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, schedule.ErrScheduleNotFound
	}
	if err != nil {
		return nil, unavailable("read schedule", err)
	}
	return parseSchedule(app, id, v)
}

// ReadSchedules implements schedule.Store: one HGET each, in a pipeline.
func (s *Store) ReadSchedules(ctx context.Context, ids []scheduler.Ident) ([]*schedule.State, []error) {
	sts := make([]*schedule.State, len(ids))
	errs := make([]error, len(ids))
	if len(ids) == 0 {
		return sts, errs
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, s.k.scheds(id.App), id.ID)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, cmd := range cmds {
		v, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil):
			errs[i] = schedule.ErrScheduleNotFound
		case err != nil:
			errs[i] = unavailable("read schedule", err)
		default:
			sts[i], errs[i] = parseSchedule(ids[i].App, ids[i].ID, v)
		}
	}
	return sts, errs
}

func parseSchedule(app, id, v string) (*schedule.State, error) {
	rev, rec, ok := strings.Cut(v, "|")
	if !ok {
		return nil, fmt.Errorf("read schedule %s/%s: not a schedule record", app, id)
	}
	return decodeSchedule(app, id, atoi(rev), rec)
}

// WriteSchedule implements schedule.Store.
func (s *Store) WriteSchedule(ctx context.Context, st *schedule.State, expect int64) (int64, error) {
	if expect == 0 {
		// The set of applications first: a stored schedule is always listed.
		if err := s.rdb.SAdd(ctx, s.k.schedApps(), st.App).Err(); err != nil {
			return 0, unavailable("index schedule", err)
		}
	}
	return s.schCAS(ctx, st.App, st.ID, expect, "set", encodeSchedule(st))
}

// DeleteSchedule implements schedule.Store.
func (s *Store) DeleteSchedule(ctx context.Context, app, id string, expect int64) error {
	_, err := s.schCAS(ctx, app, id, expect, "del", "")
	return err
}

// WriteSchedules implements schedule.Store: schcas.lua for each, in a
// pipeline. It writes existing schedules (every expect > 0): the set of
// applications is not touched.
func (s *Store) WriteSchedules(ctx context.Context, sts []*schedule.State, expects []int64) ([]int64, []error) {
	revs := make([]int64, len(sts))
	errs := make([]error, len(sts))
	if len(sts) == 0 {
		return revs, errs
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(sts))
	for i, st := range sts {
		cmds[i] = luascripts.SchCAS.EvalSha(ctx, pipe, []string{s.k.scheds(st.App)}, st.ID, expects[i], "set", encodeSchedule(st))
	}
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			revs[i], errs[i] = s.schCAS(ctx, sts[i].App, sts[i].ID, expects[i], "set", encodeSchedule(sts[i]))
			continue
		}
		res, err := cmd.Int64Slice()
		revs[i], errs[i] = s.schCASResult("set", sts[i].App, sts[i].ID, expects[i], res, err)
	}
	return revs, errs
}

func (s *Store) schCAS(ctx context.Context, app, id string, expect int64, op string, rec any) (int64, error) {
	res, err := luascripts.SchCAS.Run(ctx, s.rdb, []string{s.k.scheds(app)}, id, expect, op, rec).Int64Slice()
	return s.schCASResult(op, app, id, expect, res, err)
}

// schCASResult reads schcas.lua's reply.
func (s *Store) schCASResult(op, app, id string, expect int64, res []int64, err error) (int64, error) {
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
// the last one shown. A page reads the application's ids (HKEYS) and the
// page's records (HMGET): listing costs what the application has, firing
// does not.
func (s *Store) ListSchedules(ctx context.Context, app, cursor string, limit int) ([]*schedule.State, string, error) {
	var afterApp, afterID string
	if cursor != "" {
		a, id, ok := strings.Cut(cursor, "/")
		if !ok || !scheduler.ValidApp(a) || !schedule.ValidID(id) || app != "" && a != app {
			return nil, "", scheduler.Invalid("cursor", "cursor is not one a previous page gave")
		}
		afterApp, afterID = a, id
	}
	apps, err := s.appsToList(ctx, app, s.k.schedApps())
	if err != nil {
		return nil, "", unavailable("list schedules", err)
	}
	var page []*schedule.State
	for _, a := range apps {
		if a < afterApp {
			continue
		}
		ids, err := s.rdb.HKeys(ctx, s.k.scheds(a)).Result()
		if err != nil {
			return nil, "", unavailable("list schedules", err)
		}
		slices.Sort(ids)
		if a == afterApp {
			i, found := slices.BinarySearch(ids, afterID)
			if found {
				i++
			}
			ids = ids[i:]
		}
		ids = ids[:min(len(ids), limit+1-len(page))]
		if len(ids) == 0 {
			continue
		}
		vals, err := s.rdb.HMGet(ctx, s.k.scheds(a), ids...).Result()
		if err != nil {
			return nil, "", unavailable("list schedules", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // deleted meanwhile
			}
			st, err := parseSchedule(a, ids[i], str)
			if err != nil {
				return nil, "", err
			}
			page = append(page, st)
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
	vals, err := s.readEvents(ctx, []string{s.k.ev(sh, m)}, true)
	if err != nil {
		return nil, unavailable("replace", err)
	}
	if vals[0] != nil {
		if c, ok := vals[0][fCreated].(string); ok {
			ev.CreatedAt = msTime(c)
		}
	}
	keys, args := s.scheduleCall(ev, now)
	res, err := luascripts.OccReplace.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, unavailable("replace", err)
	}
	return existingEvent(ev, res)
}
