package client_test

import (
	"encoding/json"
	"reflect"
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
