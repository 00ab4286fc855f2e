package scheduler

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/cassata/cassata/internal/defaults"
)

// Limits bound what a client may schedule.
type Limits struct {
	// MaxBodyBytes is the largest body an event may carry. Defaults to 1 MiB.
	MaxBodyBytes int
	// MaxURLLength bounds the destination URL. Defaults to 8192.
	MaxURLLength int
	// MaxHeaders bounds the number of headers. Defaults to 64.
	MaxHeaders int
	// MaxHeaderBytes bounds the total size of header names and values. Defaults to 16 KiB.
	MaxHeaderBytes int
}

// Default limits.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxURLLength   = 8192
	DefaultMaxHeaders     = 64
	DefaultMaxHeaderBytes = 16 << 10
	// MaxMaxAttempts bounds an event's own max_attempts.
	MaxMaxAttempts = 100
	// MaxTimeout bounds an event's own delivery timeout.
	MaxTimeout = 15 * time.Minute
	// MaxBackoffLimit bounds an event's own backoff bounds.
	MaxBackoffLimit = 24 * time.Hour
)

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	l.MaxBodyBytes = defaults.Positive(l.MaxBodyBytes, DefaultMaxBodyBytes)
	l.MaxURLLength = defaults.Positive(l.MaxURLLength, DefaultMaxURLLength)
	l.MaxHeaders = defaults.Positive(l.MaxHeaders, DefaultMaxHeaders)
	l.MaxHeaderBytes = defaults.Positive(l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	return l
}

// Validate reports the invalid fields of limits, after WithDefaults.
func (l Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxBodyBytes", l.MaxBodyBytes}, {"MaxURLLength", l.MaxURLLength}, {"MaxHeaders", l.MaxHeaders}, {"MaxHeaderBytes", l.MaxHeaderBytes}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("limits: %s must be positive, not %d", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// Methods a client may schedule.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}

// ValidApp reports whether s is a valid application id: [A-Za-z0-9._-]{1,64}.
func ValidApp(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidFlowKey reports whether s is a valid flow key (API.md §9):
// [A-Za-z0-9._:-]{1,128}.
func ValidFlowKey(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid event id: 1–128 bytes of printable
// ASCII without '/', spaces or control characters.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses CR, LF, NUL and other control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Check checks a new event against API.md §2 and the limits, and
// normalises the method to upper case. Errors are *ValidationError.
func (l Limits) Check(ev *Event) error {
	l = l.WithDefaults()
	if !ValidApp(ev.App) {
		return Invalid("app", "application id must match [A-Za-z0-9._-]{1,64}")
	}
	if !ValidID(ev.ID) {
		return Invalid("id", "event id must be 1-128 bytes of printable ASCII without '/', spaces or control characters")
	}
	if ev.URL == "" {
		return Invalid("url", "url is required")
	}
	if err := l.CheckURL("url", ev.URL); err != nil {
		return err
	}
	for _, cb := range []struct{ field, url string }{{"callback_url", ev.CallbackURL}, {"failure_callback_url", ev.FailureCallbackURL}} {
		if cb.url == "" {
			continue
		}
		if err := l.CheckURL(cb.field, cb.url); err != nil {
			return err
		}
	}
	if ev.FlowKey != "" && !ValidFlowKey(ev.FlowKey) {
		return Invalid("flow_key", "flow_key must match [A-Za-z0-9._:-]{1,128}")
	}
	ev.Method = strings.ToUpper(strings.TrimSpace(ev.Method))
	if ev.Method == "" {
		ev.Method = "POST"
	}
	okMethod := false
	for _, m := range Methods {
		okMethod = okMethod || m == ev.Method
	}
	if !okMethod {
		return Invalid("method", "method must be one of %s", strings.Join(Methods, ", "))
	}
	if len(ev.Headers) > l.MaxHeaders {
		return &ValidationError{Field: "headers", Message: "too many headers", TooLarge: true}
	}
	size := 0
	seen := make(map[string]string, len(ev.Headers))
	for name, value := range ev.Headers {
		if !validToken(name) {
			return Invalid("headers", "header name %q is not a valid HTTP token", name)
		}
		if !validHeaderValue(value) {
			return Invalid("headers", "header %s: value must not contain CR, LF or control characters", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if why := refusedHeader(canon); why != "" {
			return Invalid("headers", "header %s may not be set: %s", name, why)
		}
		if other, dup := seen[canon]; dup {
			// Only one of them could be sent, and which one would be chance.
			return Invalid("headers", "headers %s and %s are the same header; give it once", other, name)
		}
		seen[canon] = name
		size += len(name) + len(value)
	}
	if size > l.MaxHeaderBytes {
		return &ValidationError{Field: "headers", Message: "headers are larger than the limit", TooLarge: true}
	}
	if len(ev.Body) > l.MaxBodyBytes {
		return &ValidationError{Field: "body", Message: "body is larger than the limit", TooLarge: true}
	}
	if ev.DueAt.IsZero() {
		return Invalid("due", "a due time is required")
	}
	if ev.MaxAttempts < 0 || ev.MaxAttempts > MaxMaxAttempts {
		return Invalid("max_attempts", "max_attempts must be between 1 and %d", MaxMaxAttempts)
	}
	if ev.Timeout < 0 || ev.Timeout > MaxTimeout || ev.Timeout > 0 && ev.Timeout < time.Millisecond {
		return Invalid("timeout", "timeout must be between 1ms and %s", MaxTimeout)
	}
	if ev.MinBackoff < 0 || ev.MinBackoff > MaxBackoffLimit {
		return Invalid("min_backoff", "min_backoff must be between 0 and %s", MaxBackoffLimit)
	}
	if ev.MaxBackoff < 0 || ev.MaxBackoff > MaxBackoffLimit {
		return Invalid("max_backoff", "max_backoff must be between 0 and %s", MaxBackoffLimit)
	}
	if ev.MinBackoff > 0 && ev.MaxBackoff > 0 && ev.MinBackoff > ev.MaxBackoff {
		return Invalid("min_backoff", "min_backoff must not exceed max_backoff")
	}
	return nil
}

// refusedHeader says why a client may not set a header (by canonical
// name), "" when it may. Framing and hop-by-hop headers belong to the
// connection Cassata opens, not to the event (a client's Host or
// Content-Length could only desynchronise the request); webhook-* are the
// Standard Webhooks signature headers that Cassata itself sets, which a
// client must not be able to forge.
func refusedHeader(canon string) string {
	switch {
	case canon == "Host":
		return "the host comes from the url"
	case canon == "Content-Length":
		return "Cassata frames the body itself"
	case hopByHop[canon] || strings.HasPrefix(canon, "Proxy-"):
		return "it is a hop-by-hop header, which describes one connection"
	case strings.HasPrefix(canon, "Webhook-"):
		return "webhook-* headers carry Cassata's own signature"
	}
	return ""
}

// DestinationHost returns the host a delivery to u will dial, lower-case and
// without a trailing dot, or a *ValidationError for "url" when resolvers
// could disagree on what it means:
//
//   - Non-ASCII names are converted the way net/http converts them (IDNA
//     lookup profile, which also folds full-width characters), so the check
//     sees what will be dialled; a name that cannot be converted is refused.
//   - A host whose last label is a number (decimal digits, or 0x and hex
//     digits) must be a dotted-quad IPv4 address with four decimal parts and
//     no leading zeros. Shorthand and legacy notations such as 2130706433,
//     0x7f000001, 0177.0.0.1 or 127.1 are refused outright: Go's resolver
//     reads them as names, glibc's inet_aton and browsers as addresses
//     (127.0.0.1 for all four), so no check of the text can be sure where
//     they lead. No real domain name ends in a numeric label (RFC 3696 §2).
//
// With the SSRF guard on, the returned host is then checked for blocked
// literal addresses and internal names (AddressGuard.CheckHost).
func DestinationHost(u *url.URL) (string, error) {
	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", Invalid("url", "url host in brackets must be an IPv6 address")
		}
		return strings.ToLower(host), nil
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			ascii, err := idna.Lookup.ToASCII(host)
			if err != nil {
				return "", Invalid("url", "url host is not a valid domain name")
			}
			host = ascii
			break
		}
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	labels := strings.Split(host, ".")
	if numericLabel(labels[len(labels)-1]) {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
			return "", Invalid("url", "url host %q looks like an IPv4 address in a shorthand, hexadecimal or octal notation, "+
				"which resolvers read differently; write the address as four decimal parts such as 192.0.2.10", u.Hostname())
		}
	}
	return host, nil
}

// numericLabel reports whether a host label is a number the way the WHATWG
// URL standard's IPv4 parser sees one: decimal digits, or 0x followed by
// hexadecimal digits (octal has a leading 0 and is all digits anyway).
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	digits := "0123456789"
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, digits = s[2:], "0123456789abcdefABCDEF"
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(digits, s[i]) < 0 {
			return false
		}
	}
	return true
}

