package legacy

import (
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

var (
	t0  = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	now = t0.Add(48 * time.Hour)
)

func str(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

func at(t time.Time) sql.Null[time.Time] { return sql.Null[time.Time]{V: t, Valid: true} }

// row is a valid PENDING row; mod changes it.
func row(mod func(r *Row)) *Row {
	r := &Row{
		ID: 7, EventID: str("e-1"), Application: str("orders"), EventJSON: []byte(`{"a": 1}`),
		EventJSONLen: sql.NullInt64{Int64: 8, Valid: true}, HTTPMethod: str("POST"),
		HTTPHeaders: []byte(`["X-A: b"]`), URL: str("https://example.com/hook"), Status: str("PENDING"),
		Expiry: at(t0.Add(time.Hour)), CreatedAt: at(t0),
	}
	if mod != nil {
		mod(r)
	}
	return r
}

func testConverter() *converter {
	return &converter{limits: scheduler.Limits{MaxBodyBytes: 64}.WithDefaults(), guard: &delivery.AddressGuard{},
		now: func() time.Time { return now }}
}

func TestConvertInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(r *Row)
		column string
	}{
		{"app NULL", func(r *Row) { r.Application = sql.NullString{} }, "application"},
		{"app with a space", func(r *Row) { r.Application = str("my app") }, "application"},
		{"app of 65 bytes", func(r *Row) { r.Application = str(strings.Repeat("a", 65)) }, "application"},
		{"app not ASCII", func(r *Row) { r.Application = str("commandes-été") }, "application"},
		{"event id empty", func(r *Row) { r.EventID = str("") }, "event_id"},
		{"event id with a space", func(r *Row) { r.EventID = str("a b") }, "event_id"},
		{"event id with a slash", func(r *Row) { r.EventID = str("a/b") }, "event_id"},
		{"unknown status", func(r *Row) { r.Status = str("DELETED") }, "status"},
		{"empty status", func(r *Row) { r.Status = str("") }, "status"},
		{"expiry NULL", func(r *Row) { r.Expiry = sql.Null[time.Time]{} }, "expiry"},
		{"url NULL", func(r *Row) { r.URL = sql.NullString{} }, "destination_url"},
		{"url not http", func(r *Row) { r.URL = str("ftp://example.com/") }, "destination_url"},
		{"url relative", func(r *Row) { r.URL = str("/hook") }, "destination_url"},
		{"url blocked (live)", func(r *Row) { r.URL = str("http://169.254.169.254/latest") }, "destination_url"},
		{"url with credentials", func(r *Row) { r.URL = str("https://u:p@example.com/") }, "destination_url"},
		{"method unknown", func(r *Row) { r.HTTPMethod = str("TRACE") }, "http_method"},
		{"headers not JSON", func(r *Row) { r.HTTPHeaders = []byte(`["X-A: b"`) }, "http_headers"},
		{"headers an object", func(r *Row) { r.HTTPHeaders = []byte(`{"X-A": "b"}`) }, "http_headers"},
		{"headers not strings", func(r *Row) { r.HTTPHeaders = []byte(`[1, 2]`) }, "http_headers"},
		{"header without a colon", func(r *Row) { r.HTTPHeaders = []byte(`["X-A"]`) }, "http_headers"},
		{"header name not a token", func(r *Row) { r.HTTPHeaders = []byte(`["X A: b"]`) }, "http_headers"},
		{"header value with CR", func(r *Row) { r.HTTPHeaders = []byte(`["X-A: b\rc"]`) }, "http_headers"},
		{"signature header", func(r *Row) { r.HTTPHeaders = []byte(`["webhook-signature: v1,x"]`) }, "http_headers"},
		{"body not JSON", func(r *Row) { r.EventJSON = []byte(`{a`) }, "event_json"},
		{"body over the limit", func(r *Row) {
			r.EventJSON, r.EventJSONLen = nil, sql.NullInt64{Int64: 65, Valid: true}
		}, "event_json"},
		{"archived: url not http", func(r *Row) { r.Status, r.URL = str("COMPLETED"), str("mailto:x@example.com") }, "destination_url"},
		{"archived: no creation time", func(r *Row) {
			r.Status, r.CreatedAt, r.Expiry = str("FAILED"), sql.Null[time.Time]{}, at(time.Time{})
		}, "created_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testConverter().convert(row(tc.mod))
			if p.invalid == nil {
				t.Fatalf("accepted: %+v", p.event)
			}
			if p.invalid.Column != tc.column || p.invalid.SourceID != 7 || p.invalid.Reason == "" {
				t.Errorf("invalid = %+v, want column %q of row 7 with a reason", *p.invalid, tc.column)
			}
		})
	}
}

