package main

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func startTestSink(t *testing.T) *sink {
	t.Helper()
	s := newSink()
	if err := s.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !strings.HasSuffix(s.URL(), sinkPath) {
		t.Fatalf("sink URL %q should be on loopback", s.URL())
	}
	return s
}

// testClient has a transport of its own: httptest.Server.Close closes the
// idle connections of http.DefaultTransport, which breaks a POST another
// parallel test has just sent on one ("CloseIdleConnections called").
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

func deliverTo(t *testing.T, url, app, id, attempt string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(benchBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cassata-Application-Id", app)
	req.Header.Set("Cassata-Event-Id", id)
	req.Header.Set("Cassata-Attempt", attempt)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("sink answered %d, want 200", resp.StatusCode)
	}
}

func TestSinkRecordsArrivals(t *testing.T) {
	t.Parallel()
	s := startTestSink(t)
	before := time.Now()
	deliverTo(t, s.URL(), "burst", "burst-1", "1")
	deliverTo(t, s.URL(), "burst", "burst-1", "2")
	deliverTo(t, s.URL(), "steady", "steady-7", "1")
	after := time.Now()

	got := s.snapshot()
	if len(got) != 3 {
		t.Fatalf("got %d arrivals, want 3", len(got))
	}
	want := []arrival{
		{App: "burst", ID: "burst-1", Attempt: "1"},
		{App: "burst", ID: "burst-1", Attempt: "2"},
		{App: "steady", ID: "steady-7", Attempt: "1"},
	}
	for i, a := range got {
		if a.App != want[i].App || a.ID != want[i].ID || a.Attempt != want[i].Attempt {
			t.Errorf("arrival %d = %+v, want %+v", i, a, want[i])
		}
		if a.At.Before(before) || a.At.After(after) {
			t.Errorf("arrival %d time %v outside [%v, %v]", i, a.At, before, after)
		}
	}
	if n := s.distinctCount("burst"); n != 1 {
		t.Errorf("distinctCount(burst) = %d, want 1 (the retry is the same event)", n)
	}
	if n := s.distinctCount("nobody"); n != 0 {
		t.Errorf("distinctCount(nobody) = %d, want 0", n)
	}

	// What the workloads do with it: one duplicate, nothing missing.
	st := analyze(map[string]time.Time{"burst/burst-1": before, "steady/steady-7": before}, got)
	if st.Dups != 1 || st.Missing != 0 || st.Delivered != 2 {
		t.Errorf("analyze(sink arrivals) = %+v, want 1 dup, 2 delivered", st)
	}

	s.reset()
	if len(s.snapshot()) != 0 || s.distinctCount("burst") != 0 {
		t.Error("reset should forget every arrival")
	}
}

func TestSinkConcurrent(t *testing.T) {
	t.Parallel()
	s := startTestSink(t)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 25 {
				deliverTo(t, s.URL(), "burst", "e"+string(rune('a'+c))+"-"+string(rune('a'+i)), "1")
			}
		})
	}
	wg.Wait()
	if n := len(s.snapshot()); n != 200 {
		t.Errorf("got %d arrivals, want 200", n)
	}
	if n := s.distinctCount("burst"); n != 200 {
		t.Errorf("distinctCount = %d, want 200", n)
	}
}

func TestArrivalsRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 21, 0, 0, 123_456_789, time.UTC)
	want := []arrival{
		{At: at, App: "burst", ID: "burst-1", Attempt: "1"},
		{At: at.Add(time.Nanosecond), App: "sched minute", ID: "sc7@1765054800000", Attempt: ""},
		{At: at.Add(time.Second), App: "a\tb", ID: "x\ny%z", Attempt: "2"},
	}
	var buf bytes.Buffer
	if err := writeArrivals(&buf, want); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(want) {
		t.Fatalf("%d lines for %d arrivals:\n%s", n, len(want), buf.String())
	}
	got, err := readArrivals(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d arrivals, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].App != want[i].App || got[i].ID != want[i].ID ||
			got[i].Attempt != want[i].Attempt {
			t.Errorf("arrival %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"1\tapp\tid\n", "x\tapp\tid\t1\n", "1\t%zz\tid\t1\n"} {
		if _, err := readArrivals(strings.NewReader(bad)); err == nil {
			t.Errorf("readArrivals(%q) should fail", bad)
		}
	}
}

