package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// The failure log (API.md §9, WorkerConfig.LogFailedRequests, the original
// Cassata's logFailedRequests): every failed attempt is one structured line,
//
//	level=WARN msg="delivery failed" app=... id=... attempt=2 method=POST
//	url=https://hooks.example/x?token=REDACTED status=503 error=null
//	duration_ms=41 response_body="..." next_status=PENDING
//
// status is null when the destination did not answer, error when it did and
// its answer was taken as it is; response_body is the first 1 KiB of the
// answer (ResponseSnippetBytes), as the history keeps it. Secrets stay out:
// the URL's userinfo and the values of sensitive-looking query parameters are
// redacted (redactURL), the fragment (never sent) is left out, and the
// request's headers and body are not logged at all, nor anything of them
// that an error or a destination echoing its request quotes (newRedactor).

// failureLogMsg is the message of every failure log line.
const failureLogMsg = "delivery failed"

// redacted replaces a secret in the failure log.
const redacted = "REDACTED"

// logFailedAttempt writes the failure log line of one attempt whose outcome
// out is not COMPLETED. Its error is the attempt's, as the history records
// it (a connection error, a Cassata-Retry: false answer, ...).
func logFailedAttempt(ctx context.Context, log *slog.Logger, ev *scheduler.Event, res delivery.Result, out scheduler.Outcome) {
	safeURL := redactURL(ev.URL)
	hide := newRedactor(ev, res)
	status := slog.Any("status", nil)
	if res.StatusCode > 0 {
		status = slog.Int("status", res.StatusCode)
	}
	errAttr := slog.Any("error", nil)
	if msg := out.Attempt.Error; msg != "" {
		// Errors may quote the URL (url.Parse does): never its secrets.
		if ev.URL != "" {
			msg = strings.ReplaceAll(msg, strconv.Quote(ev.URL), strconv.Quote(safeURL))
			msg = strings.ReplaceAll(msg, ev.URL, safeURL)
		}
		if res.Err != nil {
			// The client's words, which may quote the request; the
			// worker's own (a Cassata-Retry: false answer) never do.
			msg = hide(msg)
		}
		errAttr = slog.String("error", msg)
	}
	log.LogAttrs(ctx, slog.LevelWarn, failureLogMsg,
		slog.String("app", ev.App), slog.String("id", ev.ID), slog.Int("attempt", ev.Attempts),
		slog.String("method", ev.Method), slog.String("url", safeURL),
		status, errAttr, slog.Int64("duration_ms", res.Duration.Milliseconds()),
		slog.String("response_body", hide(res.Response)), slog.String("next_status", string(out.Status)))
}

// newRedactor returns a function that replaces by REDACTED, in a text the
// destination or the HTTP client produced, every secret the request
// carried: the values of the event's headers (Authorization among them) and
// its body, the Standard Webhooks signature, the URL's credentials (and the
// Basic Authorization made of them) and its sensitive-looking query values
// (delivery.Result.Secrets, sensitiveParam). A destination that echoes its
// request shows them verbatim, JSON-escaped or URL-encoded, each of which is
// replaced; a secret cut off at the end of the text (the response body is
// cut at 1 KiB) is replaced from where it starts.
func newRedactor(ev *scheduler.Event, res delivery.Result) func(string) string {
	secrets := slices.Clone(res.Secrets())
	for _, v := range ev.Headers {
		secrets = append(secrets, v)
	}
	secrets = append(secrets, string(ev.Body))
	secrets = append(secrets, urlSecrets(ev.URL)...)
	var forms []string
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < delivery.MinSecretBytes {
			continue
		}
		forms = append(forms, s, jsonEscaped(s, true), jsonEscaped(s, false), url.QueryEscape(s), url.PathEscape(s))
	}
	// Longest first: a secret that contains another (a body holding a
	// header's value) goes whole.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	forms = slices.Compact(forms)
	if len(forms) == 0 {
		return func(s string) string { return s }
	}
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, redacted)
	}
	r := strings.NewReplacer(pairs...)
	longest := len(forms[0])
	return func(text string) string {
		text = r.Replace(text)
		// A secret cut off at the end: the longest tail that starts one.
		for n := min(len(text), longest-1); n >= delivery.MinSecretBytes; n-- {
			tail := text[len(text)-n:]
			for _, f := range forms {
				if len(f) > n && strings.HasPrefix(f, tail) {
					return text[:len(text)-n] + redacted
				}
			}
		}
		return text
	}
}

// jsonEscaped is s as it appears inside a JSON string, with or without
// encoding/json's HTML escaping.
func jsonEscaped(s string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(strings.TrimPrefix(out, `"`), `"`)
}

// urlSecrets are the secrets of a URL that redactURL hides: its userinfo
// and its sensitive-looking query values, as written and decoded.
func urlSecrets(raw string) []string {
	var out []string
	s, _, _ := strings.Cut(raw, "#")
	s, query, _ := strings.Cut(s, "?")
	if i := strings.Index(s, "//"); i >= 0 {
		authority := s[i+2:]
		if end := strings.IndexAny(authority, "/\\"); end >= 0 {
			authority = authority[:end]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			user, pass, hasPassword := strings.Cut(authority[:at], ":")
			if hasPassword {
				out = append(out, pass)
			} else {
				out = append(out, user)
			}
		}
	}
	for _, p := range strings.Split(query, "&") {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if sensitiveParam(name) {
			out = append(out, value)
		}
	}
	for _, v := range out {
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
	}
	return out
}

// redactURL returns raw for a log: the password of its userinfo (or the
// user, when there is no password: a token often stands there) and the values
// of sensitive-looking query parameters (sensitiveParam) replaced by
// REDACTED, the fragment left out. It works on the text, so that what is
// left is exactly what the event holds, even for a URL that does not parse.
func redactURL(raw string) string {
	s, _, _ := strings.Cut(raw, "#")
	s, query, hasQuery := strings.Cut(s, "?")
	if i := strings.Index(s, "//"); i >= 0 {
		authority := s[i+2:]
		end := strings.IndexAny(authority, "/\\")
		if end < 0 {
			end = len(authority)
		}
		if at := strings.LastIndexByte(authority[:end], '@'); at >= 0 {
			user := redacted
			if name, _, hasPassword := strings.Cut(authority[:at], ":"); hasPassword {
				user = name + ":" + redacted
			}
			s = s[:i+2] + user + authority[at:]
		}
	}
	if !hasQuery {
		return s
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		name, _, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if sensitiveParam(name) {
			params[i] = p[:strings.IndexByte(p, '=')+1] + redacted
		}
	}
	return s + "?" + strings.Join(params, "&")
}

// sensitiveWords make a query parameter's value a secret when its name
// contains one (case-insensitive): tokens, keys, signatures, passwords,
// credentials of every common spelling (X-Amz-Signature, sig, api_key,
// access_token, client_secret, auth, sessionid, ...).
var sensitiveWords = []string{"token", "secret", "passw", "pwd", "auth", "sig", "key", "credential",
	"session", "jwt", "hmac", "cookie", "bearer", "private"}

// sensitiveNames are short names that are secrets on their own.
var sensitiveNames = []string{"code", "pw", "pass", "otp", "hash", "nonce", "ticket"}

// sensitiveParam reports whether a query parameter's value must not be logged.
func sensitiveParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	for _, n := range sensitiveNames {
		if name == n {
			return true
		}
	}
	return false
}
