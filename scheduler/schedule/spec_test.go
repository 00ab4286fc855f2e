package schedule

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cassata/cassata/scheduler"
)

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustCron(t *testing.T, expr, tz string) Spec {
	t.Helper()
	s, err := ParseSpec(expr, "", tz, time.Time{}, time.Time{}, time.Time{})
	if err != nil {
		t.Fatalf("ParseSpec(%q, tz %q): %v", expr, tz, err)
	}
	return s
}

func sameTimes(got, want []time.Time) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func formatUTC(ts []time.Time) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.UTC().Format("2006-01-02 15:04:05.000")
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func TestParseSpecErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		cron, every, tz string
		field           string
		message         string // a part of the message, when it matters
	}{
		{name: "both", cron: "* * * * *", every: "1m", field: "cron", message: "exactly one of cron and every is required"},
		{name: "neither", field: "cron", message: "exactly one of cron and every is required"},
		{name: "blank cron", cron: "  ", field: "cron", message: "exactly one of cron and every is required"},
		{name: "@every in cron", cron: "@every 5m", field: "cron", message: "every"},
		{name: "CRON_TZ prefix", cron: "CRON_TZ=UTC * * * * *", field: "cron", message: "timezone"},
		{name: "TZ prefix", cron: "TZ=Europe/Berlin 0 9 * * *", field: "cron", message: "timezone"},
		{name: "TZ prefix without fields", cron: "TZ=UTC", field: "cron"},
		{name: "six fields", cron: "0 * * * * *", field: "cron", message: "expected exactly 5 fields"},
		{name: "four fields", cron: "* * * *", field: "cron", message: "expected exactly 5 fields"},
		{name: "minute out of range", cron: "61 * * * *", field: "cron", message: "above maximum"},
		{name: "hour out of range", cron: "0 24 * * *", field: "cron", message: "above maximum"},
		{name: "day of week 7", cron: "0 0 * * 7", field: "cron"},
		{name: "zero step", cron: "*/0 * * * *", field: "cron"},
		{name: "unknown name", cron: "0 0 * FOO *", field: "cron"},
		{name: "unknown descriptor", cron: "@fortnightly", field: "cron", message: "unrecognized descriptor"},
		{name: "every below 1s", every: "500ms", field: "every", message: "at least 1s"},
		{name: "every not a duration", every: "abc", field: "every", message: "at least 1s"},
		{name: "every negative", every: "-5m", field: "every"},
		{name: "every without unit", every: "60", field: "every"},
		{name: "unknown timezone", cron: "* * * * *", tz: "Mars/Base", field: "timezone"},
		{name: "Local timezone", cron: "* * * * *", tz: "Local", field: "timezone"},
		{name: "timezone path", every: "1m", tz: "../../etc/passwd", field: "timezone"},
		{name: "unknown timezone with every", every: "1m", tz: "Mars/Base", field: "timezone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec(tt.cron, tt.every, tt.tz, utc(2027, 1, 1, 0, 0), time.Time{}, time.Time{})
			var verr *scheduler.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a *scheduler.ValidationError", err)
			}
			if verr.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", verr.Field, tt.field, err)
			}
			if !strings.Contains(verr.Message, tt.message) {
				t.Errorf("message = %q, want it to contain %q", verr.Message, tt.message)
			}
			if !errors.Is(err, scheduler.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
		})
	}
}

