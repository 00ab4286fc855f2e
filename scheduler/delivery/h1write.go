package delivery

import (
	"bufio"
	"errors"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req, with body, the way net/http's Transport does
// (http.Request.Write plus its Accept-Encoding: gzip when asked for), byte
// for byte, for the requests the plain-http path sends: no
// Transfer-Encoding, Close or trailers, header values already checked
// (h1Addr), a host without IDNA or zone. What it saves is
// Request.Write's per-request cost: a transfer writer, a pooled sorter, a
// replacer's buffer per header value, the fmt calls (h1write_test.go
// compares both).
func writeRequest(w *bufio.Writer, req *http.Request, body []byte, askGzip bool) error {
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if b := ruri[i]; b < ' ' || b == 0x7f {
			return errors.New("net/http: can't write control character in Request.URL")
		}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as Request.Write does: never an altered Host
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	_, _ = w.WriteString(method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(ruri)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(host)
	_, _ = w.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; ok {
		// Set blank, it is not sent; Deliver always sets it.
		if ua := textproto.TrimString(req.Header.Get("User-Agent")); ua != "" {
			_, _ = w.WriteString("User-Agent: ")
			_, _ = w.WriteString(ua)
			_, _ = w.WriteString("\r\n")
		}
	} else {
		_, _ = w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	// Without a body, only the methods servers expect a length of say 0.
	if len(body) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		_, _ = w.WriteString("Content-Length: ")
		var num [20]byte
		_, _ = w.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
		_, _ = w.WriteString("\r\n")
	}
	var stack [16]string
	keys := stack[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range req.Header[k] {
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(textproto.TrimString(v))
			_, _ = w.WriteString("\r\n")
		}
	}
	if askGzip {
		_, _ = w.WriteString("Accept-Encoding: gzip\r\n")
	}
	_, _ = w.WriteString("\r\n")
	_, err := w.Write(body)
	if err != nil {
		return err
	}
	return w.Flush()
}
