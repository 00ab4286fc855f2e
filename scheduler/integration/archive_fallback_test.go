package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/archive"
	"github.com/cassata/cassata/store/redisstore"
)

// TestReadsFallBackToTheArchive: once the Redis copies of finished events
// expired (retention 1s), Get, the Cassata status and event routes and the
// v1 routes answer from the archive; a FAILED event only the archive has
// (with a body, and without one) can be retried and is delivered again,
// its history keeping the earlier attempt; cancelling it, or retrying a
// COMPLETED one, is a 409.
func TestReadsFallBackToTheArchive(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		// The "fail-" events fail (404) on their first delivery only.
		var mu sync.Mutex
		seen := map[string]int{}
		e := setupArchive(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
			mu.Lock()
			seen[a.ID]++
			n := seen[a.ID]
			mu.Unlock()
			if strings.HasPrefix(a.ID, "fail-") && n == 1 {
				http.Error(w, "not yet", http.StatusNotFound)
				return
			}
			_, _ = w.Write([]byte("thanks"))
		}, db, redisstore.Config{Retention: time.Second})
		w := e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		srv := e.apiServer()

		done := e.event("done")
		done.Body = []byte(`{"order":1}`)
		done.Headers = map[string]string{"X-Trace": "abc"}
		failed := e.event("fail-body")
		failed.Body = []byte(`{"order":2}`)
		failed.Method = "PUT"
		empty := e.event("fail-nobody") // no body at all
		for _, ev := range []*scheduler.Event{done, failed, empty} {
			e.schedule(ev)
		}
		e.waitStatus("done", scheduler.StatusCompleted, 10*time.Second)
		e.waitStatus("fail-body", scheduler.StatusFailed, 10*time.Second)
		e.waitStatus("fail-nobody", scheduler.StatusFailed, 10*time.Second)
		e.waitArchived(3, 3, 10*time.Second)
		for _, id := range []string{"done", "fail-body", "fail-nobody"} {
			e.waitGoneFromRedis(testApp, id, 10*time.Second)
		}

		// Scheduler.Get: the archived run with its history.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ev, err := e.sched.Get(ctx, testApp, "done")
		if err != nil {
			t.Fatalf("Get done: %v", err)
		}
		if ev.Status != scheduler.StatusCompleted || ev.Attempts != 1 || len(ev.History) != 1 || ev.History[0].StatusCode != 200 ||
			ev.URL != done.URL || ev.Headers["X-Trace"] != "abc" || ev.CreatedAt.IsZero() || ev.FinishedAt.IsZero() {
			t.Errorf("Get done from the archive: %+v", ev)
		}
		if _, err := e.sched.Get(ctx, testApp, "never-was"); !isNotFound(err) {
			t.Errorf("Get of an unknown event: %v, want ErrNotFound", err)
		}

		// Cassata routes.
		var status string
		callJSON(t, "GET", srv.URL+"/cassata/status/"+testApp+"/done", http.StatusOK, &status)
		if status != "COMPLETED" {
			t.Errorf("/cassata/status of done: %q", status)
		}
		callJSON(t, "GET", srv.URL+"/cassata/status/"+testApp+"/fail-body", http.StatusOK, &status)
		if status != "FAILED" {
			t.Errorf("/cassata/status of fail-body: %q", status)
		}
		callJSON(t, "GET", srv.URL+"/cassata/status/"+testApp+"/never-was", http.StatusNotFound, nil)
		var cev struct {
			EventID, Application, HTTPMethod, DestinationURL, EventStatus string
			EventJSON                                                     *string `json:"eventJson"`
			Expiry                                                        int64
			EventLogs                                                     []struct {
				HTTPResponseCode int    `json:"httpResponseCode"`
				HTTPResponse     string `json:"httpResponse"`
				LastUpdated      int64  `json:"lastUpdated"`
			} `json:"eventLogs"`
		}
		callJSON(t, "GET", srv.URL+"/cassata/event/"+testApp+"/fail-body", http.StatusOK, &cev)
		if cev.EventID != "fail-body" || cev.Application != testApp || cev.EventStatus != "FAILED" || cev.HTTPMethod != "PUT" ||
			cev.DestinationURL != failed.URL || cev.EventJSON == nil || *cev.EventJSON != `{"order":2}` ||
			len(cev.EventLogs) != 1 || cev.EventLogs[0].HTTPResponseCode != 404 || cev.EventLogs[0].LastUpdated == 0 {
			t.Errorf("/cassata/event of fail-body from the archive: %+v", cev)
		}
		callJSON(t, "GET", srv.URL+"/cassata/event/"+testApp+"/never-was", http.StatusNotFound, nil)

		// v1 get.
		var v api.EventView
		callJSON(t, "GET", srv.URL+"/v1/events/"+testApp+"/done", http.StatusOK, &v)
		if v.Status != "COMPLETED" || len(v.History) != 1 || v.History[0].Code() != 200 || v.CreatedAt == "" {
			t.Errorf("GET /v1/events/.../done from the archive: %+v", v)
		}

		// Cancelling an archive-only event: 409 naming its status.
		var del struct{ Status, Message string }
		callJSON(t, "DELETE", srv.URL+"/cassata/delete/"+testApp+"/fail-body", http.StatusConflict, &del)
		if del.Status != "failed" || del.Message != "event in status FAILED. Cannot be deleted." {
			t.Errorf("DELETE /cassata/delete of an archived FAILED event: %+v", del)
		}
		callJSON(t, "GET", srv.URL+"/cassata/delete/"+testApp+"/done", http.StatusConflict, &del)
		if del.Message != "event in status COMPLETED. Cannot be deleted." {
			t.Errorf("GET /cassata/delete of an archived COMPLETED event: %+v", del)
		}
		callJSON(t, "DELETE", srv.URL+"/v1/events/"+testApp+"/fail-body", http.StatusConflict, nil)
		callJSON(t, "DELETE", srv.URL+"/cassata/delete/"+testApp+"/never-was", http.StatusNotFound, nil)

		// Retrying a COMPLETED archive-only event: 409, and it stays out of Redis.
		callJSON(t, "POST", srv.URL+"/v1/events/"+testApp+"/done/retry", http.StatusConflict, nil)
		if _, err := e.store.Get(ctx, testApp, "done"); !isNotFound(err) {
			t.Errorf("after a refused retry, done in Redis: %v", err)
		}
		callJSON(t, "POST", srv.URL+"/v1/events/"+testApp+"/never-was/retry", http.StatusNotFound, nil)

		// Retrying the FAILED ones brings them back: PENDING (no worker
		// runs, so the answer cannot race with a delivery), then delivered
		// again as attempt 1 with the same request, history kept.
		w.stop()
		retries := []struct {
			ev   *scheduler.Event
			body string
		}{{failed, `{"order":2}`}, {empty, ""}}
		for _, c := range retries {
			id := c.ev.ID
			var r api.EventView
			callJSON(t, "POST", srv.URL+"/v1/events/"+testApp+"/"+id+"/retry", http.StatusOK, &r)
			if r.Status != "PENDING" || r.Attempts != 0 || len(r.History) != 1 || r.History[0].Code() != 404 {
				t.Errorf("retry %s: %+v, want PENDING with the earlier attempt in its history", id, r)
			}
			if r.Body == nil || *r.Body != c.body {
				t.Errorf("retry %s: body %v, want %q", id, r.Body, c.body)
			}
		}
		e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		for _, c := range retries {
			id := c.ev.ID
			arr := e.dest.waitArrivals(t, id, 2, 10*time.Second)
			if a := arr[1]; a.Attempt != 1 || string(a.Body) != c.body || a.Method != c.ev.Method && c.ev.Method != "" {
				t.Errorf("%s delivered again: attempt %d, method %s, body %q; want attempt 1, body %q", id, a.Attempt, a.Method, a.Body, c.body)
			}
			got := e.waitStatus(id, scheduler.StatusCompleted, 10*time.Second)
			if len(got.History) != 2 || got.History[0].StatusCode != 404 || got.History[1].StatusCode != 200 || got.Attempts != 1 {
				t.Errorf("%s after the retry: attempts %d, history %+v", id, got.Attempts, got.History)
			}
		}

		// The retried runs continue the same archived runs: no new rows,
		// the second attempts added; after expiring again, the archive
		// shows them COMPLETED with both attempts.
		e.waitArchived(3, 5, 10*time.Second)
		for _, id := range []string{"fail-body", "fail-nobody"} {
			e.waitGoneFromRedis(testApp, id, 10*time.Second)
			ev, err := e.sched.Get(ctx, testApp, id)
			if err != nil {
				t.Fatalf("Get %s: %v", id, err)
			}
			if ev.Status != scheduler.StatusCompleted || ev.Attempts != 1 || len(ev.History) != 2 ||
				ev.History[0].StatusCode != 404 || ev.History[1].StatusCode != 200 {
				t.Errorf("%s from the archive after its retry: %s, attempts %d, history %+v", id, ev.Status, ev.Attempts, ev.History)
			}
		}
		runs := archivedRuns(t, db, testApp)
		for _, id := range []string{"fail-body", "fail-nobody"} {
			if r := runs[id]; r.status != scheduler.StatusCompleted || r.history != 2 {
				t.Errorf("archived run of %s: %+v", id, r)
			}
		}
	})
}

