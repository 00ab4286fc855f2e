package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cassata/cassata/scheduler"
)

// timeFormat is RFC 3339 with milliseconds, UTC (API.md §5).
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// EventView is an event as the v1 API shows it.
type EventView struct {
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers"`
	Body               *string           `json:"body"`
	Status             string            `json:"status"`
	Attempts           int               `json:"attempts"`
	MaxAttempts        int               `json:"max_attempts"`
	Timeout            string            `json:"timeout,omitempty"`
	MinBackoff         string            `json:"min_backoff,omitempty"`
	MaxBackoff         string            `json:"max_backoff,omitempty"`
	DueAt              string            `json:"due_at"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	FinishedAt         string            `json:"finished_at,omitempty"`
	LastStatusCode     int               `json:"last_status_code,omitempty"`
	LastError          string            `json:"last_error,omitempty"`
	History            []AttemptView     `json:"history"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
}

// AttemptView is one attempt as the v1 API shows it. Every entry has all
// of attempt, at, status_code, error and duration_ms (API.md §5):
// status_code is null when the destination did not answer, error is null
// when it answered and its answer was taken as it is.
type AttemptView struct {
	Attempt    int     `json:"attempt"`
	At         string  `json:"at"`
	StatusCode *int    `json:"status_code"`
	Error      *string `json:"error"`
	DurationMS int64   `json:"duration_ms"`
	Worker     string  `json:"worker,omitempty"`
	Response   string  `json:"response,omitempty"`
	Stale      bool    `json:"stale,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// ViewEvent converts an event for the v1 API; defaultMax fills max_attempts
// for events that use the worker's default.
func ViewEvent(ev *scheduler.Event, defaultMax int) EventView {
	v := EventView{
		App: ev.App, ID: ev.ID, URL: ev.URL, Method: ev.Method, Headers: ev.Headers,
		Status: string(ev.Status), Attempts: ev.Attempts, MaxAttempts: cmpInt(ev.MaxAttempts, defaultMax),
		Timeout: durString(ev.Timeout), MinBackoff: durString(ev.MinBackoff), MaxBackoff: durString(ev.MaxBackoff),
		DueAt: fmtTime(ev.DueAt), CreatedAt: fmtTime(ev.CreatedAt), UpdatedAt: fmtTime(ev.UpdatedAt),
		FinishedAt: fmtTime(ev.FinishedAt), LastStatusCode: ev.LastStatusCode, LastError: ev.LastError,
		History:     make([]AttemptView, 0, len(ev.History)),
		CallbackURL: ev.CallbackURL, FailureCallbackURL: ev.FailureCallbackURL, FlowKey: ev.FlowKey,
	}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	if !ev.BodyDropped {
		b := string(ev.Body)
		v.Body = &b
	}
	for _, a := range ev.History {
		v.History = append(v.History, AttemptView{
			Attempt: a.Attempt, At: fmtTime(a.AtTime()), StatusCode: nonZero(a.StatusCode), Error: nonEmpty(a.Error),
			DurationMS: a.DurationMS, Worker: a.Worker, Response: a.Response, Stale: a.Stale,
		})
	}
	return v
}

// Code is the attempt's status code, 0 when the destination did not answer.
func (a AttemptView) Code() int {
	if a.StatusCode == nil {
		return 0
	}
	return *a.StatusCode
}

// ErrorText is the attempt's error, "" when there was none.
func (a AttemptView) ErrorText() string {
	if a.Error == nil {
		return ""
	}
	return *a.Error
}

// nonZero is a status code for JSON: null when there was none.
func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// nonEmpty is an optional text for JSON: null when empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func cmpInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// bodyBytes turns a JSON body value into the bytes to send: a JSON string is
// sent verbatim, any other JSON value as its JSON text (API.md §4, §5).
func bodyBytes(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '"' {
		if b, ok := unquoteSimple(raw); ok {
			return b, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	return append([]byte(nil), raw...), nil
}

// unquoteSimple decodes a JSON string that is valid UTF-8 and has no \u
// escape, as encoding/json does, without its second pass over the value
// (encoding/json.Unmarshal checks a value whole before it decodes it: 7% of
// the server's CPU in a batch create, whose bodies are JSON strings). It
// reports false for anything else, which goes to encoding/json: \u escapes
// (surrogates), bytes that are not UTF-8 (written as U+FFFD), a control
// character or a quote that JSON does not allow unescaped, or not a string.
// FuzzBodyBytes holds the two to the same bytes.
func unquoteSimple(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || !utf8.Valid(raw) {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '"' || c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			continue
		}
		if i++; i == len(in) {
			return nil, false
		}
		switch in[i] {
		case '"', '\\', '/':
			out = append(out, in[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default: // \u, or not an escape at all
			return nil, false
		}
	}
	return out, true
}

// parseExpiry reads an expiry: Unix seconds, or milliseconds when ≥ 1e11.
// It accepts a JSON number or a numeric string.
func parseExpiry(raw json.RawMessage) (time.Time, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e15 {
		return time.Time{}, fmt.Errorf("expiry must be a Unix time in seconds (or milliseconds)")
	}
	t := time.UnixMilli(int64(f * 1000)).UTC()
	if f >= 1e11 {
		t = time.UnixMilli(int64(f)).UTC()
	}
	if !inTimeRange(t) {
		return time.Time{}, fmt.Errorf("expiry must be a Unix time before the year 10000")
	}
	return t, nil
}

// inTimeRange reports whether a due time can be shown in RFC 3339 and read back.
func inTimeRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1970 && y <= 9999
}

// parseDuration reads a Go duration string, or a number of milliseconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	s := strings.TrimSpace(string(raw))
	if len(s) > 0 && s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, err
		}
		return time.ParseDuration(str)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Millisecond, nil
}
