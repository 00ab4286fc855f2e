package delivery

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// captureTransportRequest sends req through a fresh net/http Transport to
// a listener and returns the bytes the Transport wrote.
func captureTransportRequest(t *testing.T, req *http.Request) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer func() { _ = c.Close() }()
		var raw bytes.Buffer
		r, err := http.ReadRequest(bufio.NewReader(io.TeeReader(c, &raw)))
		if err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		got <- raw.Bytes()
	}()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	}}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("Transport: %v", err)
	}
	_ = resp.Body.Close()
	select {
	case b := <-got:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no request captured")
		return nil
	}
}

// TestWriteRequestMatchesTransport: writeRequest writes what net/http's
// Transport wrote, byte for byte, for the requests Deliver builds.
func TestWriteRequestMatchesTransport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		url     string
		body    string
		headers map[string][]string
	}{
		{name: "POST with body", method: "POST", url: "http://example.com/hooks/orders?tenant=acme&v=2", body: `{"n":1}`,
			headers: map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"cassata/1.0"},
				"Cassata-Event-Id": {"e1"}, "Cassata-Application-Id": {"shop"}, "Cassata-Attempt": {"1"}}},
		{name: "POST without body", method: "POST", url: "http://example.com:8080/", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "GET", method: "GET", url: "http://example.com/x?q=a%20b", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "GET with body", method: "GET", url: "http://example.com/x", body: "q", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "HEAD", method: "HEAD", url: "http://example.com/", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "DELETE", method: "DELETE", url: "http://example.com/r/1", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "DELETE with body", method: "DELETE", url: "http://example.com/r/1", body: "{}", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "PATCH without body", method: "PATCH", url: "http://example.com/r/1", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "PUT without body", method: "PUT", url: "http://example.com/r/1", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "HEAD with body", method: "HEAD", url: "http://example.com/r/1", body: "x", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "PUT and PATCH-like escapes", method: "PUT", url: "http://example.com/a%2Fb/c%20d?x=%E2%82%AC#frag", body: "x",
			headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "IPv6 literal", method: "POST", url: "http://[::1]:9000/h", headers: map[string][]string{"User-Agent": {"cassata/1.0"}}},
		{name: "padded values, several values", method: "POST", url: "http://example.com/", body: "b",
			headers: map[string][]string{"User-Agent": {"  cassata/1.0 "}, "X-Multi": {"a", " b\t"}, "Zeta": {"z"}, "Alpha": {""}}},
		{name: "no User-Agent", method: "PATCH", url: "http://example.com/", body: "b", headers: map[string][]string{"X-A": {"1"}}},
		{name: "blank User-Agent", method: "POST", url: "http://example.com/", headers: map[string][]string{"User-Agent": {""}}},
		{name: "own Accept-Encoding", method: "POST", url: "http://example.com/", headers: map[string][]string{"Accept-Encoding": {"br"}, "User-Agent": {"u"}}},
		{name: "Range", method: "GET", url: "http://example.com/", headers: map[string][]string{"Range": {"bytes=0-9"}, "User-Agent": {"u"}}},
		{name: "credentials set as a header", method: "POST", url: "http://example.com/", headers: map[string][]string{"Authorization": {"Basic dTpw"}, "User-Agent": {"u"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			build := func() *http.Request {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, err := http.NewRequest(tt.method, tt.url, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, vs := range tt.headers {
					req.Header[k] = vs
				}
				return req
			}
			want := captureTransportRequest(t, build())
			req := build()
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			askGzip := req.Method != http.MethodHead && req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == ""
			if err := writeRequest(bw, req, []byte(tt.body), askGzip); err != nil {
				t.Fatal(err)
			}
			if got := buf.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("writeRequest wrote\n%q\nthe Transport wrote\n%q", got, want)
			}
		})
	}
}

// TestWriteRequestControlCharacter: a URL with a control character is
// refused, as by Request.Write.
func TestWriteRequestControlCharacter(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest("GET", "http://example.com/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.RawQuery = "a=\x01"
	var buf bytes.Buffer
	if err := writeRequest(bufio.NewWriter(&buf), req, nil, false); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("writeRequest = %v, want a control character error", err)
	}
}
