package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The API speaks RFC 3339 times and Go duration strings ("30s"); the types
// of this package have time.Time and time.Duration. These convert.

// wireTime reads an RFC 3339 time; null and "" read as the zero time.
type wireTime time.Time

func (t *wireTime) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*t = wireTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected an RFC 3339 time, got %s", b)
	}
	if s == "" {
		*t = wireTime{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = wireTime(v)
	return nil
}

// wireDuration reads a Go duration string or a number of milliseconds;
// null and "" read as 0.
type wireDuration time.Duration

func (d *wireDuration) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*d = 0
		return nil
	}
	if b[0] != '"' {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("expected a duration, got %s", b)
		}
		*d = wireDuration(time.Duration(n) * time.Millisecond)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = wireDuration(v)
	return nil
}

func isNull(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// fmtTime writes a time for the API ("" for the zero time, left out).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// optTime writes an optional time: nil (null) for the zero time.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := fmtTime(t)
	return &s
}

// fmtDuration writes a duration for the API ("" for 0, left out).
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// dueOf gives the due time of a request as at and delay: each when set, so
// that the server refuses both (400, field at); neither is a delay of 0
// (due now) when required, else nothing.
func dueOf(at time.Time, delay time.Duration, required bool) (string, string) {
	var d string
	if delay != 0 || at.IsZero() && required {
		d = delay.String()
	}
	return fmtTime(at), d
}
