package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/api/client"
)

// TestJSONRoundTrip: an answer re-encoded with encoding/json reads back the
// same, durations and times included (they are encoded as the API does).
func TestJSONRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 6e6, time.UTC)
	roundTrip := func(name string, v, into any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		if !strings.Contains(string(b), `"1m30s"`) {
			t.Errorf("%s: durations not as Go duration strings: %s", name, b)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: unmarshal %s: %v", name, b, err)
		}
		if got := reflect.ValueOf(into).Elem().Interface(); !reflect.DeepEqual(got, v) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, v)
		}
	}
	roundTrip("event", client.Event{App: "a", ID: "e", Status: client.StatusPending, Timeout: 90 * time.Second,
		DueAt: at, CreatedAt: at, UpdatedAt: at, History: []client.Attempt{{Attempt: 1, At: at, StatusCode: 500}}}, new(client.Event))
	roundTrip("subscription", client.Subscription{App: "a", ID: "s", MaxBackoff: 90 * time.Second, CreatedAt: at, UpdatedAt: at},
		new(client.Subscription))
	roundTrip("schedule", client.Schedule{App: "a", ID: "s", Every: 90 * time.Second, StartAt: at, NextAt: at,
		LastRuns: []client.Run{{EventID: "s@1", DueAt: at, Status: client.StatusCompleted}}}, new(client.Schedule))
}

// TestRequestJSON: requests are sent in the API's field names and forms.
func TestRequestJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 6e6, time.FixedZone("CET", 3600))
	b, _ := json.Marshal(client.CreateEventRequest{App: "a", URL: "https://x", At: at, Timeout: 5 * time.Second, MaxAttempts: 2})
	want := `{"app":"a","url":"https://x","max_attempts":2,"at":"2026-01-02T14:04:05.006Z","timeout":"5s"}`
	if string(b) != want {
		t.Errorf("CreateEventRequest:\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(client.CreateEventRequest{URL: "https://x"})
	if want := `{"url":"https://x","delay":"0s"}`; string(b) != want {
		t.Errorf("CreateEventRequest without a due time:\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(client.PublishRequest{Topic: "t"})
	if want := `{"topic":"t"}`; string(b) != want {
		t.Errorf("PublishRequest without a due time:\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(client.ScheduleRequest{Every: time.Minute, URL: "https://x", EndAt: at})
	if want := `{"url":"https://x","every":"1m0s","end_at":"2026-01-02T14:04:05.006Z"}`; string(b) != want {
		t.Errorf("ScheduleRequest:\n got %s\nwant %s", b, want)
	}
}

// TestEventTimesAndDurations: times and durations read the same whether
// they are plain strings or escaped, and bad ones are refused.
func TestEventTimesAndDurations(t *testing.T) {
	want := client.Event{ID: "e", DueAt: time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC), Timeout: 90 * time.Second, MinBackoff: 2 * time.Second}
	for _, body := range []string{
		`{"id":"e","due_at":"2030-01-02T03:04:05.678Z","timeout":"1m30s","min_backoff":2000,"created_at":"","finished_at":null}`,
		`{"id":"e","due_at":"2030-01-02T03:04:05.678\u005a","timeout":"1m30\u0073","min_backoff":2000,"created_at":null}`,
	} {
		var got client.Event
		if err := json.Unmarshal([]byte(body), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v", body, got, err)
		}
	}
	for _, body := range []string{`{"due_at":"2030-01-02"}`, `{"due_at":7}`, `{"timeout":"soon"}`, `{"timeout":"1s` + "\xff" + `"}`} {
		var got client.Event
		if err := json.Unmarshal([]byte(body), &got); err == nil {
			t.Errorf("%s: read as %+v", body, got)
		}
	}
}

// BenchmarkCreateEvents: a 1000-event batch through CreateEvents against
// a canned answer (the client's part of cassata-bench's ingest).
func BenchmarkCreateEvents(b *testing.B) {
	items := make([]string, 1000)
	reqs := make([]client.CreateEventRequest, 1000)
	for i := range items {
		items[i] = `{"status":201,"event":{"app":"ingest","id":"b0-1-` + strconv.Itoa(i) + `","url":"http://127.0.0.1:40000/?customer=c-000001\u0026order=o-00000007\u0026lang=en",` +
			`"method":"POST","headers":{"Content-Type":"application/json"},"body":"{\"event\":\"paid\",\"customer\":\"c-000001\",\"order\":\"o-00000007\",\"cents\":101,\"items\":3,\"note\":\"xxxxxxxx\"}",` +
			`"status":"PENDING","attempts":0,"max_attempts":5,"due_at":"2030-01-02T03:04:05.678Z","created_at":"2026-12-06T23:08:31.123Z","updated_at":"2026-12-06T23:08:31.123Z","history":[]}}`
		reqs[i] = client.CreateEventRequest{App: "ingest", ID: "b0-1-" + strconv.Itoa(i), URL: "http://127.0.0.1:40000/?customer=c-000001&order=o-00000007&lang=en",
			Method: "POST", Headers: map[string]string{"Content-Type": "application/json"},
			Body: `{"event":"paid","customer":"c-000001","order":"o-00000007","cents":101,"items":3,"note":"xxxxxxxx"}`,
			At:   time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC)}
	}
	answer := []byte(`{"results":[` + strings.Join(items, ",") + `]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	c := client.New(srv.URL, client.WithRetry(client.NoRetry))
	for b.Loop() {
		res, err := c.CreateEvents(context.Background(), reqs)
		if err != nil || len(res) != 1000 || res[999].Event.DueAt.IsZero() || res[999].Event.ID != "b0-1-999" || res[0].Event.Replayed {
			b.Fatal(err)
		}
	}
}
