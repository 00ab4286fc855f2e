package redisstore

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestCompactRoundTrip: every shape of event reads back from its compact
// value as from its hash, and the value has the creation time first in its
// request section and the due time first in its state section, where the
// scripts read them without decoding (prelude.lua compact_first).
func TestCompactRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_123).UTC()
	for _, ev := range codecEvents(now) {
		raw := string(encodeCompact(ev, false))
		got, err := compactValues(raw)
		if err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
		pairs := encode(ev)
		h := map[string]string{}
		for i := 0; i < len(pairs); i += 2 {
			h[pairs[i].(string)] = fmt.Sprint(str(pairs[i+1]))
		}
		if want := hashValues(h); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: compact values\n%q\nhash values\n%q", ev.ID, got, want)
		}
		if raw[0] != compactVersion {
			t.Fatalf("%s: version byte %d", ev.ID, raw[0])
		}
		reqLen, n := binary.Uvarint([]byte(raw[1:]))
		req := 1 + n
		if f := int(raw[req]) - 1; f != fCreated {
			t.Errorf("%s: request section starts with field %d, want the creation time", ev.ID, f)
		}
		if f := int(raw[req+int(reqLen)]) - 1; f != fDue {
			t.Errorf("%s: state section starts with field %d, want the due time", ev.ID, f)
		}
		// In layoutTabled the event reads back the same, headers included.
		tv, err := compactValues(string(encodeCompact(ev, true)))
		if err != nil {
			t.Fatalf("%s tabled: %v", ev.ID, err)
		}
		tabled, err := decodeValues(ev.App, ev.ID, tv)
		if err != nil {
			t.Fatalf("%s tabled: %v", ev.ID, err)
		}
		plain, err := decodeValues(ev.App, ev.ID, got)
		if err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
		if !reflect.DeepEqual(tabled, plain) {
			t.Errorf("%s: tabled value reads back\n%+v\nplain one\n%+v", ev.ID, tabled, plain)
		}
	}
}

// str is a hash field's value as go-redis writes it.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	}
	panic(fmt.Sprintf("value of type %T", v))
}

// compactField is field f with value v as a compact value writes it.
func compactField(f int, v string) string { return string(appendCompactField(nil, f, v)) }

// TestCompactValuesLog: the state section is a log. A later field wins,
// history lines add up, and 128+i removes field i.
func TestCompactValuesLog(t *testing.T) {
	t.Parallel()
	req := compactField(fCreated, "1700000000000") + compactField(fURL, "https://example.com/")
	state := compactField(fDue, "1700000001000") +
		compactField(fStatus, "PROCESSING") + compactField(fWorker, "w1") + compactField(fHistory, "line 1\n") +
		compactField(fStatus, "PENDING") + string([]byte{128 + fWorker + 1}) + compactField(fHistory, "line 2\n")
	raw := string(binary.AppendUvarint([]byte{compactVersion}, uint64(len(req)))) + req + state
	v, err := compactValues(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]any{fCreated: "1700000000000", fURL: "https://example.com/", fDue: "1700000001000",
		fStatus: "PENDING", fHistory: "line 1\nline 2\n"}
	for f := range v {
		if w, ok := want[f]; ok != (v[f] != nil) || (ok && v[f] != w) {
			t.Errorf("%s = %q, want %q", name(f), v[f], w)
		}
	}
}

// TestCompactValuesMalformed: a value that is not a whole compact value
// is an error, never a panic or a silent half.
func TestCompactValuesMalformed(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_123).UTC()
	good := string(encodeCompact(codecEvents(now)[1], false))
	bad := []string{
		"",
		"\x01" + good[1:],                      // another version
		good[:len(good)-1],                     // cut short
		"\x02\x7f" + good[2:],                  // a request section longer than the value
		"\x02\x00\x1c\x01x",                    // field 28: no such field
		"\x02\x00\x00\x01x",                    // field 0
		"\x02\x00\x01\xff\xff\xff\xff\xff\x01", // a length of more than 32 bits
		"\x02\x00\x01",                         // a field without a length
	}
	for _, s := range bad {
		if v, err := compactValues(s); err == nil {
			t.Errorf("compactValues(%q) = %q, want an error", s, v)
		}
	}
}

// FuzzCompactValues: no input makes compactValues panic; what it reads,
// it reads from the input.
func FuzzCompactValues(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_123).UTC()
	for _, ev := range codecEvents(now) {
		f.Add(string(encodeCompact(ev, false)))
		f.Add(string(encodeCompact(ev, true)))
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := compactValues(s)
		if err != nil {
			return
		}
		if len(v) != numFields {
			t.Fatalf("%d values", len(v))
		}
	})
}
