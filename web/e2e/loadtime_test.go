package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cassata/cassata/scheduler"
)

// archivedEvents is how many finished events BenchmarkEventsPage puts in the archive.
const archivedEvents = 100_000

// navTiming is the browser's PerformanceNavigationTiming of the current
// document, in milliseconds from the start of the navigation.
type navTiming struct {
	TTFB     float64 `json:"ttfb"`     // responseStart: first byte of the page
	Response float64 `json:"response"` // responseEnd: whole HTML received
	DCL      float64 `json:"dcl"`      // domContentLoadedEventEnd
	Load     float64 `json:"load"`     // loadEventEnd
	Bytes    float64 `json:"bytes"`    // decodedBodySize of the HTML
}

const navTimingJS = `(() => {
  const n = performance.getEntriesByType('navigation')[0];
  return n ? {ttfb: n.responseStart - n.startTime, response: n.responseEnd - n.startTime,
    dcl: n.domContentLoadedEventEnd - n.startTime, load: n.loadEventEnd - n.startTime,
    bytes: n.decodedBodySize} : null;
})()`

// load navigates to path and returns the navigation timing and how long the
// server's handler took.
func (tb *tab) load(s *system, path string) (navTiming, time.Duration) {
	tb.t.Helper()
	tb.navigate(path)
	for range 100 { // loadEventEnd is set just after the load event Navigate waits for
		nt, err := chromedp.Run(tb.timeout(), chromedp.Evaluate[*navTiming](navTimingJS))
		if err != nil {
			tb.t.Fatalf("navigation timing of %s: %v", path, err)
		}
		if nt != nil && nt.Load > 0 {
			u, _ := url.Parse(path)
			return *nt, s.timings.lastFor(u.Path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.t.Fatalf("navigation timing of %s: no loadEventEnd", path)
	return navTiming{}, 0
}

// fillArchive writes n finished events (a create and a final record each)
// straight into the archive, in batches of 1000 events: mostly COMPLETED,
// some FAILED, SERVICE_UNAVAILABLE and CANCELLED, over four applications,
// created over the last seven days with the newest in the last hour.
func fillArchive(tb testing.TB, s *system, n int) {
	tb.Helper()
	ctx := context.Background()
	apps := []string{"shop", "billing", "mail", "search"}
	now := time.Now().UnixMilli()
	span := int64(7 * 24 * time.Hour / time.Millisecond)
	start := time.Now()
	const batch = 1000
	recs := make([]scheduler.Record, 0, 2*batch)
	for i := range n {
		created := now - span + span*int64(i)/int64(n) // oldest first, the last ones minutes ago
		finished := created + 1500
		app, id := apps[i%len(apps)], fmt.Sprintf("evt-%06d", i)
		status, code, errText := scheduler.StatusCompleted, 200, ""
		switch {
		case i%100 < 7:
			status, code, errText = scheduler.StatusFailed, 500, "500 Internal Server Error"
		case i%100 < 9:
			status, code, errText = scheduler.StatusServiceUnavailable, 503, "503 Service Unavailable"
		case i%100 < 10:
			status, code = scheduler.StatusCancelled, 0
		}
		ev := &scheduler.Event{
			App: app, ID: id, URL: fmt.Sprintf("https://%s.example.com/hooks/%d", app, i%977), Method: "POST",
			Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"n":` + fmt.Sprint(i) + `}`),
			DueAt: time.UnixMilli(created + 1000).UTC(), Status: scheduler.StatusPending,
			CreatedAt: time.UnixMilli(created).UTC(), UpdatedAt: time.UnixMilli(created).UTC(),
		}
		recs = append(recs, scheduler.Record{
			Shard: i % 4, StreamID: fmt.Sprintf("%d-0", created), Kind: scheduler.RecordCreate,
			App: app, ID: id, CreatedMS: created, UpdatedMS: created, Status: scheduler.StatusPending, Event: ev,
		})
		fin := *ev
		fin.Status, fin.UpdatedAt, fin.FinishedAt = status, time.UnixMilli(finished).UTC(), time.UnixMilli(finished).UTC()
		var att *scheduler.Attempt
		if status != scheduler.StatusCancelled {
			fin.Attempts, fin.LastStatusCode, fin.LastError, fin.Worker = 1, code, errText, "bench-worker"
			att = &scheduler.Attempt{Attempt: 1, At: finished, StatusCode: code, Error: errText, DurationMS: 42, Worker: "bench-worker"}
		}
		recs = append(recs, scheduler.Record{
			Shard: i % 4, StreamID: fmt.Sprintf("%d-1", finished), Kind: scheduler.RecordFinal,
			App: app, ID: id, CreatedMS: created, UpdatedMS: finished, Status: status, Event: &fin, Attempt: att,
		})
		if len(recs) == 2*batch || i == n-1 {
			if err := s.archive.Write(ctx, recs); err != nil {
				tb.Fatalf("archive write: %v", err)
			}
			recs = recs[:0]
		}
	}
	tb.Logf("wrote %d archived events (%d records) in %s", n, 2*n, time.Since(start).Round(time.Millisecond))
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkEventsPage measures the admin pages with 100,000 archived events
// in real Chromium: for each page the median of five loads of
// navigation→DOMContentLoaded, navigation→load, time to first byte and the
// server's handler time (logged); then, per b.Loop iteration, one load of
// the unfiltered events page (ns/op, with the medians as extra metrics).
// It never fails on a time. Run it with
//
//	go test -run '^$' -bench EventsPage -benchtime 5x ./web/e2e
//	CASSATA_E2E_ARCHIVE=mysql go test -run '^$' -bench EventsPage -benchtime 5x ./web/e2e  # on MariaDB
func BenchmarkEventsPage(b *testing.B) {
	s := setup(b)
	s.stopWorker()
	fillArchive(b, s, archivedEvents)
	tb := newTab(b, s.srv.URL)
	tb.login()

	pages := []string{
		"/admin/events",
		"/admin/events?q=evt-0999",
		"/admin/events?q=hooks/42",
		"/admin/events?q=matches-nothing",
		"/admin/events?status=FAILED",
		"/admin/events?app=mail&status=FAILED",
		"/admin/failures",
		"/admin/",
		"/admin/events/shop/evt-050000",
	}
	// The second page of the unfiltered list, through its Next page link.
	tb.navigate("/admin/events")
	next, err := chromedp.Run(tb.timeout(), chromedp.AttributeValue(link("Next page"), "href"))
	if err != nil || !next.Exists {
		b.Fatalf("the events page with %d events has no Next page link (%v)", archivedEvents, err)
	}
	pages = append(pages, next.Value)

	b.Logf("%-42s %9s %9s %9s %9s %9s %8s", "page (median of 5)", "server", "ttfb", "dcl", "load", "html", "rows")
	for _, p := range pages {
		tb.load(s, p) // warm up (SQLite page cache, templates)
		var server []time.Duration
		var ttfb, dcl, load []float64
		var bytes float64
		for range 5 {
			nt, srv := tb.load(s, p)
			server, ttfb, dcl, load = append(server, srv), append(ttfb, nt.TTFB), append(dcl, nt.DCL), append(load, nt.Load)
			bytes = nt.Bytes
		}
		rows, _ := chromedp.Run(tb.timeout(), chromedp.Evaluate[int](`document.querySelectorAll('table#events tbody tr').length`))
		b.Logf("%-42s %7.1fms %7.1fms %7.1fms %7.1fms %8.0fk %8d", p,
			float64(median(server).Microseconds())/1000, median(ttfb), median(dcl), median(load), bytes/1000, rows)
	}

	var dcl, load []float64
	var server []time.Duration
	for b.Loop() {
		nt, srv := tb.load(s, "/admin/events")
		dcl, load, server = append(dcl, nt.DCL), append(load, nt.Load), append(server, srv)
	}
	b.ReportMetric(median(dcl), "dcl-ms")
	b.ReportMetric(median(load), "load-ms")
	b.ReportMetric(float64(median(server).Microseconds())/1000, "server-ms")
}
