package delivery_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// createEvent is a valid event for create-time checks.
func createEvent() *scheduler.Event {
	return &scheduler.Event{
		App: "shop", ID: "order-1", URL: "https://example.com/hook", Method: "POST",
		Headers: map[string]string{"X-Trace": "abc"}, Body: []byte(`{"ok":true}`),
		DueAt: time.UnixMilli(1_700_000_000_000),
	}
}

// The create-time half of the SSRF guard: Scheduler.validate (what Create
// and CreateMany run) refuses URLs whose host is a blocked literal address
// in any notation, or a name that always means one.

func TestCreateTimeGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		// refused: refused with the guard on. shorthand: refused whether
		// or not the guard is on (ambiguous notation).
		refused, shorthand bool
	}{
		{url: "http://127.0.0.1/", refused: true},
		{url: "http://127.0.0.1:8080/hook", refused: true},
		{url: "http://127.0.0.1./", refused: true},
		{url: "http://127.255.255.254/", refused: true},
		{url: "http://0.0.0.0/", refused: true},
		{url: "http://[::1]/", refused: true},
		{url: "http://[::1]:9000/", refused: true},
		{url: "http://[0:0:0:0:0:0:0:1]/", refused: true},
		{url: "http://[::]/", refused: true},
		{url: "http://[::ffff:127.0.0.1]/", refused: true},
		{url: "http://[::ffff:7f00:1]/", refused: true},
		{url: "http://[::ffff:169.254.169.254]/", refused: true},
		{url: "http://[::127.0.0.1]/", refused: true},
		{url: "http://169.254.169.254/latest/meta-data/", refused: true},
		{url: "http://metadata.google.internal/computeMetadata/v1/", refused: true},
		{url: "http://METADATA.GOOGLE.INTERNAL./", refused: true},
		{url: "http://metadata.goog/", refused: true},
		{url: "http://metadata/", refused: true},
		{url: "http://instance-data.ec2.internal/", refused: true},
		{url: "http://localhost/", refused: true},
		{url: "http://LocalHost:8080/", refused: true},
		{url: "http://localhost./", refused: true},
		{url: "http://api.localhost/", refused: true},
		{url: "http://localhost.localdomain/", refused: true},
		{url: "http://ｌｏｃａｌｈｏｓｔ/", refused: true}, // full-width: IDNA folds it to localhost
		{url: "http://１２７.０.０.１/", refused: true}, // full-width digits: 127.0.0.1
		{url: "http://100.64.0.1/", refused: true},
		{url: "http://10.0.0.1/", refused: true},
		{url: "http://172.16.0.1/", refused: true},
		{url: "http://192.168.1.1/", refused: true},
		{url: "http://[fc00::1]/", refused: true},
		{url: "http://[fd00:ec2::254]/", refused: true},
		{url: "http://[fe80::1%25eth0]/", refused: true},
		{url: "http://[64:ff9b::a9fe:a9fe]/", refused: true},
		{url: "http://[2002:a9fe:a9fe::1]/", refused: true},
		{url: "http://224.0.0.1/", refused: true},
		{url: "http://255.255.255.255/", refused: true},

		// Shorthand notations: refused as ambiguous, guard or not.
		{url: "http://2130706433/", refused: true, shorthand: true},
		{url: "http://0x7f000001/", refused: true, shorthand: true},
		{url: "http://0X7F000001/", refused: true, shorthand: true},
		{url: "http://0177.0.0.1/", refused: true, shorthand: true},
		{url: "http://0x7f.0.0.1/", refused: true, shorthand: true},
		{url: "http://127.1/", refused: true, shorthand: true},
		{url: "http://127.0.1/", refused: true, shorthand: true},
		{url: "http://0/", refused: true, shorthand: true},
		{url: "http://017700000001/", refused: true, shorthand: true},
		{url: "http://127.000.000.001/", refused: true, shorthand: true},
		{url: "http://1.2.3.4.5/", refused: true, shorthand: true},
		{url: "http://example.0x10/", refused: true, shorthand: true},
		{url: "http://3627734734/", refused: true, shorthand: true}, // a public address, still ambiguous
		{url: "http://example.123/", refused: true, shorthand: true},

		// Public destinations and names: accepted (names are checked on
		// the resolved address at dial time).
		{url: "https://example.com/hook"},
		{url: "https://EXAMPLE.com./hook"},
		{url: "http://93.184.216.34/"},
		{url: "http://[2606:4700::1]:8443/"},
		{url: "http://[::ffff:93.184.216.34]/"},
		{url: "http://[64:ff9b::5db8:d822]/"},
		{url: "https://internal.example.com/"},
		{url: "https://localhost.example.com/"},
		{url: "https://metadata.example.com/"},
		{url: "https://0x10.example.com/"},
		{url: "https://123.example.com/"},
		{url: "https://a1.b2.c3/"},
		{url: "https://bücher.example/"},
	}
	guarded := scheduler.New(nil, scheduler.Config{Guard: &delivery.AddressGuard{}})
	open := scheduler.New(nil, scheduler.Config{})
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				name    string
				s       *scheduler.Scheduler
				refused bool
			}{{"guard on", guarded, tt.refused}, {"guard off", open, tt.shorthand}} {
				ev := createEvent()
				ev.URL = tt.url
				err := c.s.Validate(ev)
				if !c.refused {
					if err != nil {
						t.Fatalf("%s: validate = %v, want accepted", c.name, err)
					}
					continue
				}
				var ve *scheduler.ValidationError
				if !errors.As(err, &ve) || ve.Field != "url" || ve.TooLarge {
					t.Fatalf("%s: validate = %v, want a 400 naming url", c.name, err)
				}
				if strings.Contains(ve.Message, "\n") || ve.Message == "" {
					t.Fatalf("%s: message %q", c.name, ve.Message)
				}
			}
		})
	}
}