func TestParseSpecAccepts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ cron, every, tz string }{
		{cron: "* * * * *"},
		{cron: " 0 9 * * MON-FRI ", tz: "Europe/Berlin"},
		{cron: "0 0 1 JAN,jul ?"},
		{cron: "@daily", tz: "UTC"},
		{every: "1s"},
		{every: "1h30m", tz: "America/New_York"},
	} {
		s, err := ParseSpec(tt.cron, tt.every, tt.tz, utc(2027, 1, 1, 0, 0), time.Time{}, time.Time{})
		if err != nil {
			t.Errorf("ParseSpec(%q, %q, %q): %v", tt.cron, tt.every, tt.tz, err)
			continue
		}
		if want := cmpOr(tt.tz, "UTC"); s.Location().String() != want {
			t.Errorf("Location() = %v, want %v", s.Location(), want)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestNextCron covers the cron syntax in UTC and zones far from any daylight-saving change.
func TestNextCron(t *testing.T) {
	t.Parallel()
	from := time.Date(2027, 5, 12, 10, 17, 31, 123456789, time.UTC) // a Wednesday
	tests := []struct {
		name, cron, tz string
		after          time.Time
		want           []time.Time
	}{
		{"every minute", "* * * * *", "", from, []time.Time{
			utc(2027, 5, 12, 10, 18), utc(2027, 5, 12, 10, 19), utc(2027, 5, 12, 10, 20),
		}},
		{"exactly on an occurrence", "* * * * *", "", utc(2027, 5, 12, 10, 18), []time.Time{
			utc(2027, 5, 12, 10, 19), utc(2027, 5, 12, 10, 20),
		}},
		{"just before an occurrence", "*/5 * * * *", "", utc(2027, 5, 12, 10, 20).Add(-time.Nanosecond), []time.Time{
			utc(2027, 5, 12, 10, 20), utc(2027, 5, 12, 10, 25),
		}},
		{"@hourly", "@hourly", "", from, []time.Time{utc(2027, 5, 12, 11, 0), utc(2027, 5, 12, 12, 0)}},
		{"@daily", "@daily", "", from, []time.Time{utc(2027, 5, 13, 0, 0), utc(2027, 5, 14, 0, 0)}},
		{"@midnight", "@midnight", "", from, []time.Time{utc(2027, 5, 13, 0, 0), utc(2027, 5, 14, 0, 0)}},
		{"@weekly", "@weekly", "", from, []time.Time{utc(2027, 5, 16, 0, 0), utc(2027, 5, 23, 0, 0)}},
		{"@monthly", "@monthly", "", from, []time.Time{utc(2027, 6, 1, 0, 0), utc(2027, 7, 1, 0, 0)}},
		{"@yearly", "@yearly", "", from, []time.Time{utc(2028, 1, 1, 0, 0), utc(2029, 1, 1, 0, 0)}},
		{"@annually", "@annually", "", from, []time.Time{utc(2028, 1, 1, 0, 0), utc(2029, 1, 1, 0, 0)}},
		{"list", "5,10,50 * * * *", "", from, []time.Time{
			utc(2027, 5, 12, 10, 50), utc(2027, 5, 12, 11, 5), utc(2027, 5, 12, 11, 10),
		}},
		{"range and step", "10-20/5 8-9 * * *", "", from, []time.Time{
			utc(2027, 5, 13, 8, 10), utc(2027, 5, 13, 8, 15), utc(2027, 5, 13, 8, 20), utc(2027, 5, 13, 9, 10),
		}},
		{"step from a start", "50/4 * * * *", "", from, []time.Time{
			utc(2027, 5, 12, 10, 50), utc(2027, 5, 12, 10, 54), utc(2027, 5, 12, 10, 58), utc(2027, 5, 12, 11, 50),
		}},
		{"names", "0 9 * jan,JUN Mon-Wed", "", from, []time.Time{
			utc(2027, 6, 1, 9, 0), utc(2027, 6, 2, 9, 0), utc(2027, 6, 7, 9, 0),
		}},
		{"weekdays in Berlin", "0 9 * * 1-5", "Europe/Berlin", from, []time.Time{
			utc(2027, 5, 13, 7, 0), utc(2027, 5, 14, 7, 0), utc(2027, 5, 17, 7, 0),
		}},
		{"day of month or day of week", "0 0 13 * FRI", "", utc(2027, 8, 1, 0, 0), []time.Time{
			utc(2027, 8, 6, 0, 0), utc(2027, 8, 13, 0, 0), utc(2027, 8, 20, 0, 0), utc(2027, 8, 27, 0, 0),
			utc(2027, 9, 3, 0, 0), utc(2027, 9, 10, 0, 0), utc(2027, 9, 13, 0, 0),
		}},
		{"day of week with a star day of month", "0 0 * * FRI", "", utc(2027, 8, 1, 0, 0), []time.Time{
			utc(2027, 8, 6, 0, 0), utc(2027, 8, 13, 0, 0),
		}},
		{"day of month with a stepped day of week", "0 0 1 * */7", "", utc(2027, 8, 2, 0, 0), []time.Time{
			utc(2027, 8, 8, 0, 0), utc(2027, 8, 15, 0, 0), // */7 has no star bit: OR with the 1st
		}},
		{"31st skips short months", "0 12 31 * *", "", from, []time.Time{
			utc(2027, 5, 31, 12, 0), utc(2027, 7, 31, 12, 0), utc(2027, 8, 31, 12, 0), utc(2027, 10, 31, 12, 0),
		}},
		{"29 February", "0 0 29 2 *", "", from, []time.Time{utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0)}},
		{"never", "0 0 30 2 *", "", from, nil},
		{"never in a zone", "0 0 31 4,6 *", "Asia/Tokyo", from, nil},
		{"Tokyo midnight", "0 0 * * *", "Asia/Tokyo", from, []time.Time{utc(2027, 5, 12, 15, 0), utc(2027, 5, 13, 15, 0)}},
		{"Kolkata half hour", "0 0 * * *", "Asia/Kolkata", from, []time.Time{utc(2027, 5, 12, 18, 30)}},
		{"across the year", "59 23 31 12 *", "", from, []time.Time{utc(2027, 12, 31, 23, 59), utc(2028, 12, 31, 23, 59)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.cron, tt.tz)
			got := s.NextN(tt.after, len(tt.want)+1)
			if len(tt.want) > 0 {
				got = got[:min(len(got), len(tt.want))]
			}
			if !sameTimes(got, tt.want) {
				t.Errorf("NextN(%v) = %s, want %s", tt.after, formatUTC(got), formatUTC(tt.want))
			}
			if len(tt.want) == 0 && !s.Next(tt.after).IsZero() {
				t.Errorf("Next(%v) = %v, want the zero time", tt.after, s.Next(tt.after))
			}
			for _, g := range got {
				if g.Location() != s.Location() {
					t.Errorf("occurrence %v is not in the spec's location %v", g, s.Location())
				}
			}
		})
	}
}

