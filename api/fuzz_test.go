package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzCreateRequest feeds arbitrary bodies to the create routes: whatever
// comes in, the answer is never a 500 and always valid JSON.
func FuzzCreateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"app":"shop","id":"f1","url":"https://example.com/hook","delay":"1m"}`,
		`{"app":"shop","url":"https://example.com/hook","at":"2030-01-02T03:04:05.678Z","method":"put","headers":{"X-A":"1"},"body":{"k":[1,2]}}`,
		`{"app":"shop","id":"f2","url":"https://example.com/hook","expiry":1900000000123,"max_attempts":3,"timeout":"10s","min_backoff":1000,"max_backoff":"1m"}`,
		`{"event-id":"f3","application-id":"shop","event":"{\"a\":1}","expiry":1900000000,"url":"https://example.com/hook","method":"GET","request-headers":["X-T: a:b"]}`,
		`{"eventId":"f4","application":"shop","eventJson":{"a":1},"expiry":"1900000000","destinationUrl":"http://example.com","httpMethod":"DELETE","headers":["A:b"]}`,
		`{"app":"shop","id":"f5","url":"https://example.com/hook","delay":"1m","headers":{"X-A":"1\r\nX-B: 2"}}`,
		`{"app":"shop","id":"f6","url":"https://example.com/hook","delay":"1m","max_attempts":"x"}`,
		`{"app":"shop","id":"f7","url":"https://example.com/hook","at":"0000-01-01T00:00:00Z"}`,
		`{"app":"shop","id":"f8","url":"https://example.com/hook","expiry":1e15,"body":{"s":"` + "\xff\x00" + `"}}`,
		`{"events":[]}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	b := setup(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/events", "/cassata/add"} {
			r := b.do(t, http.MethodPost, path, body)
			if r.code >= 500 {
				t.Fatalf("POST %s %q: status %d: %s", path, body, r.code, r.body)
			}
			if !json.Valid(r.body) {
				t.Fatalf("POST %s %q: status %d, body not JSON: %q", path, body, r.code, r.body)
			}
			if r.code >= 400 {
				var m map[string]any
				if err := json.Unmarshal(r.body, &m); err != nil || m["error"] == nil && m["status"] != "failed" {
					t.Fatalf("POST %s %q: status %d without an error body: %s", path, body, r.code, r.body)
				}
			}
		}
	})
}
