package scheduler

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func validEvent() *Event {
	return &Event{
		App: "shop", ID: "order-1", URL: "https://example.com/hook", Method: "POST",
		Headers: map[string]string{"X-Trace": "abc"}, Body: []byte(`{"ok":true}`),
		DueAt: time.UnixMilli(1_700_000_000_000),
	}
}

func manyHeaders(n int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h["X-H"+strconv.Itoa(i)] = "v"
	}
	return h
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limits   Limits
		mutate   func(*Event)
		field    string // "" when valid
		tooLarge bool
	}{
		{name: "valid", mutate: func(*Event) {}},

		{name: "app empty", mutate: func(e *Event) { e.App = "" }, field: "app"},
		{name: "app 64 chars", mutate: func(e *Event) { e.App = strings.Repeat("a", 64) }},
		{name: "app 65 chars", mutate: func(e *Event) { e.App = strings.Repeat("a", 65) }, field: "app"},
		{name: "app all allowed classes", mutate: func(e *Event) { e.App = "Az09._-" }},
		{name: "app space", mutate: func(e *Event) { e.App = "my app" }, field: "app"},
		{name: "app slash", mutate: func(e *Event) { e.App = "a/b" }, field: "app"},
		{name: "app colon", mutate: func(e *Event) { e.App = "a:b" }, field: "app"},
		{name: "app braces", mutate: func(e *Event) { e.App = "a{b}" }, field: "app"},
		{name: "app non-ASCII", mutate: func(e *Event) { e.App = "café" }, field: "app"},

		{name: "id empty", mutate: func(e *Event) { e.ID = "" }, field: "id"},
		{name: "id 128 bytes", mutate: func(e *Event) { e.ID = strings.Repeat("x", 128) }},
		{name: "id 129 bytes", mutate: func(e *Event) { e.ID = strings.Repeat("x", 129) }, field: "id"},
		{name: "id printable punctuation", mutate: func(e *Event) { e.ID = `!"#$%&'()*+,-.:;<=>?@[\]^_{|}~` }},
		{name: "id slash", mutate: func(e *Event) { e.ID = "a/b" }, field: "id"},
		{name: "id space", mutate: func(e *Event) { e.ID = "a b" }, field: "id"},
		{name: "id tab", mutate: func(e *Event) { e.ID = "a\tb" }, field: "id"},
		{name: "id newline", mutate: func(e *Event) { e.ID = "a\nb" }, field: "id"},
		{name: "id NUL", mutate: func(e *Event) { e.ID = "a\x00b" }, field: "id"},
		{name: "id DEL", mutate: func(e *Event) { e.ID = "a\x7fb" }, field: "id"},
		{name: "id non-ASCII", mutate: func(e *Event) { e.ID = "é" }, field: "id"},

		{name: "url empty", mutate: func(e *Event) { e.URL = "" }, field: "url"},
		{name: "url http", mutate: func(e *Event) { e.URL = "http://example.com" }},
		{name: "url with port, path, query", mutate: func(e *Event) { e.URL = "https://example.com:8443/a/b?c=d&e=f" }},
		{name: "url IPv6 literal", mutate: func(e *Event) { e.URL = "http://[2606:4700::1]:8080/x" }},
		{name: "url upper-case scheme", mutate: func(e *Event) { e.URL = "HTTPS://EXAMPLE.COM/" }},
		{name: "url ftp", mutate: func(e *Event) { e.URL = "ftp://example.com/file" }, field: "url"},
		{name: "url file", mutate: func(e *Event) { e.URL = "file:///etc/passwd" }, field: "url"},
		{name: "url javascript", mutate: func(e *Event) { e.URL = "javascript:alert(1)" }, field: "url"},
		{name: "url no scheme", mutate: func(e *Event) { e.URL = "example.com/hook" }, field: "url"},
		{name: "url relative", mutate: func(e *Event) { e.URL = "/hook" }, field: "url"},
		{name: "url no host", mutate: func(e *Event) { e.URL = "http:///hook" }, field: "url"},
		{name: "url port only", mutate: func(e *Event) { e.URL = "http://:8080/hook" }, field: "url"},
		{name: "url space in host", mutate: func(e *Event) { e.URL = "http://exa mple.com/" }, field: "url"},
		{name: "url control character", mutate: func(e *Event) { e.URL = "http://example.com/\n" }, field: "url"},
		{name: "url user and password", mutate: func(e *Event) { e.URL = "https://user:secret@example.com/" }, field: "url"},
		{name: "url user only", mutate: func(e *Event) { e.URL = "https://token@example.com/" }, field: "url"},
		{name: "url empty user info", mutate: func(e *Event) { e.URL = "https://@example.com/" }, field: "url"},
		{name: "url at the length limit", limits: Limits{MaxURLLength: 40},
			mutate: func(e *Event) { e.URL = "https://example.com/" + strings.Repeat("a", 20) }},
		{name: "url over the length limit", limits: Limits{MaxURLLength: 40},
			mutate: func(e *Event) { e.URL = "https://example.com/" + strings.Repeat("a", 21) }, field: "url", tooLarge: true},

		{name: "method each allowed", mutate: func(e *Event) { e.Method = "PATCH" }},
		{name: "method HEAD", mutate: func(e *Event) { e.Method = "HEAD" }},
		{name: "method CONNECT", mutate: func(e *Event) { e.Method = "CONNECT" }, field: "method"},
		{name: "method TRACE", mutate: func(e *Event) { e.Method = "TRACE" }, field: "method"},
		{name: "method OPTIONS", mutate: func(e *Event) { e.Method = "OPTIONS" }, field: "method"},
		{name: "method garbage", mutate: func(e *Event) { e.Method = "P OST" }, field: "method"},

		{name: "header token punctuation", mutate: func(e *Event) { e.Headers = map[string]string{"X-A_b.c!#$%&'*+^`|~": "v"} }},
		{name: "header empty value", mutate: func(e *Event) { e.Headers = map[string]string{"X-Empty": ""} }},
		{name: "header value with tab and UTF-8", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\tb é"} }},
		{name: "header name empty", mutate: func(e *Event) { e.Headers = map[string]string{"": "v"} }, field: "headers"},
		{name: "header name space", mutate: func(e *Event) { e.Headers = map[string]string{"X Bad": "v"} }, field: "headers"},
		{name: "header name colon", mutate: func(e *Event) { e.Headers = map[string]string{"X:Bad": "v"} }, field: "headers"},
		{name: "header name newline", mutate: func(e *Event) { e.Headers = map[string]string{"X\nBad": "v"} }, field: "headers"},
		{name: "header name non-ASCII", mutate: func(e *Event) { e.Headers = map[string]string{"X-Ünï": "v"} }, field: "headers"},
		{name: "header name separator", mutate: func(e *Event) { e.Headers = map[string]string{"X(Bad)": "v"} }, field: "headers"},
		{name: "header value CR", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\rb"} }, field: "headers"},
		{name: "header value LF", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\nInjected: yes"} }, field: "headers"},
		{name: "header value CRLF", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\r\nInjected: yes"} }, field: "headers"},
		{name: "header value NUL", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\x00b"} }, field: "headers"},
		{name: "header value DEL", mutate: func(e *Event) { e.Headers = map[string]string{"X-V": "a\x7fb"} }, field: "headers"},
		{name: "header Host refused", mutate: func(e *Event) { e.Headers = map[string]string{"Host": "v"} }, field: "headers"},
		{name: "header host refused", mutate: func(e *Event) { e.Headers = map[string]string{"host": "v"} }, field: "headers"},
		{name: "header Content-Length refused", mutate: func(e *Event) { e.Headers = map[string]string{"Content-Length": "v"} }, field: "headers"},
		{name: "header content-length refused", mutate: func(e *Event) { e.Headers = map[string]string{"content-length": "v"} }, field: "headers"},
		{name: "header Connection refused", mutate: func(e *Event) { e.Headers = map[string]string{"Connection": "v"} }, field: "headers"},
		{name: "header Keep-Alive refused", mutate: func(e *Event) { e.Headers = map[string]string{"Keep-Alive": "v"} }, field: "headers"},
		{name: "header Proxy-Authorization refused", mutate: func(e *Event) { e.Headers = map[string]string{"Proxy-Authorization": "v"} }, field: "headers"},
		{name: "header Proxy-Connection refused", mutate: func(e *Event) { e.Headers = map[string]string{"Proxy-Connection": "v"} }, field: "headers"},
		{name: "header Proxy-Anything refused", mutate: func(e *Event) { e.Headers = map[string]string{"Proxy-Anything": "v"} }, field: "headers"},
		{name: "header TE refused", mutate: func(e *Event) { e.Headers = map[string]string{"TE": "v"} }, field: "headers"},
		{name: "header te refused", mutate: func(e *Event) { e.Headers = map[string]string{"te": "v"} }, field: "headers"},
		{name: "header Trailer refused", mutate: func(e *Event) { e.Headers = map[string]string{"Trailer": "v"} }, field: "headers"},
		{name: "header Transfer-Encoding refused", mutate: func(e *Event) { e.Headers = map[string]string{"Transfer-Encoding": "v"} }, field: "headers"},
		{name: "header Upgrade refused", mutate: func(e *Event) { e.Headers = map[string]string{"Upgrade": "v"} }, field: "headers"},
		{name: "header webhook-id refused", mutate: func(e *Event) { e.Headers = map[string]string{"webhook-id": "v"} }, field: "headers"},
		{name: "header Webhook-Signature refused", mutate: func(e *Event) { e.Headers = map[string]string{"Webhook-Signature": "v"} }, field: "headers"},
		{name: "header WEBHOOK-TIMESTAMP refused", mutate: func(e *Event) { e.Headers = map[string]string{"WEBHOOK-TIMESTAMP": "v"} }, field: "headers"},
		{name: "header webhook-x refused", mutate: func(e *Event) { e.Headers = map[string]string{"webhook-x": "v"} }, field: "headers"},
		{name: "header Authorization allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Authorization": "v"} }},
		{name: "header Cookie allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Cookie": "v"} }},
		{name: "header Accept-Encoding allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Accept-Encoding": "v"} }},
		{name: "header Cassata-Trace allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Cassata-Trace": "v"} }},
		{name: "header Webhooks-Version allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Webhooks-Version": "v"} }},
		{name: "header X-Webhook-Id allowed", mutate: func(e *Event) { e.Headers = map[string]string{"X-Webhook-Id": "v"} }},
		{name: "header Proxied-By allowed", mutate: func(e *Event) { e.Headers = map[string]string{"Proxied-By": "v"} }},
		{name: "header given twice in different case", mutate: func(e *Event) { e.Headers = map[string]string{"X-Dup": "1", "x-dup": "2"} }, field: "headers"},
		{name: "url shorthand IPv4 without a guard", mutate: func(e *Event) { e.URL = "http://2130706433/" }, field: "url"},
		{name: "url octal IPv4 without a guard", mutate: func(e *Event) { e.URL = "http://0177.0.0.1/" }, field: "url"},
		{name: "url loopback without a guard", mutate: func(e *Event) { e.URL = "http://127.0.0.1:8080/" }},
		{name: "url IPv4 in brackets", mutate: func(e *Event) { e.URL = "http://[127.0.0.1]/" }, field: "url"},
		{name: "headers at the count limit", limits: Limits{MaxHeaders: 3}, mutate: func(e *Event) { e.Headers = manyHeaders(3) }},
		{name: "headers over the count limit", limits: Limits{MaxHeaders: 3},
			mutate: func(e *Event) { e.Headers = manyHeaders(4) }, field: "headers", tooLarge: true},
		{name: "headers over the default count limit",
			mutate: func(e *Event) { e.Headers = manyHeaders(DefaultMaxHeaders + 1) }, field: "headers", tooLarge: true},
		{name: "headers at the size limit", limits: Limits{MaxHeaderBytes: 10},
			mutate: func(e *Event) { e.Headers = map[string]string{"X-A": "1234567"} }},
		{name: "headers over the size limit", limits: Limits{MaxHeaderBytes: 10},
			mutate: func(e *Event) { e.Headers = map[string]string{"X-A": "12345678"} }, field: "headers", tooLarge: true},

		{name: "no body", mutate: func(e *Event) { e.Body = nil }},
		{name: "body at the default limit", mutate: func(e *Event) { e.Body = make([]byte, DefaultMaxBodyBytes) }},
		{name: "body over the default limit",
			mutate: func(e *Event) { e.Body = make([]byte, DefaultMaxBodyBytes+1) }, field: "body", tooLarge: true},
		{name: "body at a configured limit", limits: Limits{MaxBodyBytes: 16}, mutate: func(e *Event) { e.Body = make([]byte, 16) }},
		{name: "body over a configured limit", limits: Limits{MaxBodyBytes: 16},
			mutate: func(e *Event) { e.Body = make([]byte, 17) }, field: "body", tooLarge: true},

		{name: "due missing", mutate: func(e *Event) { e.DueAt = time.Time{} }, field: "due"},
		{name: "due in the past", mutate: func(e *Event) { e.DueAt = time.Unix(1, 0) }},

		{name: "max_attempts default", mutate: func(e *Event) { e.MaxAttempts = 0 }},
		{name: "max_attempts 1", mutate: func(e *Event) { e.MaxAttempts = 1 }},
		{name: "max_attempts at the bound", mutate: func(e *Event) { e.MaxAttempts = MaxMaxAttempts }},
		{name: "max_attempts over the bound", mutate: func(e *Event) { e.MaxAttempts = MaxMaxAttempts + 1 }, field: "max_attempts"},
		{name: "max_attempts negative", mutate: func(e *Event) { e.MaxAttempts = -1 }, field: "max_attempts"},

		{name: "timeout 1ms", mutate: func(e *Event) { e.Timeout = time.Millisecond }},
		{name: "timeout at the bound", mutate: func(e *Event) { e.Timeout = MaxTimeout }},
		{name: "timeout over the bound", mutate: func(e *Event) { e.Timeout = MaxTimeout + time.Millisecond }, field: "timeout"},
		{name: "timeout under 1ms", mutate: func(e *Event) { e.Timeout = time.Microsecond }, field: "timeout"},
		{name: "timeout negative", mutate: func(e *Event) { e.Timeout = -time.Second }, field: "timeout"},

		{name: "backoff bounds", mutate: func(e *Event) { e.MinBackoff, e.MaxBackoff = time.Second, time.Hour }},
		{name: "backoff bounds equal", mutate: func(e *Event) { e.MinBackoff, e.MaxBackoff = time.Minute, time.Minute }},
		{name: "backoff bounds at the limit", mutate: func(e *Event) { e.MinBackoff, e.MaxBackoff = MaxBackoffLimit, MaxBackoffLimit }},
		{name: "min_backoff alone", mutate: func(e *Event) { e.MinBackoff = time.Hour }},
		{name: "min_backoff negative", mutate: func(e *Event) { e.MinBackoff = -1 }, field: "min_backoff"},
		{name: "min_backoff over the limit", mutate: func(e *Event) { e.MinBackoff = MaxBackoffLimit + 1 }, field: "min_backoff"},
		{name: "max_backoff negative", mutate: func(e *Event) { e.MaxBackoff = -1 }, field: "max_backoff"},
		{name: "max_backoff over the limit", mutate: func(e *Event) { e.MaxBackoff = MaxBackoffLimit + 1 }, field: "max_backoff"},
		{name: "min_backoff above max_backoff", mutate: func(e *Event) { e.MinBackoff, e.MaxBackoff = time.Hour, time.Minute }, field: "min_backoff"},

		{name: "flow_key none", mutate: func(e *Event) { e.FlowKey = "" }},
		{name: "flow_key every allowed character", mutate: func(e *Event) { e.FlowKey = "Tenant_1.eu-west:a" }},
		{name: "flow_key at the length bound", mutate: func(e *Event) { e.FlowKey = strings.Repeat("k", 128) }},
		{name: "flow_key over the length bound", mutate: func(e *Event) { e.FlowKey = strings.Repeat("k", 129) }, field: "flow_key"},
		{name: "flow_key with a space", mutate: func(e *Event) { e.FlowKey = "a b" }, field: "flow_key"},
		{name: "flow_key with a slash", mutate: func(e *Event) { e.FlowKey = "a/b" }, field: "flow_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := validEvent()
			tt.mutate(ev)
			err := tt.limits.Check(ev)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError for %q", err, tt.field)
			}
			if ve.Field != tt.field {
				t.Fatalf("field = %q (%v), want %q", ve.Field, err, tt.field)
			}
			if ve.Message == "" {
				t.Fatalf("empty message")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("errors.Is(err, ErrInvalid) = false")
			}
			if ve.TooLarge != tt.tooLarge || errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Fatalf("TooLarge = %v, errors.Is(ErrTooLarge) = %v; want %v", ve.TooLarge, errors.Is(err, ErrTooLarge), tt.tooLarge)
			}
		})
	}
}

