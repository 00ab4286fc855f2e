package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// strictCSP is the policy of ui-spec.md; the harness test serves it too, so
// it shows that the watcher notices what that policy forbids.
const strictCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// TestHarness checks the plumbing the UI tests stand on: Chromium starts,
// clicks and typing reach the page, screenshots work, and the tab's watcher
// reports CSP violations, exceptions, missing static assets and requests
// leaving 127.0.0.1 — so that a clean UI test run means something.
func TestHarness(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", strictCSP)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, "<!doctype html><html><head><title>t</title></head><body>"+body+"</body></html>")
		}
	}
	mux.HandleFunc("/clean", page(`<h1>Clean</h1><form method="get" action="/echo"><input name="q"><button type="submit">Search</button></form><script src="/app.js"></script>`))
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = io.WriteString(w, `document.body.dataset.ready = "yes";`)
	})
	mux.HandleFunc("/echo", page(`<p id="flash" role="status">got</p>`))
	mux.HandleFunc("/inline-script", page(`<script>document.title = "ran";</script><p>x</p>`))
	mux.HandleFunc("/inline-style", page(`<p style="color: red">x</p>`))
	mux.HandleFunc("/throws", page(`<script src="/throw.js"></script>`))
	mux.HandleFunc("/throw.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = io.WriteString(w, `throw new Error("boom from e2e harness");`)
	})
	mux.HandleFunc("/missing-static", page(`<link rel="stylesheet" href="/admin/static/nope.css">`))
	mux.HandleFunc("/cdn", page(`<img src="https://cdn.example.invalid/x.png" alt="">`))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tb := newTab(t, srv.URL)
	if st := tb.navigate("/clean"); st != http.StatusOK {
		t.Fatalf("GET /clean: status %d", st)
	}
	tb.waitVisible(heading("Clean"))
	tb.typeInto(field("q"), "order-4711")
	tb.click(button("Search"))
	if got := tb.waitText(byID("flash"), "after submit", func(s string) bool { return s == "got" }); got != "got" {
		t.Fatalf("flash = %q", got)
	}
	if p := tb.path(); p != "/echo?q=order-4711" {
		t.Errorf("form submitted to %q, want /echo?q=order-4711", p)
	}
	if png, err := chromedp.Run(tb.timeout(), chromedp.FullScreenshot(100)); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("full-page screenshot: %d bytes, %v; want a PNG", len(png), err)
	}
	if p := tb.takeProblems(); len(p) > 0 {
		t.Fatalf("clean page reported problems: %q", p)
	}

	for _, c := range []struct{ path, want string }{
		{"/inline-script", "Content Security Policy"},
		{"/inline-style", "Content Security Policy"},
		{"/throws", "boom from e2e harness"},
		{"/missing-static", "static asset failed to load"},
		{"/cdn", "cdn.example.invalid"},
	} {
		tb.navigate(c.path)
		var got []string
		for range 100 { // events arrive asynchronously; allow up to 5s (more on a loaded machine)
			if got = tb.takeProblems(); len(got) > 0 {
				break
			}
			tb.do("wait", chromedp.Sleep(50*time.Millisecond))
		}
		t.Logf("%s: %q", c.path, got)
		if !strings.Contains(strings.Join(got, "\n"), c.want) {
			t.Errorf("%s: watcher reported %q, want a problem mentioning %q", c.path, got, c.want)
		}
		for range 4 { // let duplicates (browser log + reporter) arrive, then drop them
			tb.do("wait", chromedp.Sleep(50*time.Millisecond))
			tb.takeProblems()
		}
	}
}

// TestTabOutlivesActionTimeout: a tab answers for as long as its test
// runs, not only for actionTimeout after it opened. Every tab used to die
// then (its first Run had a timeout), so the longest UI tests failed at
// whatever step came after that mark on a loaded machine, often the one
// after a screenshot.
func TestTabOutlivesActionTimeout(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/later", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><html><head><title>t</title></head><body><h1>Later</h1></body></html>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tb := newTab(t, srv.URL)
	time.Sleep(actionTimeout + 2*time.Second)
	if st := tb.navigate("/later"); st != http.StatusOK {
		t.Fatalf("GET /later: status %d", st)
	}
	tb.waitVisible(heading("Later"))
}
