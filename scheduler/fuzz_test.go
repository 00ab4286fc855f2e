package scheduler

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
		err := Limits{}.Validate(ev)
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

// FuzzDestinationURL: a URL the create-time guard accepts does not lead to
// a blocked address, however the host is read: as Go parses it, as IPv6, or
// as glibc's inet_aton and browsers read shorthand IPv4 (inetAton below).
// A URL refused is refused naming "url".
func FuzzDestinationURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/hook",
		"http://127.0.0.1/",
		"http://2130706433/",
		"http://0x7f000001/",
		"http://0177.0.0.1/",
		"http://127.1/",
		"http://0/",
		"http://[::ffff:127.0.0.1]/",
		"http://[::1]:80/",
		"http://[fe80::1%25eth0]/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://metadata.google.internal/",
		"http://localhost./",
		"http://a.localhost/",
		"http://１２７.０.０.１/",
		"http://ｌｏｃａｌｈｏｓｔ/",
		"http://169.254.169.254.nip.io/",
		"http://0x7f.1/",
		"http://1.2.3.4.5/",
		"http://93.184.216.34:8080/x",
		"http://user@example.com/",
		"http://exa%2Fmple.com/",
	} {
		f.Add(seed)
	}
	guard := &AddressGuard{}
	s := New(nil, Config{Guard: guard})
	f.Fuzz(func(t *testing.T, raw string) {
		ev := validEvent()
		ev.URL = raw
		ev.DueAt = time.UnixMilli(1_700_000_000_000)
		err := s.validate(ev)
		if err != nil {
			ve, ok := err.(*ValidationError)
			if !ok || ve.Field != "url" || ve.Message == "" {
				t.Fatalf("validate(%q) = %v, want a *ValidationError for url", raw, err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("accepted %q, which url.Parse refuses: %v", raw, perr)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if a, aerr := netip.ParseAddr(host); aerr == nil && guard.Blocked(a) {
			t.Fatalf("accepted %q: host %s is blocked", raw, a)
		}
		if a, ok := inetAton(host); ok && guard.Blocked(a) {
			t.Fatalf("accepted %q: inet_aton reads its host as %s, which is blocked", raw, a)
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "metadata.google.internal" {
			t.Fatalf("accepted %q: an internal name", raw)
		}
	})
}

// inetAton reads an IPv4 address the permissive way glibc's inet_aton and
// the WHATWG URL parser do: one to four parts, each decimal, octal (leading
// 0) or hexadecimal (0x), the last part filling the remaining bytes. It is
// the test's own implementation, independent of destinationHost.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*uint(i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-uint(len(vals)))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func TestInetAton(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "0177.0.0.1": "127.0.0.1", "127.1": "127.0.0.1",
		"0": "0.0.0.0", "127.0.1": "127.0.0.1", "0x7f.1": "127.0.0.1", "192.168.257": "192.168.1.1", "1.2.3.4": "1.2.3.4",
		"256.1.1.1": "", "1.2.3.4.5": "", "example.com": "", "08.1.1.1": "", "4294967296": "",
	} {
		got, ok := inetAton(in)
		if want == "" {
			if ok {
				t.Errorf("inetAton(%q) = %s, want no address", in, got)
			}
			continue
		}
		if !ok || got.String() != want {
			t.Errorf("inetAton(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
}