// hopByHop lists headers that describe one connection, not the request;
// a client's values for them are never forwarded (API.md §3).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Host": true, "Content-Length": true,
}

// IsHopByHop reports whether the canonical header name describes one
// connection rather than the request, so it is never forwarded.
func IsHopByHop(canon string) bool { return hopByHop[canon] }

// CheckURL checks a URL Cassata will send a request to (an event's url, a
// callback_url, a subscription's rollback_url): absolute http or https,
// within the length limit, without credentials, with a host every resolver
// reads the same way (DestinationHost). Errors name field.
func (l Limits) CheckURL(field, raw string) error {
	l = l.WithDefaults()
	if len(raw) > l.MaxURLLength {
		return &ValidationError{Field: field, Message: field + " is longer than the limit", TooLarge: true}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return Invalid(field, "%s must be an absolute http or https URL", field)
	}
	if u.User != nil {
		return Invalid(field, "%s must not carry credentials; use a header", field)
	}
	if _, err := DestinationHost(u); err != nil {
		return asField(err, field)
	}
	return nil
}

// CheckDestination checks a URL Cassata will send to by CheckURL and, when
// guard is set, the create-time guard. Errors name field.
func (l Limits) CheckDestination(guard URLChecker, field, raw string) error {
	if err := l.CheckURL(field, raw); err != nil || guard == nil {
		return err
	}
	return asField(guard.CheckURL(raw), field)
}

// asField reports a validation error about "url" as one about field.
func asField(err error, field string) error {
	var ve *ValidationError
	if errors.As(err, &ve) && ve.Field != field {
		return &ValidationError{Field: field, Message: field + strings.TrimPrefix(ve.Message, "url"), TooLarge: ve.TooLarge}
	}
	return err
}
