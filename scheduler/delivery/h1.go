package delivery

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h1Client sends plain-http deliveries over HTTP/1.1 on the calling
// goroutine: it writes the request and reads the answer itself, where
// net/http's Transport hands each request to a connection's writeLoop and
// readLoop goroutines and back. Those hand-offs (and http.Client's
// redirect bookkeeping, which a deliverer that never follows redirects does
// not need) were a third of a worker's CPU per delivery.
//
// The wire format is net/http's: requests are written byte for byte as the
// Transport wrote them (writeRequest, h1write.go, tested against it) and
// answers parsed by http.ReadResponse, the Transport's own parser, so a
// destination sees what it saw before. What the Transport did around them
// is kept too:
//
//   - connections are dialled by the deliverer's net.Dialer (so the SSRF
//     guard's Control sees every address), kept alive and reused, at most
//     maxIdle per destination and maxIdleAll in all, closed after
//     idleTimeout unused;
//   - a pooled connection is checked before reuse: a destination that
//     closed it while idle is noticed (the Transport's readLoop noticed it
//     at once), and a request that failed on a reused connection before a
//     byte of it left, or replayable (GET, HEAD, OPTIONS, TRACE or an
//     Idempotency-Key header) before a byte of answer came, is sent again
//     once on a new connection, as the Transport does;
//   - Accept-Encoding: gzip is asked for and the answer inflated
//     transparently, unless the event asks for an encoding or a Range
//     itself or the method is HEAD (the caller decides, as the Transport);
//   - an answer that arrives before the body was all written (a 413, then
//     a hang-up) is the outcome, not the failed write;
//   - response headers are bounded by maxResponseHeaderBytes; 1xx answers
//     are skipped (at most max1xx of them);
//   - the event's timeout is a deadline on the connection, not a derived
//     context (no timer and no registration with the parent context per
//     delivery); cancelling ctx (shutdown, a lost lease) sets the deadline
//     in the past, which ends a blocked dial, read or write at once.
//
// What differs: a request is written before its answer is read, so a
// destination that answers early without reading the body or closing
// leaves the write blocked until the deadline (the Transport read while
// it wrote); a full pool closes the returning connection instead of the
// least recently used one; error texts name what failed in our words.
//
// https destinations, requests with an Expect header and hosts the
// Transport would rewrite (IDNA, IPv6 zones) go through net/http as
// before: HTTP/2, the TLS setup and 100-continue stay its business.
type h1Client struct {
	dialer      *net.Dialer
	maxIdle     int
	maxIdleAll  int
	idleTimeout time.Duration

	mu       sync.Mutex
	idle     map[string][]*h1Conn // by host:port, most recently used last
	nIdle    int
	sweeping bool // a sweep is scheduled
}

// h1Buffer sizes: a request's headers and a body of up to ~15 KiB leave in
// one write; answers are read 4 KiB at a time, most fit.
const (
	h1WriteBufferSize = 16 << 10
	h1ReadBufferSize  = 4 << 10
	// max1xx bounds the informational answers skipped before the final one
	// (the Transport's own bound).
	max1xx = 5
	// idleConnTimeout closes connections left unused this long.
	idleConnTimeout = 90 * time.Second
)

// aLongTimeAgo is a deadline in the past: it fails blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

func newH1Client(dialer *net.Dialer, maxIdlePerHost int) *h1Client {
	return &h1Client{dialer: dialer, maxIdle: maxIdlePerHost, maxIdleAll: 4 * maxIdlePerHost,
		idleTimeout: idleConnTimeout, idle: map[string][]*h1Conn{}}
}

// h1Conn is one connection to a destination with its buffers. It is the
// reader and writer under them, counting what went through for the retry
// rules and bounding response headers.
type h1Conn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// headerLimit is how many more bytes may be read from conn while
	// response headers are read; negative: no limit (the body's own limits
	// apply).
	headerLimit int64
	written     int64 // bytes of the current request written
	read        int64 // bytes of the current answer read
	reused      bool
	idleSince   time.Time

	// The liveness probe, allocated once per connection: probe reads the
	// socket without blocking and leaves its verdict in probeAlive.
	raw        syscall.RawConn
	probe      func(fd uintptr) bool
	probeAlive bool
}

var errResponseHeadersTooLarge = fmt.Errorf("server response headers exceeded %d bytes; aborted", maxResponseHeaderBytes)

