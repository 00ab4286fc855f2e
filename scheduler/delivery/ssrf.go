package delivery

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/cassata/cassata/scheduler"
)

// The SSRF guard (CASSATA_BLOCK_PRIVATE) keeps clients from using Cassata to
// reach what only Cassata's own network can reach: loopback, private and
// link-local addresses (cloud metadata at 169.254.169.254), and the
// IPv6 forms that carry them.
//
// The check that matters runs at dial time, in net.Dialer.Control, on the
// address the socket is about to connect to, after name resolution. It runs
// for every connection attempt (each address of a multi-address name, Happy
// Eyeballs fallbacks, TLS and HTTP/2 connections all go through the one
// dialer), so a name that resolves to a public address when the event is
// created and to 127.0.0.1 when it is delivered (DNS rebinding) is still
// refused. Deliveries use no proxy and follow no redirect, so the address
// checked is always the destination's.
//
// Create time adds a cheaper, earlier check (CheckHost): a URL whose host is
// a literal blocked address, or a name that always means one (localhost,
// metadata.google.internal), is refused with 400 before it is stored.

// blockedRange is a range deliveries may not reach, with what it is, for the error.
type blockedRange struct {
	prefix netip.Prefix
	what   string
}

// blockedRanges: IANA's special-purpose registries (RFC 6890 and updates),
// the ranges that are not globally reachable or that a webhook has no
// business reaching. Order matters only for the name in the error.
var blockedRanges = func() []blockedRange {
	var out []blockedRange
	for _, r := range []struct{ cidr, what string }{
		{"0.0.0.0/8", `"this network" (0.0.0.0 reaches the local host)`},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved or broadcast"},

		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"100::/64", "discard-only"},
		{"2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"},
		{"2001:db8::/32", "documentation"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"fc00::/7", "unique local"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, blockedRange{netip.MustParsePrefix(r.cidr), r.what})
	}
	return out
}()

// Prefixes whose addresses embed an IPv4 address in their last 32 bits: the
// IPv6 address is blocked when the IPv4 one is. IPv4-mapped (::ffff:0:0/96)
// addresses are unmapped before any check instead.
var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052 well-known NAT64
	translatedPrefix = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 IPv4-translated (SIIT)
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")       // RFC 3056 6to4: IPv4 in bits 16-47
	globalUnicast6   = netip.MustParsePrefix("2000::/3")
)

// ErrBlockedAddress is returned when a delivery would connect to a blocked address.
var ErrBlockedAddress = errors.New("destination blocked by the SSRF guard")

// AddressGuard decides which addresses deliveries may connect to. The zero
// value blocks every range above; a nil *AddressGuard blocks nothing.
type AddressGuard struct {
	// Allow lists CIDRs that are allowed even though they are blocked by
	// default (CASSATA_ALLOW_CIDRS), for operators who deliver inside their
	// network. It wins over every blocked range. Defaults to none.
	Allow []netip.Prefix
	// OnRefusal, when set, is called once for each refusal: with StageCreate
	// when a create's URL is refused, with StageDelivery when a delivery
	// attempt is (for the cassata_ssrf_refusals_total counter). Defaults to
	// nothing.
	OnRefusal func(stage string)
}

// Stages of OnRefusal.
const (
	StageCreate   = "create"
	StageDelivery = "delivery"
)

// refused reports a refusal to OnRefusal.
func (g *AddressGuard) refused(stage string) {
	if g != nil && g.OnRefusal != nil {
		g.OnRefusal(stage)
	}
}

// Blocked reports whether ip may not be connected to.
func (g *AddressGuard) Blocked(ip netip.Addr) bool { return g.Check(ip) != nil }

// Check returns an error wrapping ErrBlockedAddress, naming the address and
// its range, when ip may not be connected to.
func (g *AddressGuard) Check(ip netip.Addr) error {
	if g == nil {
		return nil
	}
	if what := g.blocked(ip); what != "" {
		return &BlockedError{Addr: ip.WithZone("").Unmap(), What: what}
	}
	return nil
}

// BlockedError says which address the guard refused and why. It wraps
// ErrBlockedAddress.
type BlockedError struct {
	Addr netip.Addr
	// What names the blocked range, e.g. "loopback".
	What string
	// Name is the host name that always means Addr, when the refusal is of
	// a name (create time).
	Name string
}

func (e *BlockedError) Error() string {
	const hint = " (an operator can allow it with CASSATA_ALLOW_CIDRS)"
	if e.Name != "" {
		return fmt.Sprintf("%v: %s means %s, which is %s%s", ErrBlockedAddress, e.Name, e.Addr, e.What, hint)
	}
	return fmt.Sprintf("%v: %s is %s%s", ErrBlockedAddress, e.Addr, e.What, hint)
}

func (e *BlockedError) Unwrap() error { return ErrBlockedAddress }

