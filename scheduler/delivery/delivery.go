package delivery

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/internal/version"
	"github.com/cassata/cassata/scheduler"
)

// Delivery defaults.
const (
	// DefaultMaxResponseBytes bounds how much of a response is read.
	DefaultMaxResponseBytes = 64 << 10
	// ResponseSnippetBytes is how much of a response the history keeps.
	ResponseSnippetBytes = 1024
)

// Config configures a Deliverer.
type Config struct {
	// Transport sends the requests. Defaults to keep-alive connections, up
	// to MaxIdleConnsPerHost idle ones per destination: plain http over
	// HTTP/1.1 written and read on the delivering goroutine (h1.go), https
	// through a net/http Transport (HTTP/2 when offered). A custom
	// Transport sends every request.
	Transport http.RoundTripper
	// MaxIdleConnsPerHost bounds reused connections per destination. Defaults to 256
	// (DefaultMaxIdleConnsPerHost).
	MaxIdleConnsPerHost int
	// MaxResponseBytes bounds how much of a response is read. Defaults to 64 KiB.
	MaxResponseBytes int64
	// Guard, when set, refuses connections to blocked addresses (SSRF guard).
	// It is installed in the default transport; a custom Transport must
	// install it itself (NewDeliverer refuses a Transport together with a Guard).
	Guard *AddressGuard
	// Resolver looks up destination names for the default transport.
	// Defaults to net.DefaultResolver. Tests set one that answers from a
	// fake DNS server, to play DNS rebinding against the guard.
	Resolver *net.Resolver
	// Signer, when set, adds the Standard Webhooks headers of applications
	// with a signing secret (signing.go). Nil: deliveries are not signed.
	Signer *Signer
	// UserAgent is every request's User-Agent. Defaults to
	// version.Get().UserAgent(), "cassata/<version>" (API.md §3).
	UserAgent string
}

// maxResponseHeaderBytes bounds a destination's response headers: the
// history keeps none of them, and a hostile destination could send megabytes.
const maxResponseHeaderBytes = 64 << 10

// Deliverer sends events' HTTP requests.
type Deliverer struct {
	client *http.Client
	// h1 sends plain-http deliveries when the default transport is in use
	// (h1.go); client sends the rest. Nil with a custom Transport.
	h1      *h1Client
	maxRead int64
	agent   string
	signer  *Signer
	guard   *AddressGuard
}

// DefaultMaxIdleConnsPerHost is Config.MaxIdleConnsPerHost's default.
const DefaultMaxIdleConnsPerHost = 256

