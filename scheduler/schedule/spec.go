package schedule

import (
	"math"
	"math/bits"
	"strings"
	"time"
	_ "time/tzdata" // distroless images have no zoneinfo; embed the IANA database

	"github.com/robfig/cron/v3"

	"github.com/cassata/cassata/scheduler"
)

// Spec is when a schedule's occurrences happen: a cron expression read on the wall clock of a time
// zone, or a fixed interval in real time from an anchor, bounded by an optional start and end.
//
// Cron occurrences follow the wall clock (API.md §8): a local time skipped by a daylight-saving jump
// fires once, at the jump; a local time that happens twice fires once, the first time. Schedules whose
// hour field is `*` follow real time instead: every instant whose local wall clock matches fires, so
// skipped local times never fire and repeated ones fire twice. We use robfig/cron only to parse; its
// Next resolves daylight saving differently, so Next here walks the parsed bit fields itself.
//
// Results are truncated to milliseconds, the precision of event due times.
type Spec struct {
	loc     *time.Location
	startAt time.Time
	endAt   time.Time

	// every > 0 marks an interval schedule: occurrences at anchor + k·every, k ≥ 0.
	every  time.Duration
	anchor time.Time

	// Cron bit fields as robfig/cron lays them out (bit i set: value i matches), without the star bit.
	minute, hour, dom, month, dow uint64
	// hourStar: the hour field is `*`, so the schedule follows real time across daylight saving.
	hourStar bool
	// dayAnd: day of month and day of week must both match, because one of them is `*`.
	dayAnd bool
}