// TestNextDaylightSaving pins the rules of API.md §8 on the wall clock around transitions.
func TestNextDaylightSaving(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cron, tz string
		after          time.Time
		want           []time.Time
	}{
		// Europe/Berlin jumps from 02:00 CET to 03:00 CEST at 2027-03-28 01:00 UTC.
		{"Berlin spring: skipped 02:30 fires at the jump", "30 2 * * *", "Europe/Berlin", utc(2027, 3, 26, 12, 0), []time.Time{
			utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30),
		}},
		{"Berlin spring: a skipped hour fires once", "*/15 2 * * *", "Europe/Berlin", utc(2027, 3, 27, 12, 0), []time.Time{
			utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 0), utc(2027, 3, 29, 0, 15),
		}},
		{"Berlin spring: skipped and real walls at the jump fire once", "0,30 2,3 * * *", "Europe/Berlin", utc(2027, 3, 27, 12, 0), []time.Time{
			utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 0),
		}},
		{"Berlin spring: star hour follows real time", "0,30 * * * *", "Europe/Berlin", utc(2027, 3, 28, 0, 0), []time.Time{
			utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 1, 30), utc(2027, 3, 28, 2, 0),
		}},
		{"Berlin spring: @hourly", "@hourly", "Europe/Berlin", utc(2027, 3, 27, 23, 30), []time.Time{
			utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 2, 0),
		}},
		{"Berlin spring: after the jump instant", "30 2 * * *", "Europe/Berlin", utc(2027, 3, 28, 1, 0), []time.Time{
			utc(2027, 3, 29, 0, 30),
		}},
		// Europe/Berlin falls back from 03:00 CEST to 02:00 CET at 2027-10-31 01:00 UTC.
		{"Berlin fall: repeated 02:30 fires the first time", "30 2 * * *", "Europe/Berlin", utc(2027, 10, 29, 12, 0), []time.Time{
			utc(2027, 10, 30, 0, 30), utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30),
		}},
		{"Berlin fall: not again during the repeat", "30 2 * * *", "Europe/Berlin", utc(2027, 10, 31, 0, 30), []time.Time{
			utc(2027, 11, 1, 1, 30),
		}},
		{"Berlin fall: star hour fires both times", "*/30 * * * *", "Europe/Berlin", utc(2027, 10, 30, 23, 45), []time.Time{
			utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 0), utc(2027, 10, 31, 1, 30),
			utc(2027, 10, 31, 2, 0),
		}},
		{"Berlin fall: star hour from inside the repeat", "*/30 * * * *", "Europe/Berlin", utc(2027, 10, 31, 0, 40), []time.Time{
			utc(2027, 10, 31, 1, 0), utc(2027, 10, 31, 1, 30), utc(2027, 10, 31, 2, 0),
		}},
		{"Berlin fall: a restricted hour span fires once per wall", "0 1-3 * * *", "Europe/Berlin", utc(2027, 10, 30, 22, 0), []time.Time{
			utc(2027, 10, 30, 23, 0), utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 2, 0),
		}},
		// America/New_York: 2027-03-14 02:00 EST → 03:00 EDT (07:00 UTC); 2027-11-07 02:00 EDT → 01:00 EST (06:00 UTC).
		{"New York spring: skipped", "30 2 * * *", "America/New_York", utc(2027, 3, 13, 12, 0), []time.Time{
			utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30),
		}},
		{"New York fall: repeated", "30 1 * * *", "America/New_York", utc(2027, 11, 6, 12, 0), []time.Time{
			utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30),
		}},
		// Australia/Lord_Howe shifts by 30 minutes: 2027-10-03 02:00 +1030 → 02:30 +11 (2027-10-02 15:30 UTC);
		// 2027-04-04 02:00 +11 → 01:30 +1030 (2027-04-03 15:00 UTC).
		{"Lord Howe spring: skipped", "15 2 * * *", "Australia/Lord_Howe", utc(2027, 10, 2, 0, 0), []time.Time{
			utc(2027, 10, 2, 15, 30), utc(2027, 10, 3, 15, 15),
		}},
		{"Lord Howe fall: repeated", "45 1 * * *", "Australia/Lord_Howe", utc(2027, 4, 3, 0, 0), []time.Time{
			utc(2027, 4, 3, 14, 45), utc(2027, 4, 4, 15, 15),
		}},
		{"Lord Howe fall: star hour fires both times", "45 * * * *", "Australia/Lord_Howe", utc(2027, 4, 3, 14, 0), []time.Time{
			utc(2027, 4, 3, 14, 45), utc(2027, 4, 3, 15, 15), utc(2027, 4, 3, 16, 15),
		}},
		// Pacific/Apia skipped 2011-12-30 entirely: 2011-12-29 24:00 -10 became 2011-12-31 00:00 +14.
		{"Apia skipped day", "0 12 * * *", "Pacific/Apia", utc(2011, 12, 29, 12, 0), []time.Time{
			utc(2011, 12, 29, 22, 0), utc(2011, 12, 30, 10, 0), utc(2011, 12, 30, 22, 0),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.cron, tt.tz)
			if got := s.NextN(tt.after, len(tt.want)); !sameTimes(got, tt.want) {
				t.Errorf("NextN(%v) = %s, want %s", tt.after.UTC(), formatUTC(got), formatUTC(tt.want))
			}
		})
	}
}

