package scheduler

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Fuzz targets for create-time validation. `make test` runs each briefly
// (see the Makefile); the seed corpus is in testdata/fuzz/<FuzzName>/ and
// runs with every `go test`.

// FuzzValidateHeaders: whatever header a client gives, Validate either
// refuses it naming "headers", or accepts something that net/http sends as
// exactly that one header, with nothing injected after it and nothing that
// belongs to the connection or to Cassata's signature.
func FuzzValidateHeaders(f *testing.F) {
	for _, seed := range [][2]string{
		{"X-Trace", "abc"},
		{"Content-Type", "application/json; charset=utf-8"},
		{"X-A", "a\r\nX-Injected: 1"},
		{"X-A", "a\nb"},
		{"X-A", "\x00"},
		{"X-A", " leading and trailing\t"},
		{"X A", "v"},
		{"Host", "evil.example"},
		{"webhook-signature", "v1,x"},
		{"Proxy-Authorization", "Basic eA=="},
		{"Transfer-Encoding", "chunked"},
		{"X-Ütf8", "v"},
		{"X-V", "é \xff"},
		{"", ""},
		{"X-K:", "v"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		ev := validEvent()
		ev.Headers = map[string]string{name: value}
		err := Limits{}.Check(ev)
		if err != nil {
			ve, ok := err.(*ValidationError)
			if !ok || ve.Field != "headers" || ve.Message == "" {
				t.Fatalf("Validate(%q: %q) = %v, want a *ValidationError for headers", name, value, err)
			}
			return
		}
		// Accepted: an independent opinion (x/net's httpguts, used by net/http).
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			t.Fatalf("accepted %q: %q, which net/http refuses", name, value)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			t.Fatalf("accepted a value with CR, LF or NUL: %q", value)
		}
		canon := http.CanonicalHeaderKey(name)
		if hopByHop[canon] || strings.HasPrefix(canon, "Proxy-") || strings.HasPrefix(canon, "Webhook-") {
			t.Fatalf("accepted the reserved header %q", name)
		}
		// On the wire it is exactly one header line, and it reads back the same.
		req, rerr := http.NewRequest(http.MethodPost, "http://example.com/", strings.NewReader("{}"))
		if rerr != nil {
			t.Fatal(rerr)
		}
		req.Header.Set(name, value)
		var wire bytes.Buffer
		if werr := req.Write(&wire); werr != nil {
			t.Fatalf("accepted %q: %q, but the request cannot be written: %v", name, value, werr)
		}
		back, perr := http.ReadRequest(bufio.NewReader(&wire))
		if perr != nil {
			t.Fatalf("accepted %q: %q, but the written request does not parse: %v", name, value, perr)
		}
		if got := back.Header.Values(name); len(got) != 1 || got[0] != strings.Trim(value, " \t") {
			t.Fatalf("header %q: %q read back as %q", name, value, got)
		}
		for k := range back.Header {
			// Write adds Content-Length and a default User-Agent.
			if k != canon && k != "Content-Length" && k != "User-Agent" {
				t.Fatalf("header %q: %q brought header %q along: %v", name, value, k, back.Header)
			}
		}
	})
}
