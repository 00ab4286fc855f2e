package schedule

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Schedule is a recurring event (API.md §8): when (Cron or Every, in
// Timezone, between StartAt and EndAt) and what (the event template).
type Schedule struct {
	App string
	ID  string
	// Exactly one of Cron (5 fields or a descriptor) and Every (a Go
	// duration of at least 1s) is set.
	Cron  string
	Every string
	// Timezone is an IANA name; "" and "UTC" are UTC. It matters for Cron only.
	Timezone string
	// StartAt and EndAt bound the occurrences (zero: unbounded).
	StartAt time.Time
	EndAt   time.Time
	Paused  bool
	// The template of every occurrence's event.
	URL                string
	Method             string
	Headers            map[string]string
	Body               []byte
	MaxAttempts        int
	Timeout            time.Duration
	MinBackoff         time.Duration
	MaxBackoff         time.Duration
	CallbackURL        string
	FailureCallbackURL string
	FlowKey            string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// State is a schedule as stored: the definition and where its chain of
// occurrences is.
type State struct {
	*Schedule
	// Rev is bumped by every write; writes are compare-and-set on it.
	Rev int64
	// Next is the time of the pending occurrence (the chain's head); zero
	// while paused or after the last one.
	Next time.Time
	// Runs are the times of the latest occurrences and triggers, newest
	// first (at most MaxRuns).
	Runs []time.Time
}

// Limits of schedules.
const (
	// MaxRuns is how many of its latest runs a schedule remembers.
	MaxRuns = 10
	// DefaultListLimit is the page size of List when none is given.
	DefaultListLimit = 50
	// MaxListLimit bounds the page size of List.
	MaxListLimit = 500
	// HeaderScheduleID names the schedule on every occurrence's request.
	HeaderScheduleID = "Cassata-Schedule-Id"
)

// Sentinel errors. Each wraps the scheduler's sentinel of the same meaning.
var (
	ErrScheduleNotFound = fmt.Errorf("schedule not found: %w", scheduler.ErrNotFound)
	ErrScheduleExists   = fmt.Errorf("a schedule with this app and id exists with different content: %w", scheduler.ErrDuplicate)
	// ErrRevChanged: a compare-and-set write found another revision.
	ErrRevChanged = fmt.Errorf("the schedule changed meanwhile: %w", scheduler.ErrConflict)
)

// ValidID reports whether s is a valid schedule id: [A-Za-z0-9._-]{1,64}.
func ValidID(s string) bool { return scheduler.ValidApp(s) }

// sameContent reports whether two schedules say the same thing,
// timestamps aside: an identical create is a replay, not a conflict.
func sameContent(a, b *Schedule) bool {
	return a.App == b.App && a.ID == b.ID && a.Cron == b.Cron && a.Every == b.Every &&
		tzName(a.Timezone) == tzName(b.Timezone) && a.StartAt.Equal(b.StartAt) && a.EndAt.Equal(b.EndAt) &&
		a.Paused == b.Paused && a.URL == b.URL && a.Method == b.Method && maps.Equal(a.Headers, b.Headers) &&
		string(a.Body) == string(b.Body) && a.MaxAttempts == b.MaxAttempts && a.Timeout == b.Timeout &&
		a.MinBackoff == b.MinBackoff && a.MaxBackoff == b.MaxBackoff && a.CallbackURL == b.CallbackURL &&
		a.FailureCallbackURL == b.FailureCallbackURL && a.FlowKey == b.FlowKey
}

func tzName(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// Spec compiles the schedule's timing. An `every` schedule without
// StartAt counts its occurrences from CreatedAt + every.
func (s *Schedule) Spec() (Spec, error) {
	anchor := s.StartAt
	if anchor.IsZero() && s.Every != "" {
		if d, err := time.ParseDuration(s.Every); err == nil {
			anchor = s.CreatedAt.Add(d)
		}
	}
	return ParseSpec(s.Cron, s.Every, s.Timezone, anchor, s.StartAt, s.EndAt)
}

// OccurrenceID is the event id of the schedule's occurrence at t:
// "<schedule id>@<Unix ms>".
func OccurrenceID(scheduleID string, t time.Time) string {
	return scheduleID + "@" + strconv.FormatInt(t.UnixMilli(), 10)
}

// ParseOccurrenceID splits an occurrence's event id into the schedule id
// and the occurrence time.
func ParseOccurrenceID(id string) (scheduleID string, at time.Time, ok bool) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 {
		return "", time.Time{}, false
	}
	ms, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || ms < 0 {
		return "", time.Time{}, false
	}
	return id[:i], time.UnixMilli(ms).UTC(), true
}

// Event is the schedule's occurrence at t: an ordinary event built from
// the template, with the Cassata-Schedule-Id header. A chained occurrence
// (kind occurrence) makes its successor when it is claimed; a trigger is a
// plain request.
func (s *Schedule) Event(t, now time.Time, chained bool) *scheduler.Event {
	h := make(map[string]string, len(s.Headers)+1)
	maps.Copy(h, s.Headers)
	h[HeaderScheduleID] = s.ID
	ev := &scheduler.Event{App: s.App, ID: OccurrenceID(s.ID, t), URL: s.URL, Method: s.Method, Headers: h,
		Body: s.Body, DueAt: t, MaxAttempts: s.MaxAttempts, Timeout: s.Timeout, MinBackoff: s.MinBackoff,
		MaxBackoff: s.MaxBackoff, CallbackURL: s.CallbackURL, FailureCallbackURL: s.FailureCallbackURL,
		FlowKey: s.FlowKey, CreatedAt: now, UpdatedAt: now}
	if chained {
		ev.Kind = scheduler.KindOccurrence
	}
	return ev
}