func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.headerLimit == 0 {
		return 0, errResponseHeadersTooLarge
	}
	if pc.headerLimit > 0 && int64(len(p)) > pc.headerLimit {
		p = p[:pc.headerLimit]
	}
	n, err := pc.conn.Read(p)
	if pc.headerLimit > 0 {
		pc.headerLimit -= int64(n)
	}
	pc.read += int64(n)
	return n, err
}

func (pc *h1Conn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// alive reports whether an idle connection can carry a request: the
// destination has neither closed it nor sent anything unasked (which would
// be read as the next request's answer). It costs one non-blocking read.
func (pc *h1Conn) alive() bool {
	if pc.raw == nil {
		return true
	}
	pc.probeAlive = false
	if err := pc.raw.Read(pc.probe); err != nil {
		return false
	}
	return pc.probeAlive
}

func newH1Conn(conn net.Conn) *h1Conn {
	pc := &h1Conn{conn: conn, headerLimit: -1}
	pc.br = bufio.NewReaderSize(pc, h1ReadBufferSize)
	pc.bw = bufio.NewWriterSize(pc, h1WriteBufferSize)
	pc.raw, pc.probe = livenessProbe(conn, &pc.probeAlive)
	return pc
}

// roundTrip writes req with body (asking for gzip when askGzip) and reads
// the head of its answer.
func (pc *h1Conn) roundTrip(req *http.Request, body []byte, askGzip bool) (*http.Response, error) {
	pc.written, pc.read = 0, 0
	if err := writeRequest(pc.bw, req, body, askGzip); err != nil {
		if pc.written > 0 {
			// A destination may answer before reading the whole body (a
			// 413) and hang up: its answer, if it came, is the outcome,
			// as with the Transport, which reads while it writes.
			if resp, rerr := pc.readResponse(req); rerr == nil {
				resp.Close = true
				return resp, nil
			}
		}
		return nil, &h1WriteError{err: err}
	}
	return pc.readResponse(req)
}

// readResponse reads the head of req's answer, skipping 1xx answers.
func (pc *h1Conn) readResponse(req *http.Request) (*http.Response, error) {
	for n1xx := 0; ; n1xx++ {
		pc.headerLimit = maxResponseHeaderBytes
		resp, err := http.ReadResponse(pc.br, req)
		pc.headerLimit = -1
		if err != nil {
			if pc.read == 0 && errors.Is(err, io.ErrUnexpectedEOF) {
				err = errClosedWithoutAnswer
			}
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n1xx >= max1xx {
			return nil, errors.New("too many 1xx informational responses")
		}
	}
}

var errClosedWithoutAnswer = fmt.Errorf("destination closed the connection without answering: %w", io.EOF)

// h1WriteError is a failure to send a request.
type h1WriteError struct{ err error }

func (e *h1WriteError) Error() string { return "write request: " + e.err.Error() }
func (e *h1WriteError) Unwrap() error { return e.err }

// get returns a live idle connection to addr or dials one.
func (c *h1Client) get(ctx context.Context, addr string, deadline time.Time) (*h1Conn, error) {
	// Not once the deadline has passed: every probe would fail on it and
	// close a good connection (the dial below fails as a timeout instead).
	for time.Now().Before(deadline) {
		pc := c.popIdle(addr)
		if pc == nil {
			break
		}
		// The deadline first: the probe fails on a past one, such as the
		// previous request's.
		_ = pc.conn.SetDeadline(deadline)
		if time.Since(pc.idleSince) < c.idleTimeout && pc.alive() {
			pc.reused = true
			return pc, nil
		}
		_ = pc.conn.Close()
	}
	d := *c.dialer
	d.Deadline = deadline
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(deadline)
	return newH1Conn(conn), nil
}

func (c *h1Client) popIdle(addr string) *h1Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	stack := c.idle[addr]
	if len(stack) == 0 {
		return nil
	}
	pc := stack[len(stack)-1]
	stack[len(stack)-1] = nil
	c.idle[addr] = stack[:len(stack)-1]
	c.nIdle--
	return pc
}

// put keeps pc for reuse, or closes it when the pool is full.
func (c *h1Client) put(addr string, pc *h1Conn) {
	pc.idleSince = time.Now()
	c.mu.Lock()
	stack := c.idle[addr]
	if len(stack) >= c.maxIdle || c.nIdle >= c.maxIdleAll {
		c.mu.Unlock()
		_ = pc.conn.Close()
		return
	}
	c.idle[addr] = append(stack, pc)
	c.nIdle++
	if !c.sweeping {
		c.sweeping = true
		time.AfterFunc(c.idleTimeout, c.sweep)
	}
	c.mu.Unlock()
}

// sweep closes the connections idle for idleTimeout and forgets
// destinations without idle connections; it runs again while some remain.
func (c *h1Client) sweep() {
	now := time.Now()
	var expired []*h1Conn
	c.mu.Lock()
	oldest := now
	for addr, stack := range c.idle {
		n := 0 // the oldest are first
		for n < len(stack) && now.Sub(stack[n].idleSince) >= c.idleTimeout {
			n++
		}
		expired = append(expired, stack[:n]...)
		rest := append(stack[:0], stack[n:]...)
		clear(stack[len(rest):])
		c.nIdle -= n
		if len(rest) == 0 {
			delete(c.idle, addr)
			continue
		}
		c.idle[addr] = rest
		if rest[0].idleSince.Before(oldest) {
			oldest = rest[0].idleSince
		}
	}
	c.sweeping = c.nIdle > 0
	if c.sweeping {
		time.AfterFunc(c.idleTimeout-now.Sub(oldest)+time.Second, c.sweep)
	}
	c.mu.Unlock()
	for _, pc := range expired {
		_ = pc.conn.Close()
	}
}

// h1Answer is what do read of an answer.
type h1Answer struct {
	resp     *http.Response
	response string // the snippet readResponse kept
}

// do sends req with body (to addr, its host:port) and reads its answer
// with read, within deadline and until ctx is done. gunzip asks for gzip on
// the event's behalf and inflates a gzip answer.
func (c *h1Client) do(ctx context.Context, req *http.Request, body []byte, addr string, deadline time.Time, gunzip bool,
	read func(io.Reader) (string, bool)) (h1Answer, error) {
	var cur atomic.Pointer[h1Conn]
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			if pc := cur.Load(); pc != nil {
				_ = pc.conn.SetDeadline(aLongTimeAgo)
			}
		})
	}
	for try := 0; ; try++ {
		pc, err := c.get(ctx, addr, deadline)
		if err != nil {
			stop()
			return h1Answer{}, err
		}
		cur.Store(pc)
		// A cancel before the Store found no connection to stop.
		if err := ctx.Err(); err != nil {
			stop()
			_ = pc.conn.Close()
			return h1Answer{}, err
		}
		resp, err := pc.roundTrip(req, body, gunzip)
		if err != nil {
			_ = pc.conn.Close()
			if try == 0 && pc.reused && ctx.Err() == nil && time.Now().Before(deadline) && canResend(req, pc, err) {
				continue
			}
			stop()
			return h1Answer{}, err
		}
		rbody := io.Reader(resp.Body)
		var zr *gzip.Reader
		if gunzip && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
			// As the Transport does: the caller sees the inflated answer.
			resp.Header.Del("Content-Encoding")
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
			resp.Uncompressed = true
			zr = &gzip.Reader{}
			rbody = &lazyGzip{zr: zr, src: resp.Body}
		}
		response, eof := read(rbody)
		if eof && zr != nil {
			// The gzip stream ended; the connection is reusable only if
			// the body did too.
			var b [1]byte
			n, err := resp.Body.Read(b[:])
			eof = n == 0 && err == io.EOF
		}
		// A body read to its end leaves the connection ready for the next
		// request; one cut short (too long, too slow) would first have to
		// be read out, so it is closed instead.
		reusable := eof && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && pc.br.Buffered() == 0
		if stop() && reusable {
			_ = resp.Body.Close()
			c.put(addr, pc)
		} else {
			_ = pc.conn.Close()
		}
		return h1Answer{resp: resp, response: response}, nil
	}
}

// lazyGzip inflates src, reading the gzip header on the first Read (where
// its errors surface like any body read error).
type lazyGzip struct {
	zr      *gzip.Reader
	src     io.Reader
	started bool
	err     error
}

func (g *lazyGzip) Read(p []byte) (int, error) {
	if !g.started {
		g.started = true
		g.err = g.zr.Reset(g.src)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.zr.Read(p)
}

// canResend reports whether a request that failed on a reused connection
// may go again on a new one, by the Transport's rules: nothing of it was
// written, or it is replayable and nothing of the answer came (the
// destination had closed the idle connection). Its body is in memory, so
// it can always be written again.
func canResend(req *http.Request, pc *h1Conn, err error) bool {
	var we *h1WriteError
	if errors.As(err, &we) && pc.written == 0 {
		return true
	}
	return pc.read == 0 && replayable(req)
}

// replayable is net/http's Request.isReplayable, without the body check.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}
