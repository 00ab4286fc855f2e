package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/worker"
)

// failureLines returns the failure log lines (msg "delivery failed") of a
// JSON log.
func failureLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if rec["msg"] == "delivery failed" {
			out = append(out, rec)
		}
	}
	return out
}

// TestFailureLog: with LogFailedRequests every failed attempt is one
// structured line (API.md §9) with app, id, attempt, method, URL, status,
// error, duration and the first 1 KiB of the response body; secrets in the
// URL never reach the log; successes and a worker without the setting log
// no such line.
func TestFailureLog(t *testing.T) {
	longBody := strings.Repeat("0123456789abcdef", 128) // 2 KiB
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return addr
	}()
	const secret = "s3cr3t-value"
	cases := []struct {
		name       string
		off        bool
		status     int    // the destination's answer
		url        string // "" for the destination's; %s is replaced by its host:port
		guard      bool   // deliver through an SSRF guard (blocks the loopback destination)
		maxAttempt int
		// want: no line when wantStatus < 0
		wantStatus any // float64 status code, or nil
		wantErr    string
		wantNext   string
		wantURL    string // %s as above
		wantBody   string
	}{
		{name: "500 with a long body, secrets in the URL", status: 500, maxAttempt: 1,
			url:        "http://user:" + secret + "@%s/hook?token=" + secret + "&keep=1&X-Amz-Signature=" + secret + "&api_key=" + secret + "#frag" + secret,
			wantStatus: float64(500), wantNext: "SERVICE_UNAVAILABLE", wantBody: longBody[:1024],
			wantURL: "http://user:REDACTED@%s/hook?token=REDACTED&keep=1&X-Amz-Signature=REDACTED&api_key=REDACTED"},
		{name: "404: final failure", status: 404, maxAttempt: 3,
			url:        "http://%s/x?code=" + secret + "&page=2",
			wantStatus: float64(404), wantNext: "FAILED", wantBody: longBody[:1024],
			wantURL: "http://%s/x?code=REDACTED&page=2"},
		{name: "503 with attempts left: a retry", status: 503, maxAttempt: 3,
			wantStatus: float64(503), wantNext: "PENDING", wantBody: longBody[:1024]},
		{name: "connection refused", maxAttempt: 1, url: "http://" + refused + "/down?sig=" + secret,
			wantStatus: nil, wantErr: "refused", wantNext: "SERVICE_UNAVAILABLE", wantURL: "http://" + refused + "/down?sig=REDACTED"},
		{name: "blocked destination", guard: true, maxAttempt: 3,
			wantStatus: nil, wantErr: "blocked", wantNext: "FAILED"},
		{name: "success: no line", status: 200, maxAttempt: 1, wantStatus: -1},
		{name: "setting off: no line", off: true, status: 500, maxAttempt: 1, wantStatus: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupWorker(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(longBody))
			}, worker.Config{LogFailedRequests: !tc.off})
			if tc.guard {
				b.w = worker.New(b.st, delivery.New(delivery.Config{Guard: &delivery.AddressGuard{}}),
					worker.Config{LogFailedRequests: true, PollInterval: 20 * time.Millisecond,
						Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
			}
			hostPort := strings.TrimPrefix(b.dest.URL, "http://")
			url := b.dest.URL + "/hook"
			if tc.url != "" {
				url = strings.ReplaceAll(tc.url, "%s", hostPort)
			}
			b.run(t)
			// Straight into the store: create refuses credentials in a URL
			// today, but events stored before (or imported) may carry them.
			now := time.Now()
			ev := &scheduler.Event{App: "a", ID: "f1", URL: url, Method: "PUT", MaxAttempts: tc.maxAttempt,
				Headers: map[string]string{"Authorization": "Bearer " + secret},
				Body:    []byte(`{"password":"` + secret + `"}`), DueAt: now, CreatedAt: now, UpdatedAt: now}
			if existing, err := b.st.Create(t.Context(), ev, time.Time{}); err != nil || existing != nil {
				t.Fatalf("create: %v, %v", existing, err)
			}
			waitUntil(t, 5*time.Second, "the attempt was not recorded", func() bool {
				ev := b.get(t, "f1")
				return len(ev.History) > 0
			})
			lines := failureLines(t, b.logs.String())
			if strings.Contains(b.logs.String(), secret) {
				t.Errorf("a secret reached the log:\n%s", b.logs.String())
			}
			if tc.wantStatus == -1 {
				if len(lines) != 0 {
					t.Fatalf("failure log lines %v, want none", lines)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("%d failure log lines, want 1:\n%s", len(lines), b.logs.String())
			}
			l := lines[0]
			wantURL := url
			if tc.wantURL != "" {
				wantURL = strings.ReplaceAll(tc.wantURL, "%s", hostPort)
			}
			for k, want := range map[string]any{"level": "WARN", "app": "a", "id": "f1", "attempt": float64(1),
				"method": "PUT", "url": wantURL, "status": tc.wantStatus, "next_status": tc.wantNext} {
				if got, ok := l[k]; !ok || got != want {
					t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, want)
				}
			}
			if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms = %#v, want a number of milliseconds", l["duration_ms"])
			}
			if body, _ := l["response_body"].(string); body != tc.wantBody {
				t.Errorf("response_body has %d bytes (%.40q...), want %d", len(body), body, len(tc.wantBody))
			}
			switch e := l["error"].(type) {
			case nil:
				if tc.wantErr != "" {
					t.Errorf("error null, want one mentioning %q", tc.wantErr)
				}
			case string:
				if tc.wantErr == "" || !strings.Contains(e, tc.wantErr) {
					t.Errorf("error %q, want null or mentioning %q", e, tc.wantErr)
				}
			default:
				t.Errorf("error %#v, want a string or null", e)
			}
			if _, ok := l["error"]; !ok {
				t.Error("no error key: want it present, null when the destination answered")
			}
		})
	}
}

