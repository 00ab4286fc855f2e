package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/fakedns"
	"github.com/cassata/cassata/scheduler"
)

// The dial-time half of the SSRF guard, through a real Deliverer: names are
// answered by FakeDNS, and the guard refuses in Dialer.Control, after the
// socket exists and before connect(2), so not one packet goes to a blocked
// address (the loopback ones point at a live sink that must see nothing).

// sinkPort returns the port of a sink that must receive nothing.
func sinkPort(t *testing.T) (*sink, string) {
	t.Helper()
	s := newSink(t, nil)
	u, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, u.Port()
}

// guardedDeliverer delivers with the guard and the fake DNS.
func guardedDeliverer(g *AddressGuard, dns *fakedns.Server) *Deliverer {
	return New(Config{Guard: g, Resolver: dns.Resolver()})
}

// wantBlocked checks an attempt refused by the guard: a FAILED outcome at
// once (no retry), with the guard's error naming the address.
func wantBlocked(t *testing.T, r Result, addr string) {
	t.Helper()
	if r.Err == nil || r.StatusCode != 0 {
		t.Fatalf("Deliver = %+v, want the guard's error", r)
	}
	if !errors.Is(r.Err, ErrBlockedAddress) {
		t.Fatalf("error = %v, want ErrBlockedAddress", r.Err)
	}
	var be *BlockedError
	if !errors.As(r.Err, &be) || be.Addr.String() != addr {
		t.Fatalf("error = %v, want it to name %s", r.Err, addr)
	}
	if !strings.Contains(r.Err.Error(), addr) || !strings.Contains(r.Err.Error(), "blocked") {
		t.Fatalf("error text %q does not say %s is blocked", r.Err, addr)
	}
	if !r.Unbuildable || Classify(r) != scheduler.StatusFailed {
		t.Fatalf("Classify = %s (unbuildable %v), want FAILED without retries", Classify(r), r.Unbuildable)
	}
}

func TestDeliverGuardMatrix(t *testing.T) {
	t.Parallel()
	s, port := sinkPort(t)
	dns := fakedns.New(map[string][][]string{
		"metadata.google.internal": {{"169.254.169.254"}},
		"metadata.goog":            {{"169.254.169.254"}},
		// What glibc's inet_aton and browsers make of 0x7f000001: were it
		// looked up, a hostile DNS server could answer anything.
		"0x7f000001": {{"127.0.0.1"}},
		// A name with only blocked addresses, of both families.
		"internal.example.test": {{"10.0.0.1", "fd00::1"}},
	})
	tests := []struct {
		host string // URL host, with brackets for IPv6
		addr string // the address the error must name; "" for a shorthand notation
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"0.0.0.0", "0.0.0.0"},
		{"[::1]", "::1"},
		{"[::ffff:127.0.0.1]", "127.0.0.1"},
		{"[::ffff:7f00:1]", "127.0.0.1"},
		{"[0:0:0:0:0:ffff:7f00:0001]", "127.0.0.1"},
		{"[::]", "::"},
		{"169.254.169.254", "169.254.169.254"},
		{"[::ffff:169.254.169.254]", "169.254.169.254"},
		{"metadata.google.internal", "169.254.169.254"},
		{"metadata.goog", "169.254.169.254"},
		{"100.64.0.1", "100.64.0.1"},
		{"10.0.0.1", "10.0.0.1"},
		{"172.16.0.1", "172.16.0.1"},
		{"192.168.1.1", "192.168.1.1"},
		{"[fc00::1]", "fc00::1"},
		{"[fe80::1%25lo]", "fe80::1"},
		{"[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe"},
		{"[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"},
		{"[2002:7f00:1::1]", "2002:7f00:1::1"},
		{"[::127.0.0.1]", "::7f00:1"},
		// Shorthand IPv4 notations mean 127.0.0.1 to glibc and browsers and
		// nothing to Go's resolver (it refuses all-numeric names): failed
		// before any lookup, with the guard's error.
		{"2130706433", ""},
		{"0x7f000001", ""},
		{"0177.0.0.1", ""},
		{"127.1", ""},
		{"0", ""},
		{"0x7f.1", ""},
		{"224.0.0.1", "224.0.0.1"},
		{"255.255.255.255", "255.255.255.255"},
		{"internal.example.test", "10.0.0.1"},
	}
	d := guardedDeliverer(&AddressGuard{}, dns)
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			r := d.Deliver(context.Background(), deliveryEvent("http://"+tt.host+":"+port+"/hook"), 5*time.Second)
			if tt.addr == "" {
				if !errors.Is(r.Err, ErrBlockedAddress) || !r.Unbuildable || Classify(r) != scheduler.StatusFailed ||
					!strings.Contains(r.Err.Error(), tt.host) {
					t.Fatalf("Deliver = %+v, want FAILED with the guard's error naming %s", r, tt.host)
				}
				if n := dns.Lookups(tt.host); n != 0 {
					t.Fatalf("%s was looked up %d times", tt.host, n)
				}
				return
			}
			if tt.host == "internal.example.test" {
				// Every address of the name is refused; the error names the first tried.
				if !errors.Is(r.Err, ErrBlockedAddress) || !r.Unbuildable {
					t.Fatalf("Deliver = %+v, want blocked", r)
				}
				return
			}
			wantBlocked(t, r, tt.addr)
		})
	}
	t.Cleanup(func() {
		if n := len(s.requests()); n != 0 {
			t.Errorf("the loopback sink got %d requests through the guard", n)
		}
	})
}

