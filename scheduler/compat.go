package scheduler

import (
	"fmt"
	"net/http"
	"strings"
)

// DefaultCompatContentType is what a delivery of the original Cassata
// carried when its client gave no request headers (API.md §4).
const DefaultCompatContentType = "application/json"

// ParseHeaderLines reads the original Cassata's header list ("Name: value"
// strings, split at the first colon, value trimmed) the way the original
// accepted it, so its clients and its stored events keep working:
//
//   - headers that describe a connection rather than the request (Host,
//     Content-Length, Connection, Transfer-Encoding, Proxy-*, ...) are
//     dropped silently: Cassata never forwards them, and the original's
//     clients always sent some;
//   - an absent or empty list gives Content-Type: application/json, the
//     original's documented default, body or not.
//
// Everything else is kept for the usual validation (Limits.Validate), so a
// header Cassata refuses for another reason (a webhook-* signature header,
// an invalid name or value) still fails. An entry without a colon is an
// error naming it.
func ParseHeaderLines(lines []string) (map[string]string, error) {
	if len(lines) == 0 {
		return map[string]string{"Content-Type": DefaultCompatContentType}, nil
	}
	headers := make(map[string]string, len(lines))
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("header %q must be \"Name: value\"", line)
		}
		canon := http.CanonicalHeaderKey(name)
		if canon == "Host" || canon == "Content-Length" || hopByHop[canon] || strings.HasPrefix(canon, "Proxy-") {
			continue
		}
		headers[name] = strings.TrimSpace(value)
	}
	return headers, nil
}