const (
	// starBit is robfig/cron's mark of a field written as `*` or `?`.
	starBit = 1 << 63
	// maxOffset bounds the UTC offset of any zone in tzdata (local mean times reach about ±15h56m), so
	// every instant showing a given wall time lies within maxOffset of that wall time read as UTC.
	maxOffset = 18 * 3600
	// searchDays is how far Next looks for a matching cron day: 5 years.
	searchDays    = 5*366 + 2
	secondsPerDay = 86400
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec checks and compiles a schedule's timing. Exactly one of cronExpr and every is non-empty.
// tz is an IANA name ("" means UTC). anchor is the time of the first occurrence of an `every`
// schedule (the caller passes start_at, or the create time + every when there is no start_at);
// it is ignored for cron, and truncated to milliseconds for `every`. startAt and endAt zero mean no
// bound. Errors are *scheduler.ValidationError naming the field: "cron", "every" or "timezone"; both or
// neither of cronExpr and every is a "cron" error.
func ParseSpec(cronExpr, every, tz string, anchor, startAt, endAt time.Time) (Spec, error) {
	cronExpr, every = strings.TrimSpace(cronExpr), strings.TrimSpace(every)
	if (cronExpr == "") == (every == "") {
		return Spec{}, scheduler.Invalid("cron", "exactly one of cron and every is required")
	}
	s := Spec{startAt: startAt.Round(0), endAt: endAt.Round(0)}
	if every != "" {
		d, err := time.ParseDuration(every)
		if err != nil || d < time.Second {
			return Spec{}, scheduler.Invalid("every", "every must be a Go duration of at least 1s, got %q", every)
		}
		s.every, s.anchor = d, anchor.Truncate(time.Millisecond)
	} else if err := s.parseCron(cronExpr); err != nil {
		return Spec{}, err
	}
	loc, err := loadLocation(tz)
	if err != nil {
		return Spec{}, err
	}
	s.loc = loc
	return s, nil
}

func (s *Spec) parseCron(expr string) error {
	switch {
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return scheduler.Invalid("cron", "cron must not name a time zone (%q); use the timezone field", expr)
	case strings.HasPrefix(expr, "@every"):
		return scheduler.Invalid("cron", "cron does not take @every (%q); use the every field", expr)
	}
	parsed, err := cronParser.Parse(expr)
	if err != nil {
		return scheduler.Invalid("cron", "invalid cron expression %q: %v", expr, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok { // unreachable while @every is refused above, the only other kind the parser returns
		return scheduler.Invalid("cron", "unsupported cron expression %q", expr)
	}
	s.minute, s.hour = spec.Minute&^starBit, spec.Hour&^starBit
	s.dom, s.month, s.dow = spec.Dom&^starBit, spec.Month&^starBit, spec.Dow&^starBit
	s.hourStar = spec.Hour&starBit != 0
	s.dayAnd = spec.Dom&starBit != 0 || spec.Dow&starBit != 0
	return nil
}

func loadLocation(tz string) (*time.Location, error) {
	switch tz {
	case "":
		return time.UTC, nil
	case "Local": // the server's zone: a schedule must not change meaning with the machine it runs on
		return nil, scheduler.Invalid("timezone", "timezone must be an IANA name such as Europe/Berlin, not Local")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, scheduler.Invalid("timezone", "unknown timezone %q", tz)
	}
	return loc, nil
}

// Location returns the spec's time zone.
func (s Spec) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Next returns the first occurrence strictly after `after`, at or after startAt (when set),
// at or before endAt (when set), truncated to milliseconds, in the spec's Location; the zero time
// when there is none (after endAt, or a cron that never matches within 5 years such as `0 0 30 2 *`).
func (s Spec) Next(after time.Time) time.Time {
	var next time.Time
	switch {
	case s.every > 0:
		next = s.nextEvery(after)
	case s.minute != 0:
		next = s.nextCron(after)
	}
	if next.IsZero() || (!s.endAt.IsZero() && next.After(s.endAt)) {
		return time.Time{}
	}
	return next.In(s.Location())
}

// NextN returns up to n successive occurrences after `after` (for the admin UI's "next 5").
func (s Spec) NextN(after time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		next := s.Next(after)
		if next.IsZero() {
			break
		}
		out = append(out, next)
		after = next
	}
	return out
}

// nextEvery finds the least k ≥ 0 whose occurrence anchor + k·every, truncated to milliseconds, is
// after `after` and not before startAt. k comes from one 128-bit division so that an anchor centuries
// away neither loops nor overflows a time.Duration.
func (s Spec) nextEvery(after time.Time) time.Time {
	// floor_ms(x) > after ⇔ x ≥ floor_ms(after)+1ms, and floor_ms(x) ≥ startAt ⇔ x ≥ ceil_ms(startAt).
	target := after.Truncate(time.Millisecond).Add(time.Millisecond)
	if start := ceilMilli(s.startAt); start.After(target) {
		target = start
	}
	if !target.After(s.anchor) {
		return s.anchor
	}
	secs := target.Unix() - s.anchor.Unix()
	nanos := int64(target.Nanosecond() - s.anchor.Nanosecond())
	if nanos < 0 {
		secs, nanos = secs-1, nanos+1e9
	}
	// diff < 2^63 s · 1e9 and every ≥ 1e9 ns, so hi < every and the quotient fits in 64 bits.
	hi, lo := bits.Mul64(uint64(secs), 1e9)
	lo, carry := bits.Add64(lo, uint64(nanos), 0)
	k, rem := bits.Div64(hi+carry, lo, uint64(s.every))
	if rem != 0 {
		k++
	}
	hi, lo = bits.Mul64(k, uint64(s.every))
	addSecs, addNanos := bits.Div64(hi, lo, 1e9)
	next := time.Unix(s.anchor.Unix()+int64(addSecs), int64(s.anchor.Nanosecond())+int64(addNanos))
	return next.Truncate(time.Millisecond)
}

func ceilMilli(t time.Time) time.Time {
	c := t.Truncate(time.Millisecond)
	if c.Before(t) {
		c = c.Add(time.Millisecond)
	}
	return c
}

// zonePeriod is a span [start, end) of Unix seconds during which a zone keeps one UTC offset.
type zonePeriod struct {
	start, end int64
	offset     int64
}

// nextCron walks local days from the day of `after`, in Unix seconds: a wall time w of a day is the
// Unix second wu it would be in UTC, and the instants showing it are wu − offset for the offsets of
// the zone periods around that day. Most days lie inside a single period, where w has exactly one
// instant and the first matching minute comes straight from the bit fields; days near a transition
// resolve each candidate minute against the periods.
func (s Spec) nextCron(after time.Time) time.Time {
	// An occurrence t (whole seconds) must satisfy t > after and t ≥ startAt: t > low.
	low := after.Unix()
	if !s.startAt.IsZero() {
		start := s.startAt.Unix() // floor; t ≥ startAt ⇔ t > ceil(startAt)−1
		if s.startAt.Nanosecond() == 0 {
			start--
		}
		low = max(low, start)
	}
	end := int64(math.MaxInt64)
	if !s.endAt.IsZero() {
		end = s.endAt.Unix()
		if low >= end {
			return time.Time{}
		}
	}

	loc := s.Location()
	ly, lm, ld := time.Unix(low, 0).In(loc).Date()
	day := daysFromCivil(int64(ly), int64(lm), int64(ld)) - 1 // a day earlier: its walls may map after low
	lastDay := day + searchDays
	var (
		best  int64
		found bool
		cache = zonePeriod{start: math.MaxInt64, end: math.MinInt64} // empty: covers nothing
		buf   [8]zonePeriod
	)
	for day <= lastDay {
		dayStart := day * secondsPerDay
		if (found && dayStart-maxOffset >= best) || dayStart-maxOffset > end {
			break
		}
		y, m, d := civilFromDays(day)
		if s.month&(1<<m) == 0 {
			day += daysIn(y, m) - d + 1
			continue
		}
		if !s.dayMatches(d, weekday(day)) {
			day++
			continue
		}

		periods := buf[:0]
		lo, hi := dayStart-maxOffset, dayStart+secondsPerDay+maxOffset
		if cache.start <= lo && cache.end >= hi {
			periods = append(periods, cache)
		} else {
			periods = zonePeriods(loc, lo, hi, periods)
			cache = periods[len(periods)-1]
		}
		minOff, maxOff := periods[0].offset, periods[0].offset
		for _, p := range periods[1:] {
			minOff, maxOff = min(minOff, p.offset), max(maxOff, p.offset)
		}
		if found && dayStart-maxOff >= best {
			break
		}
		if len(periods) == 1 {
			if t, ok := s.firstOnDay(dayStart, periods[0].offset, low); ok && (!found || t < best) {
				best, found = t, true
			}
		} else {
			best, found = s.scanTransitionDay(dayStart, periods, minOff, maxOff, low, best, found)
		}
		day++
	}
	if !found {
		return time.Time{}
	}
	return time.Unix(best, 0)
}

// firstOnDay returns the first occurrence after low on a day whose wall clock keeps one offset.
func (s Spec) firstOnDay(dayStart, offset, low int64) (int64, bool) {
	mod := s.firstMinute(fromMinute(dayStart, offset, low))
	if mod < 0 {
		return 0, false
	}
	return dayStart + int64(mod)*60 - offset, true
}

// fromMinute returns the first minute of the day whose wall time, read with offset, is after low.
func fromMinute(dayStart, offset, low int64) int {
	threshold := low + offset - dayStart // as seconds into the day's wall clock
	switch {
	case threshold < 0:
		return 0
	case threshold >= secondsPerDay:
		return 24 * 60
	}
	return int(threshold/60) + 1
}

// scanTransitionDay resolves each matching minute of a day near a daylight-saving transition and
// returns the earliest occurrence after low, or best when that is earlier.
func (s Spec) scanTransitionDay(dayStart int64, periods []zonePeriod, minOff, maxOff, low, best int64, found bool) (int64, bool) {
	// Every instant of wall wu lies in [wu−maxOff, wu−minOff], which bounds both ends of the scan.
	for mod := s.firstMinute(fromMinute(dayStart, minOff, low)); mod >= 0; mod = s.firstMinute(mod + 1) {
		wall := dayStart + int64(mod)*60
		if found && wall-maxOff >= best {
			break
		}
		first, ok := int64(math.MaxInt64), false
		for _, p := range periods {
			t := wall - p.offset
			if t < p.start || t >= p.end {
				continue
			}
			if s.hourStar { // real time: each instant showing this wall fires
				if t > low && (!found || t < best) {
					best, found = t, true
				}
				continue
			}
			first, ok = min(first, t), true
		}
		if s.hourStar {
			continue
		}
		if !ok { // skipped by a jump forward: fires at the jump
			for i, p := range periods[:len(periods)-1] {
				if p.end+p.offset <= wall && wall < p.end+periods[i+1].offset {
					first, ok = p.end, true
					break
				}
			}
		}
		if ok && first > low && (!found || first < best) {
			best, found = first, true
		}
	}
	return best, found
}

// zonePeriods appends the periods of loc covering [lo, hi), merging neighbours with the same offset
// (a change of abbreviation alone moves no wall clock).
func zonePeriods(loc *time.Location, lo, hi int64, out []zonePeriod) []zonePeriod {
	for at := lo; ; {
		t := time.Unix(at, 0).In(loc)
		_, offset := t.Zone()
		start, end := t.ZoneBounds()
		p := zonePeriod{start: math.MinInt64, end: math.MaxInt64, offset: int64(offset)}
		if !start.IsZero() {
			p.start = start.Unix()
		}
		if !end.IsZero() {
			p.end = end.Unix()
		}
		if n := len(out); n > 0 && out[n-1].offset == p.offset {
			out[n-1].end = p.end
		} else {
			out = append(out, p)
		}
		if p.end >= hi || p.end <= at {
			return out
		}
		at = p.end
	}
}

// firstMinute returns the first matching minute of the day (hour·60 + minute) at or after from,
// or −1 when none is left.
func (s Spec) firstMinute(from int) int {
	if from >= 24*60 {
		return -1
	}
	h, m := from/60, from%60
	if s.hour&(1<<h) != 0 {
		if rest := s.minute >> m; rest != 0 {
			return h*60 + m + bits.TrailingZeros64(rest)
		}
	}
	later := s.hour >> (h + 1)
	if later == 0 {
		return -1
	}
	return (h+1+bits.TrailingZeros64(later))*60 + bits.TrailingZeros64(s.minute)
}

// dayMatches applies cron's day rule: when both day fields are restricted, either may match.
func (s Spec) dayMatches(dayOfMonth, dayOfWeek int64) bool {
	domMatch := s.dom&(1<<dayOfMonth) != 0
	dowMatch := s.dow&(1<<dayOfWeek) != 0
	if s.dayAnd {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm, which holds for negative years too).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// weekday returns the day of the week (0 = Sunday) of a day counted from 1970-01-01, a Thursday.
func weekday(day int64) int64 {
	return (day%7 + 7 + 4) % 7
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
