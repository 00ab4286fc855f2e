package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultHealthcheckTimeout bounds a healthcheck probe.
const DefaultHealthcheckTimeout = 2 * time.Second

// ProbeURL is the URL that probes a process listening on listen: on the
// host it names, or on 127.0.0.1 when it listens on every interface.
func ProbeURL(listen, path string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("CASSATA_LISTEN %q: want host:port or :port", listen)
	}
	if port == "0" {
		return "", fmt.Errorf("CASSATA_LISTEN %q: port 0 is a random port; name the process's port with --listen", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// Healthcheck GETs path of the process listening on listen and returns
// what it answered when that is 200 OK; an error says what went wrong.
func Healthcheck(ctx context.Context, listen, path string, timeout time.Duration) (string, error) {
	url, err := ProbeURL(listen, path)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	text := strings.Join(strings.Fields(string(body)), " ")
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", url, resp.Status, text)
	}
	return fmt.Sprintf("GET %s: %s %s", url, resp.Status, text), nil
}