// blocked says which blocked range ip is in, "" when it is allowed.
func (g *AddressGuard) blocked(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not an IP address"
	}
	// Drop the zone first: netip.Prefix.Contains is false for any zoned
	// address, so "fe80::1%eth0" would otherwise pass every check.
	ip = ip.WithZone("").Unmap()
	for _, p := range g.Allow {
		if p.Contains(ip) {
			return ""
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if what := g.blocked(v4); what != "" {
			return "an IPv6 form of " + v4.String() + ", " + what
		}
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.what
		}
	}
	// IPv6 has one globally routed block so far; the rest (::/8 beyond the
	// ranges above, 4000::/2 ...) is unassigned or special. NAT64 and SIIT
	// addresses were judged by their embedded IPv4 address above.
	if ip.Is6() && !globalUnicast6.Contains(ip) && !nat64Prefix.Contains(ip) && !translatedPrefix.Contains(ip) {
		return "outside IPv6 global unicast (2000::/3)"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address that a NAT64, SIIT or 6to4 address
// carries (the packets end up there).
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip), translatedPrefix.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFourPrefix.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// Control is a net.Dialer Control function: it runs on the resolved address
// right before each connect, so DNS rebinding cannot get past it. An address
// that is not an IP (it never is after resolution) is refused.
func (g *AddressGuard) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check %q", ErrBlockedAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrBlockedAddress, host)
	}
	return g.Check(ip)
}

// internalNames are host names that mean a blocked address wherever they are
// resolved, mapped to those addresses. A name is refused at create time when
// every one of its addresses is blocked (so an allow-list entry for
// 127.0.0.0/8 lets "localhost" through too).
var internalNames = map[string][]netip.Addr{
	"localhost":                  {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	"localhost.localdomain":      {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	"ip6-localhost":              {netip.MustParseAddr("::1")},
	"ip6-loopback":               {netip.MustParseAddr("::1")},
	"metadata":                   {netip.MustParseAddr("169.254.169.254")},
	"metadata.google.internal":   {netip.MustParseAddr("169.254.169.254")},
	"metadata.goog":              {netip.MustParseAddr("169.254.169.254")},
	"instance-data":              {netip.MustParseAddr("169.254.169.254")},
	"instance-data.ec2.internal": {netip.MustParseAddr("169.254.169.254")},
}

// CheckHost is the create-time check of a URL's host (as url.URL.Hostname
// returns it, already validated by Limits.Validate): it refuses a literal
// blocked address and a name that always means one. Other names pass; the
// dial-time check sees what they resolve to.
func (g *AddressGuard) CheckHost(host string) error {
	if g == nil {
		return nil
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.Check(ip)
	}
	addrs, ok := internalNames[host]
	if !ok && strings.HasSuffix(host, ".localhost") { // RFC 6761: always loopback
		addrs, ok = internalNames["localhost"]
	}
	if !ok {
		return nil
	}
	var first error
	for _, a := range addrs {
		err := g.Check(a)
		if err == nil {
			return nil
		}
		first = cmp.Or(first, err)
	}
	var be *BlockedError
	if errors.As(first, &be) {
		be.Name = host
	}
	return first
}

// CheckURL is the create-time check of a URL that Limits.Validate accepted,
// as Scheduler.Create applies it: a *ValidationError for "url" when the
// guard refuses its host. For callers that judge events without creating
// them (cassata import --dry-run). A nil guard accepts everything.
func (g *AddressGuard) CheckURL(raw string) error { return g.checkURL(raw) }

// checkURL is the create-time check of an event's URL (already validated):
// a *ValidationError for "url" when the guard refuses its host.
func (g *AddressGuard) checkURL(raw string) error {
	if g == nil {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return scheduler.Invalid("url", "url must be an absolute http or https URL")
	}
	host, err := scheduler.DestinationHost(u)
	if err != nil {
		return err
	}
	var be *BlockedError
	if err := g.CheckHost(host); errors.As(err, &be) {
		g.refused(StageCreate)
		what := fmt.Sprintf("%s is %s", be.Addr, be.What)
		if be.Name != "" {
			what = fmt.Sprintf("%s means %s, which is %s", be.Name, be.Addr, be.What)
		}
		return scheduler.Invalid("url", "url host %s: deliveries to private, loopback, link-local and reserved addresses are blocked", what)
	}
	return nil
}

// ParseAllowList parses CASSATA_ALLOW_CIDRS: comma-separated CIDRs (a bare
// address means just that address). A prefix with host bits set is refused,
// since it rarely means what it says; IPv4-mapped IPv6 prefixes are turned
// into their IPv4 form, because the guard checks mapped addresses as IPv4.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.1.0.0/16 or fd00::/8", item)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%q has bits set after the prefix length: did you mean %s?", item, p.Masked())
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.1.0.0/16 or fd00::/8", item)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("%q: a zone has no meaning in an allow-list", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, nil
}

// validationMessage is the message of a *ValidationError without its field.
func validationMessage(err error) string {
	var ve *scheduler.ValidationError
	if errors.As(err, &ve) {
		return ve.Message
	}
	return err.Error()
}
