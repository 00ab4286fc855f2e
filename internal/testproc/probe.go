package testproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// TCP is a Probe that succeeds once addr accepts a connection.
func TCP(addr string) Probe {
	return func(ctx context.Context) error {
		conn, err := Dial(ctx, addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// Dial connects to addr over TCP, for a probe that speaks the server's
// protocol; the connection's deadline is ctx's.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, nil
}

// HTTP is a Probe that succeeds once GET url answers 200.
func HTTP(url string) Probe {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
