// Package fakedns is a DNS server for tests: it answers from a table over
// in-memory connections, so SSRF and DNS-rebinding tests never ask a real resolver.
package fakedns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers A and AAAA queries from a table, over in-memory
// connections (net.Pipe, DNS-over-TCP framing): no packet leaves the process
// and no real resolver is asked. Each name maps to a sequence of answers:
// the n-th lookup of a name gets the n-th entry (the last one repeats), so
// a test can make a name resolve to a public address first and to a blocked
// one later, as a DNS rebinding attacker would. Unknown names are NXDOMAIN.
type Server struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups map[string]int // by name and query type
}

// New returns a Server with name → answers, each answer a list of
// addresses ("93.184.216.34", "::1").
func New(table map[string][][]string) *Server {
	f := &Server{answers: map[string][][]netip.Addr{}, lookups: map[string]int{}}
	for name, seq := range table {
		for _, answer := range seq {
			var addrs []netip.Addr
			for _, a := range answer {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
			f.answers[strings.ToLower(name)] = append(f.answers[strings.ToLower(name)], addrs)
		}
	}
	return f
}

// Resolver returns a pure-Go resolver that asks only f. (Names in
// /etc/hosts, such as localhost, are still answered from there first.)
func (f *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go f.serve(server)
		return client, nil
	}}
}

// Lookups returns how many A and AAAA queries name got.
func (f *Server) Lookups(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = strings.ToLower(name)
	return f.lookups[name+"/A"] + f.lookups[name+"/AAAA"]
}

func (f *Server) serve(conn net.Conn) {
	defer conn.Close()
	for {
		var size [2]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		resp, err := f.answer(msg)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := conn.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func (f *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	var addrs []netip.Addr
	f.mu.Lock()
	seq, known := f.answers[name]
	if known && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA) {
		key := name + "/A"
		if q.Type == dnsmessage.TypeAAAA {
			key = name + "/AAAA"
		}
		n := f.lookups[key]
		f.lookups[key] = n + 1
		addrs = seq[min(n, len(seq)-1)]
	}
	f.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