// TestSinkClientMirrors runs the sink in this process and reads it the way
// the bench reads the sink process: over loopback HTTP.
func TestSinkClientMirrors(t *testing.T) {
	t.Parallel()
	s := startTestSink(t)
	c := &sinkClient{base: strings.TrimSuffix(s.URL(), sinkPath), hc: testClient, mirror: newArrivalLog()}
	if c.URL() != s.URL() {
		t.Fatalf("client URL %q, sink URL %q", c.URL(), s.URL())
	}
	before := time.Now()
	deliverTo(t, c.URL(), "sched", "sc1@100", "1")
	if n := c.distinctCount("sched"); n != 1 {
		t.Fatalf("distinctCount = %d after one delivery, want 1", n)
	}
	deliverTo(t, c.URL(), "sched", "sc1@100", "2")
	deliverTo(t, c.URL(), "sched", "sc2@100", "1")
	deliverTo(t, c.URL(), "sched", "sc1@200", "1")
	after := time.Now()
	if n := c.countSuffix("sched", "@100"); n != 2 {
		t.Errorf("countSuffix(@100) = %d, want 2", n)
	}
	got := c.snapshot()
	if len(got) != 4 || got[1].Attempt != "2" || got[3].ID != "sc1@200" {
		t.Fatalf("snapshot = %+v, want the four arrivals in order", got)
	}
	for i, a := range got {
		if a.At.Before(before.Truncate(0)) || a.At.After(after) {
			t.Errorf("arrival %d stamped %v, outside [%v, %v]", i, a.At, before, after)
		}
	}
	if err := c.reset(); err != nil {
		t.Fatal(err)
	}
	if len(c.snapshot()) != 0 || len(s.snapshot()) != 0 {
		t.Error("reset should clear the sink and the mirror")
	}
	deliverTo(t, c.URL(), "steady", "steady-1", "1")
	if got := c.snapshot(); len(got) != 1 || got[0].ID != "steady-1" {
		t.Errorf("after reset, snapshot = %+v, want only steady-1", got)
	}

	resp, err := testClient.Get(c.base + arrivalsPath + "?from=-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET %s?from=-1 = %d, want 400", arrivalsPath, resp.StatusCode)
	}
}

func TestSinkWaitCount(t *testing.T) {
	t.Parallel()
	s := startTestSink(t)
	c := &sinkClient{base: strings.TrimSuffix(s.URL(), sinkPath), hc: testClient, mirror: newArrivalLog()}
	ctx := t.Context()

	start := time.Now()
	if got, err := c.waitCount(ctx, "burst", 2, 100*time.Millisecond); err != nil || got != 0 {
		t.Errorf("waitCount before any arrival = %d, %v; want 0 after the timeout", got, err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("waitCount returned after %s, before its 100ms timeout", waited)
	}

	done := make(chan int, 1)
	go func() {
		got, err := c.waitCount(ctx, "burst", 2, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	deliverTo(t, c.URL(), "burst", "b1", "1")
	deliverTo(t, c.URL(), "burst", "b1", "2") // the same event: not a second one
	deliverTo(t, c.URL(), "other", "o1", "1")
	select {
	case got := <-done:
		t.Fatalf("waitCount returned %d with one distinct arrival of 2", got)
	case <-time.After(100 * time.Millisecond):
	}
	deliverTo(t, c.URL(), "burst", "b2", "1")
	select {
	case got := <-done:
		if got != 2 {
			t.Errorf("waitCount = %d, want 2", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitCount did not return when the second event arrived")
	}
	if got, err := c.waitCount(ctx, "burst", 0, 0); err != nil || got != 2 {
		t.Errorf("waitCount(0, 0) = %d, %v; want 2 at once", got, err)
	}
	s.mu.Lock()
	left := len(s.waiters)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d waiters left behind", left)
	}
	for _, q := range []string{"?app=a&n=-1&timeout=1s", "?app=a&n=1&timeout=x", "?app=a&n=1&timeout=2h"} {
		resp, err := testClient.Get(c.base + waitPath + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s%s = %d, want 400", waitPath, q, resp.StatusCode)
		}
	}
}
