package delivery

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// These tests never connect anywhere: Blocked and Control are pure functions
// of an address.

func TestAddressGuardBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip      string
		blocked bool
	}{
		// Loopback and "this network".
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::1", true},
		{"::", true},
		// IPv4-mapped forms are unmapped first.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		// Cloud metadata and link-local.
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fe80::a9fe:a9fe%1", true},
		// CGNAT.
		{"100.64.0.1", true},
		{"100.127.255.254", true},
		// Private.
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.254", true},
		{"192.168.1.1", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		// NAT64 and 6to4 carrying blocked IPv4 addresses.
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::7f00:1", true},
		{"2002:7f00:1::1", true},
		{"2002:a9fe:a9fe::", true},
		// IPv4-compatible (deprecated) and IPv4-translated forms.
		{"::127.0.0.1", true},
		{"::8.8.8.8", true},
		{"::ffff:0:7f00:1", true},
		{"::ffff:0:a9fe:a9fe", true},
		{"::ffff:0:808:808", false}, // SIIT form of 8.8.8.8
		// NAT64: blocked when the embedded IPv4 is, so an IPv6-only network
		// with DNS64 still reaches public IPv4 destinations.
		{"64:ff9b::8.8.8.8", false},
		{"64:ff9b::10.0.0.1", true},
		{"64:ff9b::c0a8:101", true},
		{"64:ff9b:1::1", true}, // local-use NAT64: blocked whole
		// Teredo and the rest of the IETF protocol assignments.
		{"2001::1", true},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true},
		{"2001:2::1", true},
		// Outside 2000::/3, the only globally routed IPv6 block.
		{"::fff:a9fe:a9fe", true},
		{"1::1", true},
		{"4000::1", true},
		{"e000::1", true},
		// More reserved IPv6.
		{"100::1", true},
		{"fec0::1", true},
		{"3fff::1", true},
		{"ff05::2", true},
		// More reserved IPv4.
		{"192.0.2.1", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"192.88.99.1", true},
		{"240.0.0.1", true},
		{"0.0.0.0", true},
		// Multicast, benchmarking, reserved, documentation.
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"255.255.255.255", true},
		{"198.18.0.1", true},
		{"192.0.0.170", true},
		{"ff02::1", true},
		{"2001:db8::1", true},
		// Public addresses.
		{"93.184.216.34", false},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"::ffff:93.184.216.34", false},
		{"2606:4700::1", false},
		{"2a00:1450:4001:80b::200e", false},
		{"2001:4860:4860::8888", false}, // outside 2001::/23
		{"2001:200::1", false},
		{"2002:5db8:d822::1", false}, // 6to4 of a public address
		// Just outside the blocked ranges.
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"169.253.255.255", false},
		{"11.0.0.1", false},
		{"192.169.0.1", false},
	}
	g := &AddressGuard{}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.ip)
			if got := g.Blocked(ip); got != tt.blocked {
				t.Fatalf("Blocked(%s) = %v, want %v", tt.ip, got, tt.blocked)
			}
		})
	}
}

func TestAddressGuardAllow(t *testing.T) {
	t.Parallel()
	g := &AddressGuard{Allow: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("fd00:1::/32"),
	}}
	tests := []struct {
		ip      string
		blocked bool
	}{
		{"10.1.2.3", false},
		{"::ffff:10.1.2.3", false},
		{"10.2.0.1", true},
		{"127.0.0.1", false},
		{"127.0.0.2", true},
		{"fd00:1::5", false},
		{"fd00:2::5", true},
		{"169.254.169.254", true},
		{"93.184.216.34", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			t.Parallel()
			if got := g.Blocked(netip.MustParseAddr(tt.ip)); got != tt.blocked {
				t.Fatalf("Blocked(%s) = %v, want %v", tt.ip, got, tt.blocked)
			}
		})
	}
}

func TestAddressGuardControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		network, address string
		blocked          bool
		names            string // what the error must mention
	}{
		{"tcp4", "127.0.0.1:80", true, "127.0.0.1"},
		{"tcp4", "169.254.169.254:80", true, "169.254.169.254"},
		{"tcp4", "10.0.0.1:443", true, "10.0.0.1"},
		{"tcp6", "[::1]:443", true, "::1"},
		{"tcp6", "[::ffff:127.0.0.1]:80", true, "127.0.0.1"},
		{"tcp6", "[fe80::1%eth0]:80", true, "fe80::1"},
		{"tcp6", "[64:ff9b::a9fe:a9fe]:80", true, "64:ff9b::a9fe:a9fe"},
		{"tcp", "localhost:80", true, "localhost"}, // not an IP: refused, never resolved here
		{"tcp", "127.0.0.1", true, "127.0.0.1"},    // no port: refused
		{"tcp", "", true, ""},
		{"tcp4", "93.184.216.34:80", false, ""},
		{"tcp6", "[2606:4700::1]:443", false, ""},
	}
	g := &AddressGuard{}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			t.Parallel()
			err := g.Control(tt.network, tt.address, nil)
			if !tt.blocked {
				if err != nil {
					t.Fatalf("Control(%s) = %v, want nil", tt.address, err)
				}
				return
			}
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("Control(%s) = %v, want ErrBlockedAddress", tt.address, err)
			}
			if !strings.Contains(err.Error(), tt.names) {
				t.Fatalf("Control(%s) = %q, want it to name %q", tt.address, err, tt.names)
			}
		})
	}

	allow := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if err := allow.Control("tcp4", "127.0.0.1:8080", nil); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
}