// staticKeys signs every application's deliveries with one key.
type staticKeys []byte

func (k staticKeys) SigningKeys(context.Context, string) ([][]byte, error) { return [][]byte{k}, nil }

// TestFailureLogRedactsEchoes: a destination that echoes its request in its
// answer (headers, URL and body, verbatim or as JSON, cut off at 1 KiB or
// not) gets none of the request's secrets into the failure log: not the
// Authorization header, not the Basic credentials the client makes of the
// URL's userinfo, not the Standard Webhooks signature, not the URL's token,
// not the event's other headers nor its body.
func TestFailureLogRedactsEchoes(t *testing.T) {
	const secret = "s3cr3t"
	echoes := []struct {
		name string
		echo func(r *http.Request, body []byte) []byte
	}{
		{"headers, URL and body as text", func(r *http.Request, body []byte) []byte {
			var b bytes.Buffer
			fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
			_ = r.Header.Write(&b)
			b.Write(body)
			return b.Bytes()
		}},
		{"headers, URL and body as JSON", func(r *http.Request, body []byte) []byte {
			out, _ := json.Marshal(map[string]any{"uri": r.URL.RequestURI(), "headers": r.Header, "body": string(body)})
			return out
		}},
		{"the Authorization header cut off at 1 KiB", func(r *http.Request, _ []byte) []byte {
			auth := r.Header.Get("Authorization")
			keep := len(auth) - 3 // the snippet ends three bytes short of the whole value
			return []byte(strings.Repeat(".", delivery.ResponseSnippetBytes-keep) + auth)
		}},
		{"the body cut off at 1 KiB", func(_ *http.Request, body []byte) []byte {
			keep := bytes.Index(body, []byte(secret)) + 3 // the snippet ends in the middle of the secret
			return append([]byte(strings.Repeat(".", delivery.ResponseSnippetBytes-keep)), body...)
		}},
	}
	for _, tc := range echoes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var sent http.Header
			b := setupWorker(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				sent = r.Header.Clone()
				mu.Unlock()
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write(tc.echo(r, body))
			}, worker.Config{})
			signer := delivery.NewSigner(staticKeys("signing-key"), delivery.SignerConfig{})
			b.w = worker.New(b.st, delivery.New(delivery.Config{Signer: signer}), worker.Config{LogFailedRequests: true,
				PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
			b.run(t)
			hostPort := strings.TrimPrefix(b.dest.URL, "http://")
			now := time.Now()
			ev := &scheduler.Event{App: "a", ID: "echo", Method: "POST", MaxAttempts: 1,
				URL:     "http://user:url-" + secret + "@" + hostPort + "/hook?token=tok-" + secret + "&page=2",
				Headers: map[string]string{"X-Api-Key": "key-" + secret, "X-Note": `quote " and <html> ` + secret},
				Body:    []byte(`{"password":"body-` + secret + `","n":1}`), DueAt: now, CreatedAt: now, UpdatedAt: now}
			if tc.name != "headers, URL and body as text" {
				// An explicit Authorization (the text echo shows the
				// Basic one the client derives from the userinfo).
				ev.Headers["Authorization"] = "Bearer auth-" + secret
			}
			if existing, err := b.st.Create(t.Context(), ev, time.Time{}); err != nil || existing != nil {
				t.Fatalf("create: %v, %v", existing, err)
			}
			waitUntil(t, 5*time.Second, "the attempt was not recorded", func() bool {
				return len(b.get(t, "echo").History) > 0
			})
			if h := b.get(t, "echo").History[0]; h.StatusCode != 503 || h.Response == "" {
				t.Fatalf("attempt %+v: want a 503 with the echo", h)
			}
			lines := failureLines(t, b.logs.String())
			if len(lines) != 1 {
				t.Fatalf("%d failure log lines, want 1:\n%s", len(lines), b.logs.String())
			}
			mu.Lock()
			sig, auth := sent.Get("Webhook-Signature"), sent.Get("Authorization")
			mu.Unlock()
			_, sigB64, _ := strings.Cut(sig, ",")
			_, cred, _ := strings.Cut(auth, " ")
			if sigB64 == "" || cred == "" {
				t.Fatalf("the destination got signature %q, Authorization %q: want both", sig, auth)
			}
			logs := b.logs.String()
			// What is left of a secret cut off: at most its first 3 bytes.
			for _, leak := range []string{secret, "s3c", sigB64, sigB64[:8], cred, cred[:8]} {
				if strings.Contains(logs, leak) {
					t.Errorf("%q reached the log:\n%s", leak, logs)
				}
			}
			body, _ := lines[0]["response_body"].(string)
			if !strings.Contains(body, "REDACTED") {
				t.Errorf("response_body %q: want the echoed secrets REDACTED", body)
			}
			if want := "http://user:REDACTED@" + hostPort + "/hook?token=REDACTED&page=2"; lines[0]["url"] != want {
				t.Errorf("url = %v, want %s", lines[0]["url"], want)
			}
		})
	}
}

// TestFailureLogNoRetry: an answer with Cassata-Retry: false is logged as
// the final failure it is, with the reason as its error.
func TestFailureLogNoRetry(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cassata-Retry", "false")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("gone for good"))
	}, worker.Config{LogFailedRequests: true})
	b.run(t)
	b.schedule(t, "nr", time.Now(), func(ev *scheduler.Event) {
		ev.MaxAttempts = 5
		ev.Headers = map[string]string{"X-Flag": "false"} // a header's value never hides the reason
	})
	waitUntil(t, 5*time.Second, "the event did not fail", func() bool { return b.get(t, "nr").Status.Final() })
	lines := failureLines(t, b.logs.String())
	if len(lines) != 1 {
		t.Fatalf("%d failure log lines, want 1:\n%s", len(lines), b.logs.String())
	}
	for k, want := range map[string]any{"id": "nr", "attempt": float64(1), "status": float64(503),
		"error": delivery.NoRetryReason, "next_status": "FAILED", "response_body": "gone for good"} {
		if got := lines[0][k]; got != want {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
}
