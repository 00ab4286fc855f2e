package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	// requireChromiumEnv turns a missing chromium into a failure instead of
	// a skip (`make test` sets it, like CASSATA_REQUIRE_REDIS).
	requireChromiumEnv = "CASSATA_REQUIRE_CHROMIUM"
	// chromiumEnv overrides defaultChromium, for machines without Debian's package.
	chromiumEnv     = "CASSATA_CHROMIUM"
	defaultChromium = "/usr/bin/chromium"
	// artifactsEnv names the directory for screenshots.
	artifactsEnv = "CASSATA_E2E_ARTIFACTS"

	// actionTimeout bounds one browser step (a navigation, a click, a wait).
	actionTimeout = 15 * time.Second
	// desktop and mobile viewports of the screenshots.
	desktopWidth, desktopHeight = 1280, 900
	mobileWidth, mobileHeight   = 390, 844
)

// shared is the one Chromium process of the test binary; every test opens
// its own browser context (own cookies) and tab in it.
var shared struct {
	once    sync.Once
	ctx     context.Context // a chromedp context whose first Run started the browser
	cancel  context.CancelFunc
	dataDir string
	err     error
}

func chromiumPath() string { return cmp.Or(os.Getenv(chromiumEnv), defaultChromium) }

// stopBrowser ends the shared browser, if any, and removes its profile.
func stopBrowser() {
	if shared.cancel != nil {
		shared.cancel()
	}
	if shared.dataDir != "" {
		_ = os.RemoveAll(shared.dataDir)
	}
}

// browser returns the shared browser's context, starting Chromium on first
// use. It skips the test when chromium is missing, unless requireChromiumEnv=1.
func browser(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath()
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		if os.Getenv(requireChromiumEnv) == "1" {
			t.Fatalf("chromium not found at %s and %s=1 (install it with `make deps`): %v", path, requireChromiumEnv, err)
		}
		t.Skipf("chromium not installed at %s (set %s or run `make deps`)", path, chromiumEnv)
	}
	shared.once.Do(func() { shared.err = startBrowser(path) })
	if shared.err != nil {
		t.Fatalf("start chromium: %v", shared.err)
	}
	return shared.ctx
}

func startBrowser(path string) error {
	dir, err := os.MkdirTemp("", "cassata-e2e-chromium-")
	if err != nil {
		return err
	}
	shared.dataDir = dir
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers; Chromium refuses its sandbox there
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// No name resolves: the UI must need nothing but 127.0.0.1 (no CDN,
		// no external fonts), and the tests never reach the internet.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	shared.cancel = func() { cancel(); allocCancel() }
	shared.ctx = ctx
	start := make(chan error, 1)
	go func() { start <- chromedp.Do(ctx) }()
	select {
	case err := <-start:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("chromium did not start within 30s")
	}
}

// tab is one browser tab in a fresh browser context, pointed at one server.
// It watches the page for what must never happen: a Content-Security-Policy
// violation, an uncaught JavaScript exception, a static asset that does not
// load, a request to anything but the server under test. The test fails on any of them when it ends.
type tab struct {
	t    testing.TB
	ctx  context.Context
	base *url.URL

	mu       sync.Mutex
	problems []string
	messages []string
	static   map[network.RequestID]string // requests for static assets, by id
}

// isStatic reports whether a URL is one of the UI's static assets.
func isStatic(u string) bool { return strings.Contains(u, "/admin/static/") }