// TestNextBerlinTransitionDays counts a day's occurrences the way a user would notice them.
func TestNextBerlinTransitionDays(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	count := func(s Spec, from, to time.Time) []time.Time {
		var out []time.Time
		for next := s.Next(from); !next.IsZero() && next.Before(to); next = s.Next(next) {
			out = append(out, next)
		}
		return out
	}
	spring := count(mustCron(t, "*/15 2 * * *", "Europe/Berlin"),
		time.Date(2027, 3, 28, 0, 0, 0, 0, berlin), time.Date(2027, 3, 29, 0, 0, 0, 0, berlin))
	if want := []time.Time{utc(2027, 3, 28, 1, 0)}; !sameTimes(spring, want) {
		t.Errorf("*/15 2 * * * on 2027-03-28 = %s, want %s", formatUTC(spring), formatUTC(want))
	}
	fall := count(mustCron(t, "*/30 * * * *", "Europe/Berlin"),
		utc(2027, 10, 31, 0, 0).Add(-time.Second), utc(2027, 10, 31, 2, 0)) // 02:00 CEST to 03:00 CET
	if want := []time.Time{utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 0), utc(2027, 10, 31, 1, 30)}; !sameTimes(fall, want) {
		t.Errorf("*/30 * * * * from 02:00 to 03:00 on 2027-10-31 = %s, want %s", formatUTC(fall), formatUTC(want))
	}
	daily := count(mustCron(t, "@daily", "Europe/Berlin"),
		time.Date(2027, 3, 1, 0, 0, 0, 0, berlin), time.Date(2027, 11, 30, 0, 0, 0, 0, berlin))
	for _, d := range daily {
		if h, m, _ := d.Clock(); h != 0 || m != 0 {
			t.Errorf("@daily fired at %v, not at local midnight", d)
		}
	}
}

