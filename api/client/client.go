// Package client is a Go client of Cassata's JSON API v1 (API.md §5, §7–§9):
// events, batches, search, topics (messages and subscriptions), recurring
// schedules, flow control and application pause. It needs nothing but the
// standard library: importing it pulls in none of the server.
//
//	c := client.New("http://localhost:8085", client.WithAPIKey(key))
//	ev, err := c.CreateEvent(ctx, client.CreateEventRequest{
//		URL: "https://example.com/hook", Body: `{"order":42}`, Delay: time.Minute,
//	})
//
// Every method takes a context. Errors the API answers are *Error (decoded
// from {"error":{"code","message","field"}}), so errors.As and the helpers
// IsNotFound, IsConflict, IsDuplicate, ... tell them apart.
//
// # Retries
//
// A call is retried, up to RetryPolicy.MaxAttempts tries in all with capped
// exponential backoff and jitter, when retrying cannot do harm:
//   - any call refused with 429 (the rate limit refuses before doing
//     anything; Retry-After is honoured) or that could not connect at all;
//   - idempotent calls also after any other network error and after a 5xx.
//
// Creates are idempotent in this API: a create of an (app, id) that exists
// with the same content answers 200 with the stored object, one with other
// content 409. So CreateEvent, CreateEvents, Publish, CreateSubscription and
// CreateSchedule fill in a fresh id when the request has none, and a retry
// of a create whose answer was lost finds the first one (200, Replayed set)
// instead of making a second. Reads, PUTs and pause/resume are idempotent
// too. Cancels, deletes, retries of events and schedule triggers are not
// retried after a failure that may have reached the server: a repeat would
// answer 404/409 or act twice.
package client

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the User-Agent of requests unless WithUserAgent says otherwise.
const DefaultUserAgent = "cassata-go-client"

// Client calls one Cassata server (or a load balancer in front of several).
// It is safe for concurrent use.
type Client struct {
	base  string
	hc    *http.Client
	token string
	ua    string
	retry RetryPolicy
	// sleep waits d or until ctx ends (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with an application's API key
// (Authorization: Bearer <key>, API.md §5).
func WithAPIKey(key string) Option { return func(c *Client) { c.token = key } }

// WithBearerToken authenticates with any bearer token: the admin token
// (CASSATA_ADMIN_TOKEN), which acts on every application, or an
// application's JWT.
func WithBearerToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sends the requests with hc instead of a client of its own
// (e.g. for a proxy, TLS settings or instrumentation). The client's Timeout,
// if any, bounds each try; contexts bound the whole call.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.ua = ua } }

// WithRetry sets the retry policy; fields left zero take the defaults of
// DefaultRetryPolicy. NoRetry turns retries off.
func WithRetry(p RetryPolicy) Option { return func(c *Client) { c.retry = p.withDefaults() } }

// RetryPolicy says how often and how patiently calls are retried (see the
// package documentation for which calls).
type RetryPolicy struct {
	// MaxAttempts is the number of tries in all, the first included; 1
	// turns retries off.
	MaxAttempts int
	// MinDelay is the wait before the first retry; each further retry
	// waits twice as long, up to MaxDelay. The wait is jittered: a random
	// duration between half of it and all of it.
	MinDelay time.Duration
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After (on 429 or 503) the client
	// waits for; a server asking for more gets its error returned at once.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy is the policy of a Client without WithRetry.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, MinDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second,
	MaxRetryAfter: time.Minute}

// NoRetry tries every call once.
var NoRetry = RetryPolicy{MaxAttempts: 1}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.MinDelay <= 0 {
		p.MinDelay = d.MinDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = max(d.MaxDelay, p.MinDelay)
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	return p
}

// backoff is the jittered wait before retry n (1 for the first retry).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.MinDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// New returns a client of the server at baseURL, e.g. "http://localhost:8085"
// (a path prefix such as "https://host/cassata" is kept).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: http.DefaultClient, ua: DefaultUserAgent,
		retry: DefaultRetryPolicy, sleep: sleepCtx}
	for _, o := range opts {
		o(c)
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// call is one API request.
type call struct {
	method string
	path   string
	query  url.Values
	// body is marshalled as JSON; nil sends no body.
	body any
	// idempotent: repeating the request has the effect of sending it once,
	// so it is retried after failures that may have reached the server.
	idempotent bool
}

// do sends c with retries and decodes a 2xx answer's body into out (when
// not nil). It returns the status of the last answer.
func (c *Client) do(ctx context.Context, cl call, out any) (int, error) {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return 0, fmt.Errorf("cassata client: encode request: %w", err)
		}
	}
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	for attempt := 1; ; attempt++ {
		status, header, body, err := c.send(ctx, cl.method, u, payload)
		if err == nil && status >= 200 && status < 300 {
			if out == nil || len(body) == 0 {
				return status, nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return status, fmt.Errorf("cassata client: decode the answer of %s %s (%d): %w", cl.method, cl.path, status, err)
			}
			return status, nil
		}
		var retryAfter time.Duration
		retryable := false
		if err != nil {
			if ctx.Err() != nil {
				return 0, err
			}
			retryable = cl.idempotent || notSent(err)
		} else {
			retryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
			err = decodeError(status, body, retryAfter)
			retryable = status == http.StatusTooManyRequests ||
				cl.idempotent && status >= 500 && status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported
		}
		if !retryable || attempt >= c.retry.MaxAttempts {
			return status, err
		}
		wait := c.retry.backoff(attempt)
		if retryAfter > 0 {
			if retryAfter > c.retry.MaxRetryAfter {
				return status, err
			}
			wait = retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return status, err // the context would end first: the caller gets the answer, not a timeout
		}
		if c.sleep(ctx, wait) != nil {
			return status, err
		}
	}
}

