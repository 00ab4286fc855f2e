package schedule

// TEMPORARY, not committed: stands in for helper-20's spec.go.

import (
	"time"

	"github.com/cassata/cassata/scheduler"
)

type Spec struct {
	every  time.Duration
	anchor time.Time
	loc    *time.Location
}

func ParseSpec(cronExpr, every, tz string, anchor, startAt, endAt time.Time) (Spec, error) {
	d, err := time.ParseDuration(every)
	if err != nil || d < time.Second {
		return Spec{}, scheduler.Invalid("every", "bad")
	}
	return Spec{every: d, anchor: anchor, loc: time.UTC}, nil
}
func (s Spec) Next(after time.Time) time.Time {
	if after.Before(s.anchor) {
		return s.anchor
	}
	k := after.Sub(s.anchor)/s.every + 1
	return s.anchor.Add(k * s.every).Truncate(time.Millisecond)
}
func (s Spec) NextN(after time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		after = s.Next(after)
		out = append(out, after)
	}
	return out
}
func (s Spec) Location() *time.Location { return s.loc }