// cspReporter runs in every document before the page's own scripts (CDP
// injects it, so the page's CSP does not apply to it) and turns each
// securitypolicyviolation event into a console message the tab watches for,
// whether or not the browser also logs the violation itself.
const cspReporter = `document.addEventListener('securitypolicyviolation', function (e) {
  console.error('Content Security Policy violation: ' + e.effectiveDirective + ' blocked ' +
    (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

func newTab(t testing.TB, base string) *tab {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("tests only browse to 127.0.0.1, not %q", base)
	}
	parent := browser(t)
	tb := &tab{t: t, base: u, static: map[network.RequestID]string{}}
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.watch))
	t.Cleanup(cancel)
	tb.ctx = ctx
	// The first Run on a chromedp context opens the tab, and the tab's event
	// loop (replies to commands, frame and DOM tracking, tb.watch) lives as
	// long as the context of that Run: it must be ctx itself. Opened with
	// tb.timeout(), every tab stopped answering actionTimeout after it was
	// opened, whatever it was doing then (chromedp's doc of Run: "Do not set
	// a timeout on the context of that first call"). The wait is bounded
	// here instead, as startBrowser bounds the browser's start.
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("open tab: %v", err)
		}
	case <-time.After(actionTimeout):
		cancel()
		t.Fatalf("open tab: no tab after %s", actionTimeout)
	}
	if err := chromedp.Do(tb.timeout(), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspReporter})
		return err
	})); err != nil {
		t.Fatalf("add the CSP reporter: %v", err)
	}
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("browser: %s", p)
		}
		if t.Failed() || testing.Verbose() {
			for _, m := range tb.messages {
				t.Logf("console: %s", m)
			}
		}
	})
	return tb
}

// watch runs in the tab's event loop: it must only record.
func (tb *tab) watch(ev any) {
	var problem, message string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		problem = fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text)
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			} else {
				parts = append(parts, a.Description)
			}
		}
		message = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
	case *log.EventEntryAdded:
		message = fmt.Sprintf("log %s/%s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
		// The browser's own error about a static asset ("Refused to apply
		// style from '…/admin/static/…'", "Failed to load resource") tells
		// the same as the network events below; both are watched, since on a
		// loaded machine a CI run once saw the log entry and no network
		// problem within 5 s.
		if ev.Entry.Level == log.EntryLevelError && (isStatic(ev.Entry.Text) || isStatic(ev.Entry.URL)) {
			problem = "a static asset failed to load: " + ev.Entry.Text
		}
	case *network.EventRequestWillBeSent:
		if u, err := url.Parse(ev.Request.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != tb.base.Host {
			problem = "request to a host other than the server under test: " + ev.Request.URL
		}
		if isStatic(ev.Request.URL) {
			tb.mu.Lock()
			tb.static[ev.RequestID] = ev.Request.URL
			tb.mu.Unlock()
		}
	case *network.EventResponseReceived:
		tb.mu.Lock()
		u, ok := tb.static[ev.RequestID]
		tb.mu.Unlock()
		if ok && ev.Response != nil && ev.Response.Status >= 400 {
			problem = fmt.Sprintf("a static asset failed to load: %s: HTTP %d", u, ev.Response.Status)
		}
	case *network.EventResponseReceivedExtraInfo: // also sent when the body is refused (e.g. a 404 as CSS)
		tb.mu.Lock()
		u, ok := tb.static[ev.RequestID]
		tb.mu.Unlock()
		if ok && ev.StatusCode >= 400 {
			problem = fmt.Sprintf("a static asset failed to load: %s: HTTP %d", u, ev.StatusCode)
		}
	case *network.EventLoadingFailed:
		tb.mu.Lock()
		u, ok := tb.static[ev.RequestID]
		tb.mu.Unlock()
		if ok && !ev.Canceled {
			problem = fmt.Sprintf("a static asset failed to load: %s: %s %s", u, ev.ErrorText, ev.BlockedReason)
		}
	}
	if problem == "" && message != "" && strings.Contains(message, "Content Security Policy") {
		problem = message
	}
	if problem == "" && message == "" {
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if problem != "" {
		tb.problems = append(tb.problems, problem)
	}
	if message != "" {
		tb.messages = append(tb.messages, message)
	}
}

// takeProblems returns and forgets the problems seen so far (for tests of
// the watcher itself).
func (tb *tab) takeProblems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	p := tb.problems
	tb.problems = nil
	return p
}

// timeout returns the tab's context bounded by actionTimeout; the tab
// itself outlives it.
func (tb *tab) timeout() context.Context {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	tb.t.Cleanup(cancel)
	return ctx
}

// url resolves a path against the server under test.
func (tb *tab) url(path string) string {
	return tb.base.ResolveReference(&url.URL{Path: path}).String()
}

// navigate loads path (with an optional query) on the server under test and
// waits for the load event. It returns the HTTP status of the document.
func (tb *tab) navigate(pathAndQuery string) int64 {
	tb.t.Helper()
	u, err := tb.base.Parse(pathAndQuery)
	if err != nil || u.Host != tb.base.Host {
		tb.t.Fatalf("navigate: %q is not on the server under test", pathAndQuery)
	}
	resp, err := chromedp.Run(tb.timeout(), chromedp.NavigateResponse(u.String()))
	if err != nil {
		tb.t.Fatalf("navigate to %s: %v", u, err)
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// do runs steps, failing the test with what they were for.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.timeout(), steps...); err != nil {
		tb.t.Fatalf("%s: %v (page %s)", what, err, tb.location())
	}
}

func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// path returns the path and query of the current page.
func (tb *tab) path() string {
	u, err := url.Parse(tb.location())
	if err != nil {
		return ""
	}
	return u.RequestURI()
}

// click clicks the first visible element sel finds.
func (tb *tab) click(sel chromedp.Search) {
	tb.t.Helper()
	tb.do("click "+string(sel), chromedp.Click(sel, chromedp.NodeVisible))
}

// typeInto types text into a form field, as a user would.
func (tb *tab) typeInto(sel chromedp.Search, text string) {
	tb.t.Helper()
	tb.do("type into "+string(sel), chromedp.Clear(sel), chromedp.SendKeys(sel, text, chromedp.NodeVisible))
}

// text returns the visible text of the first element sel finds, waiting for it.
func (tb *tab) text(sel chromedp.Search) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.timeout(), chromedp.Text(sel, chromedp.NodeVisible))
	if err != nil {
		tb.t.Fatalf("read %s: %v (page %s)", sel, err, tb.location())
	}
	return strings.TrimSpace(s)
}

// has reports whether sel finds an element right now, without waiting.
func (tb *tab) has(sel chromedp.Search) bool {
	tb.t.Helper()
	xpath := strings.ReplaceAll(string(sel), "'", `"`)
	n, err := chromedp.Run(tb.timeout(), chromedp.Evaluate[int](
		fmt.Sprintf(`document.evaluate('count(%s)', document, null, XPathResult.NUMBER_TYPE, null).numberValue`, xpath)))
	if err != nil {
		tb.t.Fatalf("count %s: %v", sel, err)
	}
	return n > 0
}

