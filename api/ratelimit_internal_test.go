package api

import (
	"strconv"
	"testing"
	"time"
)

// TestRateLimiterForgetsIdleApplications: buckets of applications that
// went quiet are dropped once full again, so the map does not grow with
// every application ever seen, and a dropped bucket comes back full.
func TestRateLimiterForgetsIdleApplications(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newRateLimiter(10, 5, func() time.Time { return now })
	for i := range 100 {
		if ok, _ := l.take("app" + strconv.Itoa(i)); !ok {
			t.Fatalf("app%d refused on its first request", i)
		}
	}
	for range 5 {
		l.take("busy")
	}
	if ok, wait := l.take("busy"); ok || wait != 100*time.Millisecond {
		t.Fatalf("busy after its burst: ok=%v wait=%s, want refused for 100ms", ok, wait)
	}
	if n := l.size(); n != 101 {
		t.Fatalf("%d buckets, want 101", n)
	}
	// A minute later every bucket is full again: the next request sweeps them.
	now = now.Add(sweepEvery)
	if ok, _ := l.take("new"); !ok {
		t.Fatal("new application refused")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1 (the new one)", n)
	}
	// A forgotten application starts with a full burst, as before.
	for i := range 5 {
		if ok, _ := l.take("busy"); !ok {
			t.Fatalf("busy request %d refused after being forgotten", i)
		}
	}
	// A bucket still refilling survives a sweep: forgetting it would
	// hand its application a fresh burst.
	slow := newRateLimiter(0.01, 1, func() time.Time { return now })
	slow.take("slow")
	now = now.Add(sweepEvery)
	slow.take("other")
	if ok, _ := slow.take("slow"); ok {
		t.Error("slow got a token back from the sweep")
	}
}
