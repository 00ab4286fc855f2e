package worker

import (
	"context"
	"log/slog"
	"net/url"
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
// request's headers and body are not logged at all.

// failureLogMsg is the message of every failure log line.
const failureLogMsg = "delivery failed"

// redacted replaces a secret in the failure log.
const redacted = "REDACTED"

// logFailedAttempt writes the failure log line of one attempt whose outcome
// out is not COMPLETED.
func logFailedAttempt(ctx context.Context, log *slog.Logger, ev *scheduler.Event, res delivery.Result, out scheduler.Outcome) {
	safeURL := redactURL(ev.URL)
	status := slog.Any("status", nil)
	if res.StatusCode > 0 {
		status = slog.Int("status", res.StatusCode)
	}
	errAttr := slog.Any("error", nil)
	if res.Err != nil {
		// Errors may quote the URL (url.Parse does): never its secrets.
		msg := res.Err.Error()
		if ev.URL != "" {
			msg = strings.ReplaceAll(msg, strconv.Quote(ev.URL), strconv.Quote(safeURL))
			msg = strings.ReplaceAll(msg, ev.URL, safeURL)
		}
		errAttr = slog.String("error", msg)
	}
	log.LogAttrs(ctx, slog.LevelWarn, failureLogMsg,
		slog.String("app", ev.App), slog.String("id", ev.ID), slog.Int("attempt", ev.Attempts),
		slog.String("method", ev.Method), slog.String("url", safeURL),
		status, errAttr, slog.Int64("duration_ms", res.Duration.Milliseconds()),
		slog.String("response_body", res.Response), slog.String("next_status", string(out.Status)))
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
