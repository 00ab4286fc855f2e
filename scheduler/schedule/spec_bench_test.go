package schedule

import (
	"testing"
	"time"
)

// BenchmarkNext measures one Next from a time that moves by a few seconds per call, the way a
// scheduler asks for the occurrence after the one it just produced.
func BenchmarkNext(b *testing.B) {
	from := time.Date(2027, 5, 12, 10, 17, 31, 0, time.UTC)
	for _, bm := range []struct{ name, cron, every, tz string }{
		{name: "every minute Berlin", cron: "* * * * *", tz: "Europe/Berlin"},
		{name: "weekdays at 9 Berlin", cron: "0 9 * * 1-5", tz: "Europe/Berlin"},
		{name: "every minute UTC", cron: "* * * * *"},
		{name: "never", cron: "0 0 30 2 *"},
		{name: "every 90s", every: "90s"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s, err := ParseSpec(bm.cron, bm.every, bm.tz, from, time.Time{}, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			after := from
			for b.Loop() {
				s.Next(after)
				after = after.Add(7 * time.Second)
			}
		})
	}
}

// BenchmarkNextTransitionDay measures Next on the day Berlin springs forward, where each candidate
// minute is resolved against the zone's periods.
func BenchmarkNextTransitionDay(b *testing.B) {
	s, err := ParseSpec("* * * * *", "", "Europe/Berlin", time.Time{}, time.Time{}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	after := time.Date(2027, 3, 28, 0, 30, 0, 0, time.UTC)
	for b.Loop() {
		s.Next(after)
	}
}