func TestNextBounds(t *testing.T) {
	t.Parallel()
	start := time.Date(2027, 5, 12, 10, 17, 31, 500, time.UTC)
	end := utc(2027, 5, 12, 10, 20)
	tests := []struct {
		name          string
		cron, every   string
		anchor        time.Time
		after         time.Time
		start, end    time.Time
		want          []time.Time
		wantZeroAfter bool
	}{
		{name: "cron from startAt", cron: "* * * * *", after: utc(2027, 1, 1, 0, 0), start: start, end: end,
			want: []time.Time{utc(2027, 5, 12, 10, 18), utc(2027, 5, 12, 10, 19), utc(2027, 5, 12, 10, 20)}},
		{name: "cron startAt on an occurrence", cron: "* * * * *", after: utc(2027, 1, 1, 0, 0), start: utc(2027, 5, 12, 10, 18),
			end: end, want: []time.Time{utc(2027, 5, 12, 10, 18), utc(2027, 5, 12, 10, 19), utc(2027, 5, 12, 10, 20)}},
		{name: "cron after endAt", cron: "* * * * *", after: end, end: end},
		{name: "cron long after endAt", cron: "0 0 30 2 *", after: utc(2030, 1, 1, 0, 0), end: end},
		{name: "cron next beyond endAt", cron: "0 0 1 * *", after: utc(2027, 5, 1, 0, 0), end: end},
		{name: "every from startAt", every: "1m", anchor: utc(2027, 5, 12, 10, 0), after: utc(2027, 1, 1, 0, 0),
			start: start, end: end, want: []time.Time{utc(2027, 5, 12, 10, 18), utc(2027, 5, 12, 10, 19), utc(2027, 5, 12, 10, 20)}},
		{name: "every after endAt", every: "1m", anchor: utc(2027, 5, 12, 10, 0), after: end.Add(-time.Millisecond), end: end,
			want: []time.Time{end}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSpec(tt.cron, tt.every, "Europe/Berlin", tt.anchor, tt.start, tt.end)
			if err != nil {
				t.Fatal(err)
			}
			got := s.NextN(tt.after, 10)
			if !sameTimes(got, tt.want) {
				t.Errorf("NextN(%v) = %s, want %s", tt.after, formatUTC(got), formatUTC(tt.want))
			}
			for _, g := range got {
				if g.Before(tt.start) || (!tt.end.IsZero() && g.After(tt.end)) {
					t.Errorf("occurrence %v outside [%v, %v]", g, tt.start, tt.end)
				}
			}
			if !s.Next(tt.end).IsZero() {
				t.Errorf("Next(endAt) = %v, want the zero time", s.Next(tt.end))
			}
		})
	}
}

