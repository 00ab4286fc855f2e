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

func TestNewMessage(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 11, 0, 0, 123_456_789, time.FixedZone("CET", 3600))
	b, err := json.Marshal(newMessage(shapeRealistic, "topicfan", "bench", "m0", at))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["app"] != "topicfan" || got["topic"] != "bench" || got["id"] != "m0" || got["method"] != "POST" ||
		got["at"] != "2026-11-23T10:00:00.123Z" || len(got["body"].(string)) != 100 {
		t.Errorf("message = %v", got)
	}
}

func TestExpectDeliveries(t *testing.T) {
	t.Parallel()
	due := time.UnixMilli(1_795_000_000_000)
	got := map[string]time.Time{}
	expectDeliveries(got, "topicfan", "m0", []string{"s0", "s1"}, due)
	expectDeliveries(got, "topicfan", "m1", []string{"s0"}, due.Add(time.Second))
	want := map[string]time.Time{"topicfan/m0~s0": due, "topicfan/m0~s1": due, "topicfan/m1~s0": due.Add(time.Second)}
	if len(got) != len(want) {
		t.Fatalf("expectDeliveries = %v, want %v", got, want)
	}
	for k, v := range want {
		if !got[k].Equal(v) {
			t.Errorf("%s due %v, want %v", k, got[k], v)
		}
	}
	// The sink's key of a delivery is what the map is keyed by.
	a := arrival{App: "topicfan", ID: "m0~s1"}
	if _, ok := got[a.key()]; !ok {
		t.Errorf("arrival key %q is not expected", a.key())
	}
}

func TestTopicMessages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rate int
		span time.Duration
		want int
	}{{200, 10 * time.Second, 2000}, {200, 2500 * time.Millisecond, 500}, {200, time.Millisecond, 0}} {
		if got := topicMessages(options{topicRate: c.rate, topicSpan: c.span}); got != c.want {
			t.Errorf("topicMessages(%d/s over %s) = %d, want %d", c.rate, c.span, got, c.want)
		}
	}
}

// TestSendAll runs PUTs against a server that refuses ids ending in 9 and
// throttles every other request once: the refused are counted with their
// reason, the throttled retried until they succeed.
func TestSendAll(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v1/subscriptions/app/") {
			http.NotFound(w, r)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/v1/subscriptions/app/")
		var body subscriptionBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Topic != benchTopic {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		switch {
		case strings.HasSuffix(id, "9"):
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"conflict","message":"too many subscriptions"}}`))
		case n == 1 && len(id)%2 == 0:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)

	c := newAPIClient(srv.URL, 4)
	res, err := c.sendAll(context.Background(), 20, 4, func(i int) (string, string, any) {
		return http.MethodPut, "/v1/subscriptions/app/" + subID(i), subscriptionBody{Topic: benchTopic}
	}, func(status int) bool { return status == http.StatusOK })
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 18 || res.Rejected != 2 || !strings.Contains(res.FirstErr, "too many subscriptions") {
		t.Errorf("result = %+v, want 18 created, 2 refused (s9, s19)", res)
	}
	for i, ok := range res.CreatedOK {
		if want := !strings.HasSuffix(strconv.Itoa(i), "9"); ok != want {
			t.Errorf("CreatedOK[%d] = %v, want %v", i, ok, want)
		}
	}
}

func TestSendAllServerGone(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newAPIClient(url, 1)
	_, err := c.sendAll(context.Background(), 5, 2, func(i int) (string, string, any) {
		return http.MethodPost, "/v1/messages", newMessage(shapeSmall, "a", "t", "m"+strconv.Itoa(i), time.Now())
	}, created)
	if err == nil {
		t.Fatal("sendAll against a closed server should fail")
	}
}
