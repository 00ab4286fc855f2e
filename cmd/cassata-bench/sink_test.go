package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func startTestSink(t *testing.T) *sink {
	t.Helper()
	s := newSink()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !strings.HasSuffix(s.URL(), sinkPath) {
		t.Fatalf("sink URL %q should be on loopback", s.URL())
	}
	return s
}

func deliverTo(t *testing.T, url, app, id, attempt string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(benchBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cassata-Application-Id", app)
	req.Header.Set("Cassata-Event-Id", id)
	req.Header.Set("Cassata-Attempt", attempt)
	resp, err := http.DefaultClient.Do(req)
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