func TestNextEvery(t *testing.T) {
	t.Parallel()
	anchor := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := []struct {
		name   string
		every  string
		tz     string
		anchor time.Time
		after  time.Time
		want   []time.Time
	}{
		{"before the anchor: the anchor", "90s", "", anchor, anchor.Add(-time.Hour),
			[]time.Time{anchor, anchor.Add(90 * time.Second), anchor.Add(180 * time.Second)}},
		{"long before the anchor", "90s", "", anchor, time.Time{}, []time.Time{anchor}},
		{"on the anchor", "90s", "", anchor, anchor, []time.Time{anchor.Add(90 * time.Second)}},
		{"sub-millisecond after, before an occurrence", "90s", "", anchor, anchor.Add(90*time.Second - 400*time.Microsecond),
			[]time.Time{anchor.Add(90 * time.Second)}},
		{"sub-millisecond after, past an occurrence", "90s", "", anchor, anchor.Add(90*time.Second + 400*time.Microsecond),
			[]time.Time{anchor.Add(180 * time.Second)}},
		{"anchor with sub-milliseconds", "1s", "", anchor.Add(1500 * time.Microsecond), anchor,
			[]time.Time{anchor.Add(ms), anchor.Add(time.Second + ms)}},
		{"interval with sub-milliseconds", "1.0005s", "", anchor, anchor,
			[]time.Time{anchor.Add(1000 * ms), anchor.Add(2001 * ms), anchor.Add(3001 * ms)}},
		{"large k", "1s", "", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 6, 1, 12, 34, 56, 789e6, time.UTC),
			[]time.Time{time.Date(2027, 6, 1, 12, 34, 57, 0, time.UTC)}},
		{"real time across daylight saving", "24h", "Europe/Berlin", utc(2027, 3, 27, 12, 0), utc(2027, 3, 27, 0, 0),
			[]time.Time{utc(2027, 3, 27, 12, 0), utc(2027, 3, 28, 12, 0), utc(2027, 3, 29, 12, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSpec("", tt.every, tt.tz, tt.anchor, time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.NextN(tt.after, len(tt.want)); !sameTimes(got, tt.want) {
				t.Errorf("NextN(%v) = %s, want %s", tt.after, formatUTC(got), formatUTC(tt.want))
			}
		})
	}
}

// TestNextEveryCenturies checks that k comes from arithmetic, not from a Duration that would saturate
// after 292 years.
func TestNextEveryCenturies(t *testing.T) {
	t.Parallel()
	anchor := time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := ParseSpec("", "7s", "", anchor, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Time{
		time.Date(2200, 7, 4, 3, 2, 1, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		next := s.Next(after)
		if !next.After(after) || next.Add(-7*time.Second).After(after) {
			t.Errorf("Next(%v) = %v, not the first 7s step after it", after, next)
		}
		if (next.Unix()-anchor.Unix())%7 != 0 || next.Nanosecond() != 0 {
			t.Errorf("Next(%v) = %v, not on a 7s step from %v", after, next, anchor)
		}
	}
}

// TestNextMatchesRobfigInUTC checks the bit-field walk against robfig/cron's own Next where no daylight
// saving can tell them apart.
func TestNextMatchesRobfigInUTC(t *testing.T) {
	t.Parallel()
	exprs := []string{
		"* * * * *", "*/7 * * * *", "0 9 * * 1-5", "5,35 */3 * * *", "0 0 13 * FRI", "0 0 1,15 * *",
		"30 4 * FEB,AUG SUN", "0 0 31 * *", "0 0 29 2 *", "59 23 L * *", "0 12 * * 0", "15 10 1-7 * MON",
		"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 0 1 1 *", "*/13 5-9 10-20 * *",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, expr := range exprs {
		parsed, err := cronParser.Parse(expr)
		if err != nil {
			continue // "L" is not standard syntax; the parser refuses it and so do we
		}
		ref := parsed.(*cron.SpecSchedule)
		ref.Location = time.UTC
		s := mustCron(t, expr, "")
		for range 300 {
			after := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
			if got, want := s.Next(after), ref.Next(after); !got.Equal(want) {
				t.Fatalf("%q: Next(%v) = %v, robfig says %v", expr, after, got, want)
			}
		}
	}
}

// TestNextIsNeverEarly would catch an occurrence at or before `after`, whatever the zone.
func TestNextIsNeverEarly(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana", "Pacific/Apia", "Antarctica/Troll"}
	exprs := []string{"* * * * *", "30 2 * * *", "*/15 2 * * *", "0,30 * * * *", "0 0 * * *", "0 1-3 * * *", "@monthly"}
	for _, tz := range zones {
		for _, expr := range exprs {
			s := mustCron(t, expr, tz)
			for range 200 {
				after := time.Unix(rng.Int64N(2e9)+1e9, rng.Int64N(1e9))
				next := s.Next(after)
				if !next.After(after) {
					t.Fatalf("%q in %s: Next(%v) = %v, not after it", expr, tz, after.UTC(), next.UTC())
				}
				if next.Sub(after) > 32*24*time.Hour {
					t.Fatalf("%q in %s: Next(%v) = %v, too far", expr, tz, after.UTC(), next.UTC())
				}
			}
		}
	}
	every, err := ParseSpec("", "1m30.25s", "", time.Unix(1.7e9, 0), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		after := time.Unix(rng.Int64N(2e9)+1e9, rng.Int64N(1e9))
		if next := every.Next(after); !next.After(after) || next.Nanosecond()%1e6 != 0 {
			t.Fatalf("every: Next(%v) = %v, not after it or not in milliseconds", after, next)
		}
	}
}

// TestNextMatchesWallClockModel compares Next, around every transition of a few zones, with a brute-force
// model of API.md §8 that walks real time minute by minute and watches the wall clock.
func TestNextMatchesWallClockModel(t *testing.T) {
	t.Parallel()
	zones := []struct {
		name string
		year int
	}{
		{"Europe/Berlin", 2027}, {"America/New_York", 2027}, {"Australia/Lord_Howe", 2027},
		{"America/Havana", 2027}, {"America/Santiago", 2027}, {"Antarctica/Troll", 2027}, {"Pacific/Apia", 2011},
	}
	exprs := []string{
		"30 2 * * *", "*/15 2 * * *", "0,30 * * * *", "*/30 * * * *", "* * * * *", "0 * * * *", "15,45 0-3 * * *",
		"0 0 * * *", "59 23 * * *", "*/7 0-4 * * *", "30 1 * * *", "0 2 * * *", "45 23,0,1 * * *", "0 12 * * *",
	}
	for _, zone := range zones {
		loc := mustLoad(t, zone.name)
		var transitions []time.Time
		for at := time.Date(zone.year, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() == zone.year; {
			_, end := at.In(loc).ZoneBounds()
			if end.IsZero() || end.Year() != zone.year {
				break
			}
			transitions = append(transitions, end)
			at = end
		}
		if len(transitions) == 0 {
			t.Fatalf("%s has no transition in %d", zone.name, zone.year)
		}
		for _, expr := range exprs {
			t.Run(zone.name+"/"+expr, func(t *testing.T) {
				t.Parallel()
				s := mustCron(t, expr, zone.name)
				rng := rand.New(rand.NewPCG(5, 6))
				for _, tr := range transitions {
					from, to := tr.Add(-48*time.Hour), tr.Add(48*time.Hour)
					want := wallClockModel(t, expr, loc, from, to)
					var got []time.Time
					for next := s.Next(from); !next.IsZero() && next.Before(to); next = s.Next(next) {
						got = append(got, next)
					}
					if !sameTimes(got, want) {
						i := 0
						for i < min(len(got), len(want)) && got[i].Equal(want[i]) {
							i++
						}
						t.Fatalf("around %v: %d occurrences, want %d; first difference at #%d:\n got %s\nwant %s",
							tr.UTC(), len(got), len(want), i, formatUTC(got[i:min(i+3, len(got))]), formatUTC(want[i:min(i+3, len(want))]))
					}
					for range 100 {
						after := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)) - int64(time.Hour))))
						i := 0
						for i < len(want) && !want[i].After(after) {
							i++
						}
						if i == len(want) {
							continue
						}
						if got := s.Next(after); !got.Equal(want[i]) {
							t.Fatalf("Next(%v) = %v, want %v", after.UTC(), got.UTC(), want[i].UTC())
						}
					}
				}
			})
		}
	}
}

