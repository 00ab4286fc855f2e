package redistest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a redis-server for fault tests: it
// forwards every connection as it is until told to break one at a reply
// (DropReply), the way a Redis shutdown or a network failure right after a
// command ran looks to a client: the command took effect, its reply never
// arrived, the connection is gone.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	drop  *dropRule
}

type dropRule struct {
	match   []byte
	dropped chan struct{}
}

// StartProxy starts a proxy to target (host:port) on a free loopback port.
// It stops when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port, for clients to dial instead of the server.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns a redis:// URL of the proxy for database 0.
func (p *Proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// DropReply arms the proxy once: the next chunk the server sends to a client
// that contains match (any chunk, when match is empty) is not forwarded,
// and that client's connection is closed instead. The returned channel is
// closed when that happened. Replies are matched per read from the server
// (up to 64 KiB), so match should be short and sit in one reply.
func (p *Proxy) DropReply(match []byte) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &dropRule{match: match, dropped: make(chan struct{})}
	p.drop = r
	return r.dropped
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false // closed
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	defer p.untrack(client, server)
	go func() {
		_, _ = io.Copy(server, client)
		p.untrack(client, server)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.shouldDrop(buf[:n]) {
				return // the deferred untrack closes both sides
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // the server or the proxy closed the connection
		}
	}
}

func (p *Proxy) shouldDrop(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.drop
	if r == nil || !bytes.Contains(chunk, r.match) {
		return false
	}
	p.drop = nil
	close(r.dropped)
	return true
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}