// WithDefaults returns the config with zero fields set to their defaults
// (the default Transport is built by New).
func (c Config) WithDefaults() Config {
	c.MaxIdleConnsPerHost = defaults.Positive(c.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	c.MaxResponseBytes = defaults.Positive(c.MaxResponseBytes, DefaultMaxResponseBytes)
	if c.UserAgent == "" {
		c.UserAgent = version.Get().UserAgent()
	}
	return c
}

// Validate reports an invalid config, after WithDefaults.
func (c Config) Validate() error {
	if c.Transport != nil && c.Guard != nil {
		return errors.New("delivery: Guard only works with the default Transport (it is installed in its dialer); leave Transport nil")
	}
	return nil
}

// New returns a Deliverer. Redirects are never followed: a 3xx is the
// destination's answer, and following it could lead anywhere. It panics on
// a config Validate refuses: that is a programming error, not input.
func New(cfg Config) *Deliverer {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	var h1 *h1Client
	if cfg.Transport == nil {
		dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: cfg.Resolver}
		if cfg.Guard != nil {
			// Control sees every address actually connected to, after
			// resolution: plain, TLS and HTTP/2 connections all dial here.
			dialer.Control = cfg.Guard.Control
		}
		// Many deliveries go to few destinations: connections are kept
		// alive (DisableKeepAlives false) and up to MaxIdleConnsPerHost of
		// them per destination, which should be at least the worker's
		// concurrency (CASSATA_WORKER_CONCURRENCY, 100 by default) or
		// deliveries open new connections while others close.
		cfg.Transport = &http.Transport{
			// No proxy (HTTP_PROXY is ignored): through one, the guard would
			// check the proxy's address instead of the destination's.
			Proxy:       nil,
			DialContext: dialer.DialContext,
			// It only concerns https: with a custom DialContext, HTTP/2 is
			// off unless forced. Plain http is always HTTP/1.1.
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           4 * cfg.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:        idleConnTimeout,
			TLSHandshakeTimeout:    10 * time.Second,
			ExpectContinueTimeout:  time.Second,
			ResponseHeaderTimeout:  0, // the per-event timeout bounds the whole attempt
			MaxResponseHeaderBytes: maxResponseHeaderBytes,
			// Compression stays on (DisableCompression false): the
			// transport asks for gzip, and readResponse bounds what it
			// inflates. A request's headers and a body of up to ~15 KiB
			// leave in one write; answers are read 4 KiB at a time, most
			// fit.
			WriteBufferSize: h1WriteBufferSize,
			ReadBufferSize:  h1ReadBufferSize,
		}
		// Plain http goes through h1, on the same dialer (and guard) and
		// with the same bounds; https stays with the Transport (HTTP/2).
		h1 = newH1Client(dialer, cfg.MaxIdleConnsPerHost)
	}
	return &Deliverer{
		client: &http.Client{
			Transport:     cfg.Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		h1:      h1,
		maxRead: cfg.MaxResponseBytes,
		agent:   cfg.UserAgent,
		signer:  cfg.Signer,
		guard:   cfg.Guard,
	}
}

// Result is what one attempt produced.
type Result struct {
	StatusCode int
	// Err describes a failure to get a response (or to build the request).
	Err        error
	Duration   time.Duration
	RetryAfter time.Duration
	Response   string
	// Unbuildable marks a request that could not be built: never retried.
	Unbuildable bool
	// Unsent marks a request that was never sent because the send check
	// (WithSendCheck) refused it: no attempt was made.
	Unsent bool
	// NoRetry marks an answer with Cassata-Retry: false (API.md §9): the
	// destination asks for no further attempt, whatever its status code.
	NoRetry bool

	// What Secrets lists the request's secrets from, when it is asked: only
	// a failure log does, so a delivery does not list them (nor copy its
	// body into a string) every time. sent is nil when the request was not
	// built.
	evHeaders map[string]string
	evBody    []byte
	evURL     string
	sent      http.Header
}

// HeaderRetry is the response header with which a destination refuses
// further attempts: Cassata-Retry: false (API.md §9).
const HeaderRetry = "Cassata-Retry"

// NoRetryReason is the attempt's error when a destination answered other
// than 2xx with Cassata-Retry: false.
const NoRetryReason = "destination answered Cassata-Retry: false: not retried"

// noRetry reports whether a response's headers ask for no further attempt:
// a Cassata-Retry value of false, in any case.
func noRetry(h http.Header) bool {
	for _, v := range h.Values(HeaderRetry) {
		if strings.EqualFold(strings.TrimSpace(v), "false") {
			return true
		}
	}
	return false
}

// Secrets returns the values the attempt's request carried that are
// secret or private to the application, for a log to redact wherever they
// show up (an error, a response that echoes the request): the values of the
// event's headers, its body, the Standard Webhooks signature, and the
// credentials of the URL's userinfo with the Authorization header the
// client derives from them. Values shorter than MinSecretBytes are left
// out: they cannot be told apart from ordinary text. They are listed from
// the event Deliver was given, so its headers and body must not change in
// between.
func (r Result) Secrets() []string {
	return requestSecrets(r.evHeaders, r.evBody, r.evURL, r.sent)
}

// MinSecretBytes is the shortest value Secrets reports.
const MinSecretBytes = 4

// requestSecrets lists the secrets of the request for an event's headers,
// body and URL, sent with headers h (nil when it was not built): see
// Result.Secrets.
func requestSecrets(headers map[string]string, body []byte, rawURL string, h http.Header) []string {
	var out []string
	add := func(v string) {
		v = strings.TrimSpace(v)
		if len(v) >= MinSecretBytes && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	addAuth := func(v string) {
		add(v)
		// An echo may show the credentials without their scheme.
		if _, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
			add(cred)
		}
	}
	for name, v := range headers {
		if c := http.CanonicalHeaderKey(name); c == "Authorization" || c == "Proxy-Authorization" {
			addAuth(v)
		} else {
			add(v)
		}
	}
	add(string(body))
	for _, sig := range strings.Fields(h.Get(HeaderWebhookSignature)) {
		add(sig)
		_, b64, _ := strings.Cut(sig, ",")
		add(b64)
	}
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		// The client sends them as Basic credentials unless the event set
		// its own Authorization.
		user := u.User.Username()
		pass, hasPassword := u.User.Password()
		if hasPassword {
			add(pass)
		} else {
			add(user) // a token often stands there
		}
		addAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	return out
}

// sendCheckKey is the context key of a send check (WithSendCheck).
type sendCheckKey struct{}

// WithSendCheck returns a context under which Deliver calls check right
// before it sends the request, after everything that may take time
// (building it, reading signing secrets): an error stops the send, and the
// Result carries it with Unsent set. The worker checks its lease this way.
func WithSendCheck(ctx context.Context, check func() error) context.Context {
	return context.WithValue(ctx, sendCheckKey{}, check)
}

// Deliver sends ev's request once, bounded by timeout.
func (d *Deliverer) Deliver(ctx context.Context, ev *scheduler.Event, timeout time.Duration) Result {
	var sent http.Header
	r := d.send(ctx, ev, timeout, &sent)
	r.evHeaders, r.evBody, r.evURL, r.sent = ev.Headers, ev.Body, ev.URL, sent
	if errors.Is(r.Err, ErrBlockedAddress) {
		d.guard.refused(StageDelivery)
	}
	return r
}

// send is Deliver; it sets *sent to the request's headers once built.
func (d *Deliverer) send(ctx context.Context, ev *scheduler.Event, timeout time.Duration, sent *http.Header) Result {
	// The timeout bounds signing (when it must read secrets) and the send:
	// a deadline, not a derived context, so that a delivery costs no timer
	// and no registration with ctx unless something needs them.
	deadline := time.Now().Add(timeout)
	var body io.Reader
	if len(ev.Body) > 0 {
		body = bytes.NewReader(ev.Body)
	}
	req, err := http.NewRequestWithContext(ctx, ev.Method, ev.URL, body)
	if err != nil {
		return Result{Err: fmt.Errorf("build request: %w", err), Unbuildable: true}
	}
	if d.guard != nil {
		// Hosts such as 2130706433 or 0177.0.0.1 mean 127.0.0.1 to glibc and
		// nothing to Go's resolver; create time refuses them, and an event
		// stored before that is failed here rather than retried. Everything
		// else is checked on the dialled address.
		if _, err := scheduler.DestinationHost(req.URL); err != nil {
			return Result{Err: fmt.Errorf("%w: %s", ErrBlockedAddress, validationMessage(err)), Unbuildable: true}
		}
	}
	// Room for the event's headers, Content-Type, User-Agent, the three
	// Cassata-* and the three webhook-* headers. The map is the request's
	// own: one sized for more than 8 entries costs more than its growth.
	hb := headerBuilder{h: req.Header, vals: make([]string, 0, len(ev.Headers)+8)}
	*sent = hb.h
	for name, value := range ev.Headers {
		canon := http.CanonicalHeaderKey(name)
		if scheduler.IsHopByHop(canon) {
			continue
		}
		hb.set(canon, value)
	}
	if len(ev.Body) > 0 && hb.h.Get("Content-Type") == "" {
		hb.set("Content-Type", "application/json")
	}
	hb.set("User-Agent", d.agent)
	hb.set("Cassata-Application-Id", ev.App)
	hb.set("Cassata-Event-Id", ev.ID)
	hb.set("Cassata-Attempt", strconv.Itoa(ev.Attempts))
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The worker's attempt span (tracing on): the destination may join
		// the trace. It replaces a traceparent the event's headers carry.
		req.Header.Del("Tracestate")
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	if d.signer != nil {
		if err := d.signer.sign(ctx, deadline, &hb, ev, ev.Body); err != nil {
			// Never send unsigned what should be signed: retry later.
			return Result{Err: fmt.Errorf("read signing secret: %w", err)}
		}
	}

	if check, _ := ctx.Value(sendCheckKey{}).(func() error); check != nil {
		if err := check(); err != nil {
			return Result{Err: err, Unsent: true}
		}
	}
	if addr, ok := d.h1Addr(req); ok {
		// What http.Client and Transport add on the way: the URL's
		// credentials as Basic authorization, and a request for gzip.
		if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
			pass, _ := u.Password()
			hb.set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
		}
		gunzip := req.Method != http.MethodHead && req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == ""
		start := time.Now()
		a, err := d.h1.do(ctx, req, ev.Body, addr, deadline, gunzip, d.readBody)
		if err != nil {
			return d.failed(ctx, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.Redacted(), Err: err}, timeout, deadline, start)
		}
		return d.answered(a.resp, a.response, start)
	}

	tctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	resp, err := d.client.Do(req.WithContext(tctx))
	if err != nil {
		return d.failed(ctx, err, timeout, deadline, start)
	}
	response := d.readResponse(resp.Body)
	_ = resp.Body.Close()
	return d.answered(resp, response, start)
}

