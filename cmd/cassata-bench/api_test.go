package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 11, 0, 0, 123_456_789, time.FixedZone("CET", 3600))
	ev := newEvent(shapeSmall, "bench", "e1", "http://127.0.0.1:9/sink", at)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["at"] != "2026-11-23T10:00:00.123Z" {
		t.Errorf("at = %v, want RFC 3339 UTC with milliseconds", got["at"])
	}
	if len(got["body"].(string)) != 100 {
		t.Errorf("body is %d bytes, want 100", len(got["body"].(string)))
	}
	if got["method"] != "POST" || got["app"] != "bench" || got["id"] != "e1" || got["url"] != "http://127.0.0.1:9/sink" {
		t.Errorf("event = %v", got)
	}
	if h := got["headers"].(map[string]any); len(h) != 1 {
		t.Errorf("headers = %v, want exactly one", h)
	}
}

// fakeBatchServer answers /v1/events/batch like the v1 API: ids ending in
// "bad" are refused with 422, and every id in throttleOnce gets one 429
// before it is accepted.
type fakeBatchServer struct {
	mu           sync.Mutex
	throttleOnce map[string]bool
	created      map[string]int
	maxBatch     int
}

func (f *fakeBatchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/events/batch" {
		http.NotFound(w, r)
		return
	}
	var req struct{ Events []event }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxBatch = max(f.maxBatch, len(req.Events))
	var results []map[string]any
	for _, ev := range req.Events {
		switch {
		case strings.HasSuffix(ev.ID, "bad"):
			results = append(results, map[string]any{"status": 422,
				"error": map[string]string{"code": "invalid", "message": "nope", "field": "id"}})
		case f.throttleOnce[ev.ID]:
			delete(f.throttleOnce, ev.ID)
			results = append(results, map[string]any{"status": 429,
				"error": map[string]string{"code": "rate_limited", "message": "slow down"}})
		default:
			f.created[ev.ID]++
			results = append(results, map[string]any{"status": 201, "event": ev})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"results": results})
}

func TestCreateAll(t *testing.T) {
	t.Parallel()
	f := &fakeBatchServer{
		throttleOnce: map[string]bool{"e5": true, "e1500": true},
		created:      map[string]int{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := newAPIClient(srv.URL, 4)
	t.Cleanup(c.close)

	const n = 2500
	res, err := c.createAll(context.Background(), n, 3, func(i int) event {
		id := "e" + strconv.Itoa(i)
		if i == 42 {
			id = "e42bad"
		}
		return newEvent(shapeSmall, "bench", id, "http://127.0.0.1:9/sink", time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != n-1 || res.Rejected != 1 {
		t.Errorf("created %d, rejected %d; want %d and 1", res.Created, res.Rejected, n-1)
	}
	if res.CreatedOK[42] || !res.CreatedOK[5] || !res.CreatedOK[1500] {
		t.Error("CreatedOK should be false for the refused event and true for the throttled-then-created ones")
	}
	if !strings.Contains(res.FirstErr, "422") || !strings.Contains(res.FirstErr, "field id") {
		t.Errorf("FirstErr = %q, want the 422 and the field", res.FirstErr)
	}
	if f.maxBatch > maxBatch {
		t.Errorf("sent a batch of %d events, the API takes at most %d", f.maxBatch, maxBatch)
	}
	for id, k := range f.created {
		if k != 1 {
			t.Errorf("event %s created %d times", id, k)
		}
	}
	if len(f.created) != n-1 {
		t.Errorf("server has %d events, want %d", len(f.created), n-1)
	}
}

func TestCreateAllWholeBatchRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = w.Write([]byte(`{"error":{"code":"too_large","message":"batch too large"}}`))
	}))
	t.Cleanup(srv.Close)
	c := newAPIClient(srv.URL, 1)
	res, err := c.createAll(context.Background(), 10, 1, func(i int) event {
		return newEvent(shapeSmall, "bench", "e"+strconv.Itoa(i), "http://127.0.0.1:9/sink", time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 0 || res.Rejected != 10 || !strings.Contains(res.FirstErr, "413") {
		t.Errorf("result = %+v, want all 10 refused with the 413", res)
	}
}

func TestCreateAllServerGone(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newAPIClient(url, 1)
	_, err := c.createAll(context.Background(), 10, 2, func(i int) event {
		return newEvent(shapeSmall, "bench", "e"+strconv.Itoa(i), "http://127.0.0.1:9/sink", time.Now())
	})
	if err == nil {
		t.Fatal("createAll against a closed server should fail")
	}
}

func TestCreateSingleRefusal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"code":"conflict","message":"identity exists"}}`))
	}))
	t.Cleanup(srv.Close)
	c := newAPIClient(srv.URL, 1)
	ev := newEvent(shapeSmall, "bench", "e1", "http://127.0.0.1:9/sink", time.Now())
	status, reason, err := c.create(context.Background(), &ev)
	if err != nil || status != 409 || !strings.Contains(reason, "identity exists") {
		t.Errorf("create = %d, %q, %v", status, reason, err)
	}
}
