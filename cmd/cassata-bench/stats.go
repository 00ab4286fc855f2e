package main

import (
	"math"
	"slices"
	"time"
)

// deliveryStats summarises what the sink received for one workload's events.
type deliveryStats struct {
	Expected   int // events created and waited for
	Delivered  int // distinct expected events that arrived at least once
	Missing    int // expected events that never arrived
	Dups       int // arrivals beyond the first of an expected event
	Early      int // expected events whose first arrival came before their due time
	Unexpected int // arrivals of events nobody was waiting for (e.g. far-future backlog)

	// Lateness of each expected event's first arrival relative to its due
	// time; negative when early.
	LateMin, LateP50, LateP99, LateMax time.Duration

	LastArrival time.Time // the latest first arrival among expected events
}

// analyze matches arrivals against due, which maps "<app>/<id>" to the due
// time of every event the workload created.
func analyze(due map[string]time.Time, arrivals []arrival) deliveryStats {
	st := deliveryStats{Expected: len(due)}
	first := make(map[string]time.Time, len(due))
	for _, a := range arrivals {
		k := a.key()
		if _, ok := due[k]; !ok {
			st.Unexpected++
			continue
		}
		if t, seen := first[k]; seen {
			st.Dups++
			if a.At.Before(t) { // arrivals are recorded in order, but be safe
				first[k] = a.At
			}
			continue
		}
		first[k] = a.At
	}

	late := make([]time.Duration, 0, len(first))
	for k, at := range first {
		d := at.Sub(due[k])
		if d < 0 {
			st.Early++
		}
		late = append(late, d)
		if at.After(st.LastArrival) {
			st.LastArrival = at
		}
	}
	st.Delivered = len(first)
	st.Missing = st.Expected - st.Delivered

	slices.Sort(late)
	st.LateP50 = percentile(late, 50)
	st.LateP99 = percentile(late, 99)
	if n := len(late); n > 0 {
		st.LateMin, st.LateMax = late[0], late[n-1]
	}
	return st
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty. Nearest rank always returns an observed
// value, so p99 of a small sample is a real delivery, not an interpolation.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// median returns the median of xs (the mean of the two middle values when
// len(xs) is even), or NaN when xs is empty.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ms converts d to fractional milliseconds for the report.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