// h1Addr reports whether req goes through d.h1, and to which host:port:
// plain http on the default transport, unless the Transport would treat it
// specially (an Expect header, a host it rewrites, invalid headers it
// refuses with its own error).
func (d *Deliverer) h1Addr(req *http.Request) (string, bool) {
	u := req.URL
	if d.h1 == nil || u.Scheme != "http" || u.Host == "" || strings.Contains(u.Host, "%") {
		return "", false
	}
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= utf8.RuneSelf {
			return "", false // IDNA
		}
	}
	for k, vs := range req.Header {
		if k == "Expect" || !httpguts.ValidHeaderFieldName(k) {
			return "", false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "", false
			}
		}
	}
	if u.Port() != "" {
		return u.Host, true
	}
	return net.JoinHostPort(u.Hostname(), "80"), true
}

// urlErrorOp is the Op of http.Client's errors: "Post" for POST.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	if lower := strings.ToLower(method); lower != method {
		return method[:1] + lower[1:]
	}
	return method
}

// failed is the Result of a request that got no answer.
func (d *Deliverer) failed(ctx context.Context, err error, timeout time.Duration, deadline, start time.Time) Result {
	r := Result{Err: describe(ctx, err, timeout, deadline), Duration: time.Since(start)}
	// A blocked destination will stay blocked: fail at once.
	r.Unbuildable = errors.Is(err, ErrBlockedAddress)
	return r
}