// wallClockModel lists the occurrences in (from, to) by walking real time minute by minute: a matching
// wall time fires the first instant it shows (every instant, when the hour field is `*`), and matching
// wall times jumped over fire at the instant of the jump (never, when the hour field is `*`).
func wallClockModel(t *testing.T, expr string, loc *time.Location, from, to time.Time) []time.Time {
	t.Helper()
	parsed, err := cronParser.Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	ref := parsed.(*cron.SpecSchedule)
	hourStar := ref.Hour&starBit != 0
	matches := func(w time.Time) bool { // w: a wall time read as UTC
		if ref.Minute&(1<<w.Minute()) == 0 || ref.Hour&(1<<w.Hour()) == 0 || ref.Month&(1<<int(w.Month())) == 0 {
			return false
		}
		dom, dow := ref.Dom&(1<<w.Day()) != 0, ref.Dow&(1<<int(w.Weekday())) != 0
		if ref.Dom&starBit != 0 || ref.Dow&starBit != 0 {
			return dom && dow
		}
		return dom || dow
	}
	wall := func(at time.Time) time.Time {
		l := at.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC)
	}
	seen := map[time.Time]bool{}
	var out []time.Time
	begin := from.Add(-72 * time.Hour).Truncate(time.Minute) // early enough to have seen repeated walls
	prev := wall(begin.Add(-time.Minute))
	for at := begin; at.Before(to); at = at.Add(time.Minute) {
		w := wall(at)
		fires := false
		if hourStar {
			fires = matches(w)
		} else {
			for v := prev.Add(time.Minute); v.Before(w); v = v.Add(time.Minute) {
				fires = fires || matches(v)
			}
			fires = fires || (matches(w) && !seen[w])
		}
		seen[w] = true
		prev = w
		if fires && at.After(from) {
			out = append(out, at)
		}
	}
	return out
}

