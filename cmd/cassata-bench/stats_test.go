package main

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"p50 of two is the lower", []time.Duration{1, 2}, 50, 1},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"tiny p is the min", hundred, 0.001, time.Millisecond},
		{"p99 of 10 is the max", hundred[:10], 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if xs[0] != 3 {
		t.Errorf("median reordered its input: %v", xs)
	}
}

func TestAnalyze(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	due := map[string]time.Time{
		"a/1": t0,
		"a/2": t0,
		"a/3": t0.Add(10 * time.Millisecond),
		"a/4": t0, // never arrives
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	arrivals := []arrival{
		{At: at(2 * time.Millisecond), App: "a", ID: "1", Attempt: "1"},
		{At: at(5 * time.Millisecond), App: "a", ID: "3", Attempt: "1"}, // 5 ms early
		{At: at(8 * time.Millisecond), App: "a", ID: "2", Attempt: "1"},
		{At: at(9 * time.Millisecond), App: "a", ID: "1", Attempt: "2"},   // duplicate
		{At: at(30 * time.Millisecond), App: "a", ID: "1", Attempt: "3"},  // another duplicate
		{At: at(time.Millisecond), App: "backlog", ID: "1", Attempt: "1"}, // not expected
		{At: at(time.Millisecond), App: "b", ID: "1", Attempt: "1"},       // same id, other app
	}
	st := analyze(due, arrivals)

	want := deliveryStats{
		Expected: 4, Delivered: 3, Missing: 1, Dups: 2, Early: 1, Unexpected: 2,
		LateMin: -5 * time.Millisecond, LateP50: 2 * time.Millisecond, LateP99: 8 * time.Millisecond, LateMax: 8 * time.Millisecond,
		LastArrival: at(8 * time.Millisecond),
	}
	if st != want {
		t.Errorf("analyze =\n %+v\nwant\n %+v", st, want)
	}
}

func TestAnalyzeNothingArrived(t *testing.T) {
	t.Parallel()
	st := analyze(map[string]time.Time{"a/1": time.Now()}, nil)
	if st.Missing != 1 || st.Delivered != 0 || st.LateMax != 0 || !st.LastArrival.IsZero() {
		t.Errorf("analyze with no arrivals = %+v", st)
	}
}
