package web

import (
	"strconv"
	"testing"
	"time"
)

// TestLoginLimiterForgetsClients: the buckets of clients whose failures lie
// a minute back are dropped, so a stream of addresses (a scan) does not grow
// the map for ever; a bucket still refilling is kept.
func TestLoginLimiterForgetsClients(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(5, time.Minute)
	for i := range 1000 {
		l.fail("10.0.0."+strconv.Itoa(i), now)
	}
	for range 5 {
		l.fail("mallory", now)
	}
	if l.allowed("mallory", now) {
		t.Fatal("mallory allowed after 5 failures")
	}
	if n := len(l.buckets); n != 1001 {
		t.Fatalf("%d buckets, want 1001", n)
	}
	now = now.Add(30 * time.Second)
	l.fail("mallory", now) // 2.5 tokens back, one taken
	now = now.Add(30 * time.Second)
	l.fail("eve", now) // sweeps: the scan's buckets are full again, mallory's not
	if n := len(l.buckets); n != 2 {
		t.Fatalf("%d buckets after the sweep, want mallory and eve", n)
	}
	if !l.allowed("mallory", now) || !l.allowed("10.0.0.1", now) {
		t.Error("refused after refilling")
	}
}