// waitPath waits until the current page's path and query satisfy ok: after
// a click that navigates, the old document stays until the new one commits.
func (tb *tab) waitPath(what string, ok func(string) bool) {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for time.Now().Before(deadline) {
		if ok(tb.path()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.t.Fatalf("%s: still at %s after %s", what, tb.path(), actionTimeout)
}

// waitText waits until the text of sel satisfies ok, and returns it.
func (tb *tab) waitText(sel chromedp.Search, what string, ok func(string) bool) string {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	last := "(not found)"
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(tb.ctx, time.Second)
		s, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.NodeVisible))
		cancel()
		if err == nil {
			last = strings.TrimSpace(s)
			if ok(last) {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("%s: %s shows %q after %s (page %s)", what, sel, last, actionTimeout, tb.location())
	return ""
}

// waitVisible waits for sel to find a visible element.
func (tb *tab) waitVisible(sel chromedp.Search) {
	tb.t.Helper()
	tb.do("wait for "+string(sel), chromedp.WaitVisible(sel))
}

// screenshot saves a full-page PNG of the current page as name.png in the
// artifacts directory.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	buf, err := chromedp.Run(tb.timeout(), chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir(tb.t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tb.t.Fatalf("save screenshot: %v", err)
	}
	tb.t.Logf("screenshot %s", path)
}

// setViewport changes the tab's viewport; mobile also emulates a phone
// (device pixel ratio, touch, mobile layout).
func (tb *tab) setViewport(width, height int64, mobile bool) {
	tb.t.Helper()
	if mobile {
		tb.do("emulate phone", chromedp.EmulateViewport(width, height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(3)))
		return
	}
	tb.do("reset viewport", chromedp.EmulateViewport(width, height))
}

var artifacts struct {
	once sync.Once
	dir  string
	err  error
}

// artifactsDir is where screenshots go: $CASSATA_E2E_ARTIFACTS, or a fixed
// directory under the system's temporary directory, overwritten by each run
// (a t.TempDir would be deleted before anyone could look at the pictures).
func artifactsDir(t testing.TB) string {
	t.Helper()
	artifacts.once.Do(func() {
		dir := os.Getenv(artifactsEnv)
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "cassata-e2e-screenshots")
		}
		if artifacts.dir, artifacts.err = filepath.Abs(dir); artifacts.err == nil {
			artifacts.err = os.MkdirAll(artifacts.dir, 0o755)
		}
	})
	if artifacts.err != nil {
		t.Fatalf("screenshots directory: %v", artifacts.err)
	}
	return artifacts.dir
}

// Selectors by what a user sees (XPath through DOM.performSearch).

// button finds a button (or submit input) by its exact label.
func button(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//button[normalize-space(.)='%[1]s'] | //input[(@type='submit' or @type='button') and @value='%[1]s']`, label))
}

// link finds a link by its exact text.
func link(text string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//a[normalize-space(.)='%s']`, text))
}

// navLink finds a link of the navigation bar.
func navLink(text string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//nav//a[normalize-space(.)='%s']`, text))
}

// heading finds a heading (h1-h3) by its exact text.
func heading(text string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//*[self::h1 or self::h2 or self::h3][normalize-space(.)='%s']`, text))
}

// field finds a form control a user can fill in, by name (hidden inputs of
// the same name, such as a bulk form's copy of the search, do not count).
func field(name string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//*[self::input or self::select or self::textarea][@name='%s'][not(@type='hidden')]`, name))
}

// byID finds the element with an id.
func byID(id string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//*[@id='%s']`, id))
}
