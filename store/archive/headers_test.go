package archive

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// checkHeadersJSON fails unless headersJSON(h) is json.Marshal(h) byte for
// byte: the headers column must hold what it held before.
func checkHeadersJSON(t *testing.T, h map[string]string) {
	t.Helper()
	want, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("json.Marshal(%q): %v", h, err)
	}
	got := headersJSON(h)
	if got != string(want) {
		t.Errorf("headersJSON(%q)\n got %s\nwant %s", h, got, want)
	}
	if !utf8.ValidString(got) {
		t.Errorf("headersJSON(%q) = %q is not valid UTF-8", h, got)
	}
}

func TestHeadersJSONIsJSONMarshal(t *testing.T) {
	t.Parallel()
	tests := []map[string]string{
		{},
		{"Content-Type": "application/json"},
		{"X-B": "2", "X-A": "1", "Authorization": "Bearer abc.def", "a": "lower sorts after upper"},
		{"X-Quote": `say "hi" \ bye`, "X-Html": "<script>a && b</script>", "X-Ctl": "\x00\x01\b\f\n\r\t\x1f\x7f"},
		{"X-Unicode": "héllo wörld ✓ 日本 🍕", "X-Seps": "a\u2028b\u2029c", "X-Bad": "\xff\xfe ok \xc3"},
		{"\xffbad-key": "v", "ké": "<>", "": "empty key"},
	}
	for _, h := range tests {
		checkHeadersJSON(t, h)
	}
}

func FuzzHeadersJSON(f *testing.F) {
	f.Add("Content-Type", "application/json", "X-Trace", "abc")
	f.Add("X-Html", "<a href='x'>&amp;</a>", "\u2028", "\xed\xa0\x80")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		checkHeadersJSON(t, map[string]string{k1: v1, k2: v2})
	})
}

func BenchmarkHeadersJSON(b *testing.B) {
	h := map[string]string{"Content-Type": "application/json", "X-Request-Id": "evt-00000042"}
	b.Run("headersJSON", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = headersJSON(h)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			bs, _ := json.Marshal(h)
			_ = string(bs)
		}
	})
}