// TestDeliverGuardDNSRebinding: the name resolves to a public address when
// it is checked at create time, and to 127.0.0.1 when the worker connects.
func TestDeliverGuardDNSRebinding(t *testing.T) {
	t.Parallel()
	s, port := sinkPort(t)
	dns := fakedns.New(map[string][][]string{
		"rebind.example.test": {{"93.184.216.34"}, {"127.0.0.1"}},
	})
	res := dns.Resolver()

	// Create time: the scheduler's guard passes the name (it is neither a
	// literal address nor an internal name), and a lookup now says public.
	ev := deliveryEvent("http://rebind.example.test:" + port + "/hook")
	if err := (&AddressGuard{}).CheckURL(ev.URL); err != nil {
		t.Fatalf("create-time validate = %v, want the name accepted", err)
	}
	addrs, err := res.LookupNetIP(context.Background(), "ip4", "rebind.example.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("93.184.216.34") {
		t.Fatalf("first lookup = %v, %v; want the public address", addrs, err)
	}

	// Delivery: the name now resolves to loopback, and the guard refuses
	// the address actually dialled.
	r := New(Config{Guard: &AddressGuard{}, Resolver: res}).Deliver(context.Background(), ev, 5*time.Second)
	wantBlocked(t, r, "127.0.0.1")
	if n := len(s.requests()); n != 0 {
		t.Fatalf("the rebinding target got %d requests", n)
	}
	if n := dns.Lookups("rebind.example.test"); n < 2 {
		t.Fatalf("the name was looked up %d times; the deliverer did not use the test resolver", n)
	}

	// The same name with 127.0.0.0/8 allowed reaches the sink: the
	// deliverer really dials what the resolver answers.
	allow := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	r = New(Config{Guard: allow, Resolver: res}).Deliver(context.Background(), ev, 5*time.Second)
	if r.Err != nil || r.StatusCode != 200 || len(s.requests()) != 1 {
		t.Fatalf("Deliver with 127.0.0.0/8 allowed = %+v, %d requests", r, len(s.requests()))
	}
}

// TestDeliverGuardMixedAnswers: a name with a blocked and an allowed
// address connects to the allowed one only. Both are loopback, with a sink
// listening on each (same port), and only 127.0.0.1/32 allowed.
func TestDeliverGuardMixedAnswers(t *testing.T) {
	t.Parallel()
	allowed, port := sinkPort(t)
	ln, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2:%s: %v", port, err)
	}
	var blockedHits atomic.Int32
	blocked := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		blockedHits.Add(1)
	})}}
	blocked.Start()
	t.Cleanup(blocked.Close)

	for _, order := range [][]string{{"127.0.0.2", "127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}} {
		dns := fakedns.New(map[string][][]string{"mixed.example.test": {order}})
		g := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		r := guardedDeliverer(g, dns).Deliver(context.Background(), deliveryEvent("http://mixed.example.test:"+port+"/"), 5*time.Second)
		if r.Err != nil || r.StatusCode != 200 {
			t.Fatalf("answers %v: Deliver = %+v, want the allowed address reached", order, r)
		}
	}
	if n := blockedHits.Load(); n != 0 {
		t.Fatalf("the blocked address got %d requests", n)
	}
	if n := len(allowed.requests()); n != 2 {
		t.Fatalf("the allowed address got %d requests, want 2", n)
	}
}

func TestDeliverAllowList(t *testing.T) {
	t.Parallel()
	s, port := sinkPort(t)
	dns := fakedns.New(nil)
	allow, err := ParseAllowList("10.1.0.0/16, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := guardedDeliverer(&AddressGuard{Allow: allow}, dns)
	if r := d.Deliver(context.Background(), deliveryEvent("http://127.0.0.1:"+port+"/"), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("allowed 127.0.0.1: %+v", r)
	}
	// [::ffff:127.0.0.1] is the same address: allowed too.
	if r := d.Deliver(context.Background(), deliveryEvent("http://[::ffff:127.0.0.1]:"+port+"/"), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("allowed ::ffff:127.0.0.1: %+v", r)
	}
	// Other loopback addresses and other private ranges stay blocked.
	wantBlocked(t, d.Deliver(context.Background(), deliveryEvent("http://127.0.0.2:"+port+"/"), 5*time.Second), "127.0.0.2")
	wantBlocked(t, d.Deliver(context.Background(), deliveryEvent("http://10.2.0.1:"+port+"/"), 5*time.Second), "10.2.0.1")
	wantBlocked(t, d.Deliver(context.Background(), deliveryEvent("http://169.254.169.254/"), 5*time.Second), "169.254.169.254")
	if n := len(s.requests()); n != 2 {
		t.Fatalf("sink got %d requests, want the 2 allowed ones", n)
	}
}