// answered is the Result of an answer, whose body read kept response.
func (d *Deliverer) answered(resp *http.Response, response string, start time.Time) Result {
	r := Result{StatusCode: resp.StatusCode, Duration: time.Since(start), Response: response,
		NoRetry: noRetry(resp.Header)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

// drainBytes is how much of a response beyond maxRead is read (and
// discarded) so that its connection can be reused; a longer answer costs
// its connection instead.
const drainBytes = 4096

// readBufPool holds the buffers responses are read into: every delivery
// reads its answer, keeps at most ResponseSnippetBytes of it and discards
// the rest, so one buffer per in-flight delivery serves them all.
var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, 8<<10)
	return &b
}}

// readResponse reads at most maxRead bytes of body plus drainBytes to let
// the connection be reused, and returns the snippet the history keeps: the
// first ResponseSnippetBytes (no more than maxRead), cut to valid UTF-8.
// The transport asks for gzip and decompresses transparently (unless the
// event sets its own Accept-Encoding), so body yields decompressed bytes:
// the limit bounds what a gzip bomb can make us inflate. A read error ends
// the snippet where it happened, as a cut-off answer is still worth
// recording.
func (d *Deliverer) readResponse(body io.Reader) string {
	s, _ := d.readBody(body)
	return s
}

// readBody is readResponse; it also reports whether body was read to its
// end (io.EOF), so that its connection can carry another request.
func (d *Deliverer) readBody(body io.Reader) (string, bool) {
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	buf := *bp
	keep := int(min(d.maxRead, ResponseSnippetBytes))
	// buf[:kept] is the snippet so far; reads land right after it, and once
	// it is complete everything read beyond it is overwritten by the next
	// read.
	kept := 0
	eof := false
	for left := d.maxRead + drainBytes; left > 0; {
		dst := buf[kept:]
		if int64(len(dst)) > left {
			dst = dst[:left]
		}
		n, err := body.Read(dst)
		left -= int64(n)
		kept = min(kept+n, keep)
		if err != nil {
			eof = err == io.EOF
			break
		}
	}
	return trimSnippet(buf[:kept]), eof
}

// describe is the error of a request that got no answer: a timeout when
// the deadline (or ctx's own) passed, an abandon when ctx was cancelled,
// else what went wrong, without http.Client's wrapping.
func describe(ctx context.Context, err error, timeout time.Duration, deadline time.Time) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (ctx.Err() == nil && !time.Now().Before(deadline)) {
		return fmt.Errorf("timeout after %s", timeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("abandoned: %w", context.Cause(ctx))
	}
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func trimSnippet(b []byte) string {
	if len(b) > ResponseSnippetBytes {
		b = b[:ResponseSnippetBytes]
	}
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return strings.ToValidUTF8(string(b), "")
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n <= 0 && err == nil {
			return 0
		}
		if err != nil && n > 0 { // too large to parse: as large as allowed
			n = int64(scheduler.MaxBackoffLimit / time.Second)
		}
		if n > int64(scheduler.MaxBackoffLimit/time.Second) {
			n = int64(scheduler.MaxBackoffLimit / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Classify maps an attempt's result to the event's next status, ignoring
// attempts left: COMPLETED (2xx), FAILED (3xx, 4xx but 408 and 429, an
// answer other than 2xx with Cassata-Retry: false, or an unbuildable
// request), or PENDING for a retryable outcome (connection error, timeout,
// 408, 429, 5xx). See API.md §2 and §9.
func Classify(r Result) scheduler.Status {
	switch {
	case r.Unbuildable:
		return scheduler.StatusFailed
	case r.Err != nil:
		return scheduler.StatusPending
	case r.StatusCode >= 200 && r.StatusCode < 300:
		return scheduler.StatusCompleted
	case r.NoRetry:
		return scheduler.StatusFailed
	case r.StatusCode == http.StatusRequestTimeout, r.StatusCode == http.StatusTooManyRequests, r.StatusCode >= 500:
		return scheduler.StatusPending
	default:
		return scheduler.StatusFailed
	}
}