func isNotFound(err error) bool { return errors.Is(err, scheduler.ErrNotFound) }

// TestRetryFromArchiveIsLiveInTheArchive: a FAILED event only the archive
// has is retried while no worker runs: until it is delivered it is PENDING
// everywhere — in Redis, in the archive's row (status, due time, attempts,
// no finish time) and so in a status=PENDING search — and its updated time
// is the retry's.
func TestRetryFromArchiveIsLiveInTheArchive(t *testing.T) {
	t.Parallel()
	forEachArchive(t, func(t *testing.T, db *archive.Store) {
		e := setupArchive(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
			http.Error(w, "no", http.StatusBadRequest)
		}, db, redisstore.Config{Retention: time.Second})
		w := e.startWorker(nil, worker.Config{PollInterval: 50 * time.Millisecond})
		e.startArchiver(nil, nil, worker.ArchiverConfig{})
		ev := e.event("revive")
		ev.Body = []byte("payload")
		e.schedule(ev)
		e.waitStatus("revive", scheduler.StatusFailed, 10*time.Second)
		e.waitArchived(1, 1, 10*time.Second)
		e.waitGoneFromRedis(testApp, "revive", 10*time.Second)
		w.stop()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		before := time.Now().Add(-time.Millisecond)
		got, err := e.sched.Retry(ctx, testApp, "revive")
		if err != nil {
			t.Fatalf("Retry: %v", err)
		}
		if got.Status != scheduler.StatusPending || got.UpdatedAt.Before(before.Truncate(time.Millisecond)) || got.DueAt.Before(before.Truncate(time.Millisecond)) {
			t.Errorf("retried from the archive: status %s, updated %s, due %s; want PENDING, both at or after %s",
				got.Status, got.UpdatedAt, got.DueAt, before)
		}
		e.waitArchived(1, 1, 10*time.Second)
		row, err := db.Get(ctx, testApp, "revive")
		if err != nil {
			t.Fatalf("archive Get: %v", err)
		}
		if row.Status != scheduler.StatusPending || row.Attempts != 0 || !row.FinishedAt.IsZero() || row.DueAt.Before(before.Truncate(time.Millisecond)) {
			t.Errorf("archive row after the retry: status %s, attempts %d, finished %s, due %s; want PENDING, 0, none, due now",
				row.Status, row.Attempts, row.FinishedAt, row.DueAt)
		}
		pend := e.searchAll(scheduler.SearchQuery{App: testApp, Status: scheduler.StatusPending})
		if len(pend) != 1 || pend[0].ID != "revive" {
			t.Errorf("status=PENDING search: %v, want the retried event", idsOf(pend))
		}
		if failed := e.searchAll(scheduler.SearchQuery{App: testApp, Status: scheduler.StatusFailed}); len(failed) != 0 {
			t.Errorf("status=FAILED search: %v, want nothing", idsOf(failed))
		}
	})
}