// send makes one try.
func (c *Client) send(ctx context.Context, method, u string, payload []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("cassata client: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// The answer was cut off: whether the server acted is unknown.
		return 0, nil, nil, fmt.Errorf("cassata client: read the answer of %s %s: %w", method, req.URL.Path, err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// notSent reports whether err happened before the request could reach the
// server (no connection), so that even a non-idempotent call may be retried.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// NewID returns a fresh id for an event, message, subscription or schedule:
// 32 hex digits, time-ordered (UUIDv7 layout), valid for every kind of id
// of the API. The client uses it for creates without an id, so a retried
// create is recognised as a replay.
func NewID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:])
	t := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(t >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// pathOf joins escaped path segments to a route prefix.
func pathOf(prefix string, segments ...string) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	for _, s := range segments {
		sb.WriteByte('/')
		sb.WriteString(url.PathEscape(s))
	}
	return sb.String()
}

// needPath checks the parts of a path a method needs.
func needPath(method string, parts ...string) error {
	for i := 0; i+1 < len(parts); i += 2 {
		if parts[i+1] == "" {
			return fmt.Errorf("cassata client: %s needs %s", method, parts[i])
		}
	}
	return nil
}

// createOrReplay POSTs body to path and decodes the answer into a new T; a
// 200 (an identical create answered with the stored object) says replayed.
// Creates carry a client-made id, so they are retried like idempotent calls.
func createOrReplay[T any](ctx context.Context, c *Client, path string, body any) (_ *T, replayed bool, err error) {
	out := new(T)
	status, err := c.do(ctx, call{method: http.MethodPost, path: path, body: body, idempotent: true}, out)
	if err != nil {
		return nil, false, err
	}
	return out, status == http.StatusOK, nil
}

// replace PUTs body to base/app/id after checking both path parts are set
// (op names the method in the error).
func replace[T any](ctx context.Context, c *Client, op, base, app, id string, body any) (*T, error) {
	if err := needPath(op, "App", app, "ID", id); err != nil {
		return nil, err
	}
	out := new(T)
	if _, err := c.do(ctx, call{method: http.MethodPut, path: pathOf(base, app, id), body: body, idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}