// TestCreateTimeGuardAllowList: an allow-listed range is accepted at create
// time too, names included when all their addresses are allowed.
func TestCreateTimeGuardAllowList(t *testing.T) {
	t.Parallel()
	allow, err := delivery.ParseAllowList("127.0.0.0/8,::1,10.1.0.0/16,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	s := scheduler.New(nil, scheduler.Config{Guard: &delivery.AddressGuard{Allow: allow}})
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8080/":          true,
		"http://[::ffff:127.0.0.1]/":      true,
		"http://localhost/":               true,
		"http://10.1.2.3/":                true,
		"http://[fd00::1]/":               true,
		"http://10.2.0.1/":                false,
		"http://[fc00::1]/":               false,
		"http://169.254.169.254/":         false,
		"http://metadata.google.internal": false,
		"http://2130706433/":              false, // ambiguous, even though 127/8 is allowed
	} {
		ev := createEvent()
		ev.URL = url
		if err := s.Validate(ev); (err == nil) != ok {
			t.Errorf("validate(%s) = %v, want accepted %v", url, err, ok)
		}
	}
}

func TestCheckHostNames(t *testing.T) {
	t.Parallel()
	var nilGuard *delivery.AddressGuard
	if err := nilGuard.CheckHost("localhost"); err != nil {
		t.Fatalf("a nil guard refused: %v", err)
	}
	// Only ::1 allowed: localhost still has an allowed address.
	g := &delivery.AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}}
	if err := g.CheckHost("localhost"); err != nil {
		t.Fatalf("localhost with ::1 allowed: %v", err)
	}
	if err := g.CheckHost("metadata.goog"); !errors.Is(err, delivery.ErrBlockedAddress) {
		t.Fatalf("metadata.goog: %v", err)
	}
	var be *delivery.BlockedError
	if err := (&delivery.AddressGuard{}).CheckHost("x.localhost"); !errors.As(err, &be) || be.Name != "x.localhost" || be.What != "loopback" {
		t.Fatalf("x.localhost: %v", err)
	}
}

func TestParseAllowList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string // nil with wantErr
		err  bool
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "10.1.0.0/16,fd00::/8", want: []string{"10.1.0.0/16", "fd00::/8"}},
		{in: " 10.1.0.0/16 , 192.168.5.0/24 ", want: []string{"10.1.0.0/16", "192.168.5.0/24"}},
		{in: "127.0.0.1", want: []string{"127.0.0.1/32"}},
		{in: "::1", want: []string{"::1/128"}},
		{in: "::ffff:10.0.0.0/104", want: []string{"10.0.0.0/8"}},
		{in: "0.0.0.0/0", want: []string{"0.0.0.0/0"}},
		{in: "10.1.2.3/16", err: true},
		{in: "10.1.0.0/33", err: true},
		{in: "10.1.0.0/", err: true},
		{in: "example.com", err: true},
		{in: "10.0.0.0/8;fd00::/8", err: true},
		{in: "fe80::1%eth0", err: true},
		{in: "2130706433", err: true},
	}
	for _, tt := range tests {
		got, err := delivery.ParseAllowList(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("delivery.ParseAllowList(%q) = %v, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), strings.TrimSpace(strings.Split(tt.in, ",")[0])) {
				t.Errorf("delivery.ParseAllowList(%q) error %q does not quote the entry", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("delivery.ParseAllowList(%q): %v", tt.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != strings.Join(tt.want, ",") {
			t.Errorf("delivery.ParseAllowList(%q) = %v, want %v", tt.in, s, tt.want)
		}
	}
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
	guard := &delivery.AddressGuard{}
	s := scheduler.New(nil, scheduler.Config{Guard: guard})
	f.Fuzz(func(t *testing.T, raw string) {
		ev := createEvent()
		ev.URL = raw
		ev.DueAt = time.UnixMilli(1_700_000_000_000)
		err := s.Validate(ev)
		if err != nil {
			ve, ok := err.(*scheduler.ValidationError)
			if !ok || ve.Field != "url" || ve.Message == "" {
				t.Fatalf("validate(%q) = %v, want a *scheduler.ValidationError for url", raw, err)
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
// the test's own implementation, independent of DestinationHost.
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
