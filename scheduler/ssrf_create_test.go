package scheduler

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

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
	guarded := New(nil, Config{Guard: &AddressGuard{}})
	open := New(nil, Config{})
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				name    string
				s       *Scheduler
				refused bool
			}{{"guard on", guarded, tt.refused}, {"guard off", open, tt.shorthand}} {
				ev := validEvent()
				ev.URL = tt.url
				err := c.s.validate(ev)
				if !c.refused {
					if err != nil {
						t.Fatalf("%s: validate = %v, want accepted", c.name, err)
					}
					continue
				}
				var ve *ValidationError
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
	allow, err := ParseAllowList("127.0.0.0/8,::1,10.1.0.0/16,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil, Config{Guard: &AddressGuard{Allow: allow}})
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
		ev := validEvent()
		ev.URL = url
		if err := s.validate(ev); (err == nil) != ok {
			t.Errorf("validate(%s) = %v, want accepted %v", url, err, ok)
		}
	}
}

func TestCheckHostNames(t *testing.T) {
	t.Parallel()
	var nilGuard *AddressGuard
	if err := nilGuard.CheckHost("localhost"); err != nil {
		t.Fatalf("a nil guard refused: %v", err)
	}
	// Only ::1 allowed: localhost still has an allowed address.
	g := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}}
	if err := g.CheckHost("localhost"); err != nil {
		t.Fatalf("localhost with ::1 allowed: %v", err)
	}
	if err := g.CheckHost("metadata.goog"); !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("metadata.goog: %v", err)
	}
	var be *BlockedError
	if err := (&AddressGuard{}).CheckHost("x.localhost"); !errors.As(err, &be) || be.Name != "x.localhost" || be.What != "loopback" {
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
		got, err := ParseAllowList(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseAllowList(%q) = %v, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), strings.TrimSpace(strings.Split(tt.in, ",")[0])) {
				t.Errorf("ParseAllowList(%q) error %q does not quote the entry", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAllowList(%q): %v", tt.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParseAllowList(%q) = %v, want %v", tt.in, s, tt.want)
		}
	}
}