func TestNextN(t *testing.T) {
	t.Parallel()
	s := mustCron(t, "0 9 * * 1-5", "Europe/Berlin")
	got := s.NextN(utc(2027, 3, 25, 12, 0), 5) // Thursday; Berlin springs forward on Sunday the 28th
	want := []time.Time{utc(2027, 3, 26, 8, 0), utc(2027, 3, 29, 7, 0), utc(2027, 3, 30, 7, 0), utc(2027, 3, 31, 7, 0), utc(2027, 4, 1, 7, 0)}
	if !sameTimes(got, want) {
		t.Errorf("NextN = %s, want %s", formatUTC(got), formatUTC(want))
	}
	if got := s.NextN(utc(2027, 3, 25, 12, 0), 0); len(got) != 0 {
		t.Errorf("NextN(…, 0) = %v, want none", got)
	}
	never := mustCron(t, "0 0 30 2 *", "")
	if got := never.NextN(utc(2027, 3, 25, 12, 0), 5); len(got) != 0 {
		t.Errorf("NextN of a cron that never matches = %v, want none", got)
	}
}

func TestZeroSpec(t *testing.T) {
	t.Parallel()
	var s Spec
	if next := s.Next(utc(2027, 1, 1, 0, 0)); !next.IsZero() {
		t.Errorf("zero Spec: Next = %v, want the zero time", next)
	}
	if s.Location() != time.UTC {
		t.Errorf("zero Spec: Location = %v, want UTC", s.Location())
	}
}
