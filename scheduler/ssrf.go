package scheduler

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// blockedPrefixes are destinations a multi-tenant scheduler must not reach on
// a client's say-so: loopback, private, link-local (cloud metadata), CGNAT,
// unique-local, "this network", multicast and the NAT64 / IPv4-mapped forms
// of them (the mapped forms are unmapped before the check).
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96", "64:ff9b:1::/48", "2001:db8::/32",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// ErrBlockedAddress is returned when a delivery would connect to a blocked address.
var ErrBlockedAddress = fmt.Errorf("destination address is not allowed")

// AddressGuard decides which resolved addresses deliveries may connect to.
type AddressGuard struct {
	// Allow lists CIDRs that are allowed even though they are blocked by default.
	Allow []netip.Prefix
}

// Blocked reports whether ip may not be connected to.
func (g *AddressGuard) Blocked(ip netip.Addr) bool {
	// Drop the zone first: netip.Prefix.Contains is false for any zoned
	// address, so "fe80::1%eth0" would otherwise pass every check.
	ip = ip.WithZone("").Unmap()
	for _, p := range g.Allow {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		// NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 4 bytes:
		// blocked as a whole above; 6to4 and others are left to the list.
		b := ip.As16()
		if b[0] == 0x20 && b[1] == 0x02 { // 2002::/16 6to4: check the embedded IPv4
			v4 := netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
			if g.Blocked(v4) {
				return true
			}
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control function: it runs on the resolved address
// right before connecting, so DNS rebinding cannot get past it.
func (g *AddressGuard) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || g.Blocked(ip) {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, host)
	}
	return nil
}