func TestConvertLive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(r *Row)
		method  string
		headers map[string]string
		body    string
		due     time.Time
	}{
		{"pending", nil, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"processing is live again", func(r *Row) { r.Status = str("PROCESSING") }, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"status in lower case", func(r *Row) { r.Status = str(" pending ") }, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"method NULL is POST", func(r *Row) { r.HTTPMethod = sql.NullString{} }, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"method lower case", func(r *Row) { r.HTTPMethod = str("patch") }, "PATCH", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"headers NULL", func(r *Row) { r.HTTPHeaders = nil }, "POST", map[string]string{"Content-Type": "application/json"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"headers JSON null", func(r *Row) { r.HTTPHeaders = []byte("null") }, "POST", map[string]string{"Content-Type": "application/json"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"headers empty", func(r *Row) { r.HTTPHeaders = []byte("[]") }, "POST", map[string]string{"Content-Type": "application/json"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"connection headers dropped", func(r *Row) {
			r.HTTPHeaders = []byte(`["Host: a", "Content-Length: 3", "Connection: close", "Proxy-Authorization: x", "Keep-Alive: 5", "Accept: */*"]`)
		}, "POST", map[string]string{"Accept": "*/*"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"split at the first colon, trimmed", func(r *Row) { r.HTTPHeaders = []byte(`["Authorization:  Bearer a:b  "]`) },
			"POST", map[string]string{"Authorization": "Bearer a:b"}, `{"a": 1}`, t0.Add(time.Hour)},
		{"body verbatim", func(r *Row) { r.EventJSON = []byte(" [1,\n 2] ") }, "POST", map[string]string{"X-A": "b"}, " [1,\n 2] ", t0.Add(time.Hour)},
		{"body NULL", func(r *Row) { r.EventJSON, r.EventJSONLen = nil, sql.NullInt64{} }, "POST", map[string]string{"X-A": "b"}, "", t0.Add(time.Hour)},
		{"past expiry kept (due at once)", func(r *Row) { r.Expiry = at(t0.Add(-24 * time.Hour)) }, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, t0.Add(-24 * time.Hour)},
		{"zero expiry is now", func(r *Row) { r.Expiry = at(time.Time{}) }, "POST", map[string]string{"X-A": "b"}, `{"a": 1}`, now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testConverter().convert(row(tc.mod))
			if p.invalid != nil {
				t.Fatalf("invalid: %v", *p.invalid)
			}
			ev := p.event
			if !p.live || p.records != nil || ev.Method != tc.method || string(ev.Body) != tc.body ||
				!ev.DueAt.Equal(tc.due) || !maps.Equal(ev.Headers, tc.headers) || ev.URL != "https://example.com/hook" {
				t.Errorf("live=%v records=%d event %s %s headers %v body %q due %s; want %s headers %v body %q due %s",
					p.live, len(p.records), ev.Method, ev.URL, ev.Headers, ev.Body, ev.DueAt, tc.method, tc.headers, tc.body, tc.due)
			}
		})
	}
}

func TestConvertArchived(t *testing.T) {
	t.Parallel()
	logs := []LogRow{
		{ID: 1, Code: sql.NullInt64{Int64: 503, Valid: true}, Response: str("busy"), CreatedAt: at(t0.Add(61 * time.Minute))},
		{ID: 2, Code: sql.NullInt64{Int64: 0, Valid: true}, Response: str("java.net.ConnectException"), CreatedAt: at(t0.Add(62 * time.Minute))},
		{ID: 3, Code: sql.NullInt64{Int64: -1, Valid: true}, CreatedAt: at(t0.Add(63 * time.Minute))},
		{ID: 4, Code: sql.NullInt64{Int64: 404, Valid: true}, CreatedAt: sql.Null[time.Time]{}},
	}
	tests := []struct {
		name     string
		mod      func(r *Row)
		status   scheduler.Status
		history  []string
		finished time.Time
	}{
		{"completed without logs", func(r *Row) { r.Status = str("COMPLETED") }, scheduler.StatusCompleted, nil, t0.Add(time.Hour)},
		{"completed in lower case", func(r *Row) { r.Status = str("completed") }, scheduler.StatusCompleted, nil, t0.Add(time.Hour)},
		{"cancelled", func(r *Row) { r.Status = str("CANCELLED") }, scheduler.StatusCancelled, nil, t0.Add(time.Hour)},
		{"future expiry: finished no later than now", func(r *Row) {
			r.Status, r.Expiry = str("FAILED"), at(now.Add(time.Hour))
		}, scheduler.StatusFailed, nil, now},
		{"blocked destinations are archived all the same", func(r *Row) {
			r.Status, r.URL = str("FAILED"), str("http://127.0.0.1/x")
		}, scheduler.StatusFailed, nil, t0.Add(time.Hour)},
		{"event logs are the history", func(r *Row) { r.Status, r.Logs = str("SERVICE_UNAVAILABLE"), logs }, scheduler.StatusServiceUnavailable, []string{
			fmt.Sprintf("1 %d 503 busy ", t0.Add(61*time.Minute).UnixMilli()),
			fmt.Sprintf("2 %d 0  java.net.ConnectException", t0.Add(62*time.Minute).UnixMilli()),
			fmt.Sprintf("3 %d 0  no HTTP answer (the original logged code -1)", t0.Add(63*time.Minute).UnixMilli()),
			fmt.Sprintf("4 %d 404  ", t0.UnixMilli()),
		}, t0.Add(63 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testConverter().convert(row(tc.mod))
			if p.invalid != nil {
				t.Fatalf("invalid: %v", *p.invalid)
			}
			if p.live || len(p.records) != len(tc.history)+1 {
				t.Fatalf("live=%v with %d records; want archived with %d", p.live, len(p.records), len(tc.history)+1)
			}
			var history []string
			for _, rec := range p.records[:len(tc.history)] {
				a := rec.Attempt
				if rec.Kind != scheduler.RecordAttempt || rec.CreatedMS != t0.UnixMilli() || rec.UpdatedMS != a.At || a.Worker != ImportWorker {
					t.Errorf("attempt record %+v", rec)
				}
				history = append(history, fmt.Sprintf("%d %d %d %s %s", a.Attempt, a.At, a.StatusCode, a.Response, a.Error))
			}
			if strings.Join(history, "|") != strings.Join(tc.history, "|") {
				t.Errorf("history\n  %s\nwant\n  %s", strings.Join(history, "\n  "), strings.Join(tc.history, "\n  "))
			}
			final := p.records[len(p.records)-1]
			ev := final.Event
			if final.Kind != scheduler.RecordFinal || final.Status != tc.status || ev.Status != tc.status ||
				final.UpdatedMS != tc.finished.UnixMilli() || !ev.FinishedAt.Equal(tc.finished) ||
				final.CreatedMS != t0.UnixMilli() || ev.Attempts != len(tc.history) || string(ev.Body) != `{"a": 1}` {
				t.Errorf("final record %+v\nevent %+v", final, ev)
			}
			for _, rec := range p.records {
				if rec.UpdatedMS > final.UpdatedMS {
					t.Errorf("record %+v is newer than the final one: the archive would keep its status", rec)
				}
			}
		})
	}
}

func TestTimeValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    any
		want  time.Time
		valid bool
	}{
		{t0.In(time.FixedZone("x", 3600)), t0, true},
		{int64(1709294400), t0, true},
		{int64(1709294400000), t0, true},
		{[]byte("2024-03-01 12:00:00"), t0, true},
		{[]byte("2024-03-01 12:00:00.250"), t0.Add(250 * time.Millisecond), true},
		{"1709294400", t0, true},
		{[]byte("0000-00-00 00:00:00"), time.Time{}, true},
		{nil, time.Time{}, false},
		{[]byte("yesterday"), time.Time{}, false},
		{3.5, time.Time{}, false},
	}
	for _, tc := range tests {
		got := timeValue(tc.in)
		if got.Valid != tc.valid || !got.V.Equal(tc.want) {
			t.Errorf("timeValue(%v) = %v %v, want %v %v", tc.in, got.V, got.Valid, tc.want, tc.valid)
		}
	}
}