func TestValidateNormalisesMethod(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "POST"},
		{"post", "POST"},
		{"get", "GET"},
		{"Put", "PUT"},
		{"pAtCh", "PATCH"},
		{" delete ", "DELETE"},
		{"head", "HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			ev := validEvent()
			ev.Method = tt.in
			if err := (Limits{}).Check(ev); err != nil {
				t.Fatalf("Validate(%q) = %v", tt.in, err)
			}
			if ev.Method != tt.want {
				t.Fatalf("method = %q, want %q", ev.Method, tt.want)
			}
		})
	}
}

func TestValidAppAndID(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a", "A.b_c-9", strings.Repeat("z", 64)} {
		if !ValidApp(s) {
			t.Errorf("ValidApp(%q) = false", s)
		}
	}
	for _, s := range []string{"", " ", "a b", "a/b", "a+b", strings.Repeat("z", 65)} {
		if ValidApp(s) {
			t.Errorf("ValidApp(%q) = true", s)
		}
	}
	for _, s := range []string{"1", "a:b", "~!@", strings.Repeat("z", 128)} {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a/b", "\x01", "a\x7f", strings.Repeat("z", 129)} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	got := Limits{}.WithDefaults()
	want := Limits{MaxBodyBytes: 1 << 20, MaxURLLength: 8192, MaxHeaders: 64, MaxHeaderBytes: 16 << 10}
	if got != want {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	custom := Limits{MaxBodyBytes: 5, MaxURLLength: 6, MaxHeaders: 7, MaxHeaderBytes: 8}
	if custom.WithDefaults() != custom {
		t.Fatalf("WithDefaults changed set fields: %+v", custom.WithDefaults())
	}
}
