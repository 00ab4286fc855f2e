package integration

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/worker"
	"github.com/cassata/cassata/store/redisstore"
)

// unreachableArchive is an archive DSN nobody answers on (port 1 refuses
// connections; the MySQL driver connects lazily): a worker started with it
// delivers, but its archiver waits, so the outbox keeps every entry for the
// test to read.
const unreachableArchive = "mysql://cassata:cassata@127.0.0.1:1/cassata"

// TestPausedWorkerIsFenced freezes a `cassata worker` process (SIGSTOP)
// while its delivery is in flight, for longer than its lease. Another
// worker process recovers the event and delivers it again; then the first
// request completes (with a 500) and the frozen worker resumes (SIGCONT):
// its outcome must be refused by the lease check and recorded as a stale
// attempt, so the event stays COMPLETED, with one final outcome.
func TestPausedWorkerIsFenced(t *testing.T) {
	const (
		id         = "paused-1"
		visibility = 2 * time.Second
	)
	firstArrived := make(chan struct{})
	release := make(chan struct{})
	firstAnswered := make(chan struct{})
	var once sync.Once
	handle := func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.Attempt != 1 {
			ok(w, r, a) // the redelivery is answered at once
			return
		}
		once.Do(func() { close(firstArrived) })
		if blockUntil(r, release) != nil {
			return
		}
		// A late failure: were it not fenced, it would turn the event back to PENDING.
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "late failure")
		w.(http.Flusher).Flush()
		close(firstAnswered)
	}
	db := openArchive(t, "sqlite://"+filepath.Join(t.TempDir(), "archive.db"))
	ae := setupArchive(t, handle, db, redisstore.Config{})
	e := ae.env

	// Both workers run without a reachable archive, so the outbox keeps
	// every entry this test makes; it is archived in-process at the end.
	w1 := startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT="+visibility.String(), "CASSATA_ARCHIVE_DSN="+unreachableArchive)
	w1ID := w1.workerID(t)
	server := startCassata(t, e, "server")

	scheduled := time.Now()
	e.schedule(e.event(id))
	select {
	case <-firstArrived:
	case <-w1.Exited():
		t.Fatalf("worker 1 exited before delivering:\n%s", w1.Output())
	case <-time.After(15 * time.Second):
		t.Fatalf("first attempt never arrived; worker 1 output:\n%s", w1.Output())
	}
	arrived := time.Now()

	if err := w1.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() string {
		if s := procState(w1.Pid()); s != "T" {
			return fmt.Sprintf("worker 1 (pid %d) in state %q after SIGSTOP, want T", w1.Pid(), s)
		}
		return ""
	})
	stopped := time.Now()
	leaseDeadline := e.leaseDeadline(id) // no extension can move it now
	if ev := e.get(id); ev.Status != scheduler.StatusProcessing || ev.Attempts != 1 || ev.Worker != w1ID {
		t.Fatalf("while worker 1 is stopped: status %s, attempts %d, worker %q; want PROCESSING, 1, %q", ev.Status, ev.Attempts, ev.Worker, w1ID)
	}

	// Worker 2 starts only now, so worker 1 surely made the first claim.
	w2 := startWorkerProcess(t, e, "CASSATA_ARCHIVE_DSN="+unreachableArchive)
	w2ID := w2.workerID(t)
	arr := e.dest.waitArrivals(t, id, 2, 20*time.Second)
	redelivered := arr[1].At
	done := e.waitStatus(id, scheduler.StatusCompleted, 10*time.Second)
	completed := time.Now()
	if procState(w1.Pid()) != "T" {
		t.Fatalf("worker 1 is no longer stopped (state %q)", procState(w1.Pid()))
	}
	if len(done.History) != 2 {
		t.Fatalf("history before worker 1 resumes: %+v, want the expired lease and the redelivery", done.History)
	}
	reaped := done.History[0].AtTime()

	// The first request completes while worker 1 is still frozen; then it resumes.
	close(release)
	select {
	case <-firstAnswered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request was not answered: its connection closed early")
	}
	if err := w1.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	waitFor(t, 15*time.Second, func() string {
		if h := e.get(id).History; len(h) < 3 {
			return fmt.Sprintf("worker 1's late outcome not recorded yet; history %+v", h)
		}
		return ""
	})
	staleRecorded := time.Now()

	// Give worker 1 time to do anything else it might (retry, re-claim,
	// overwrite), then check that nothing changed.
	time.Sleep(3 * time.Second)
	got := e.get(id)
	if got.Status != scheduler.StatusCompleted || got.Attempts != 2 || got.LastStatusCode != 200 ||
		!got.UpdatedAt.Equal(done.UpdatedAt) || !got.FinishedAt.Equal(done.FinishedAt) {
		t.Errorf("after worker 1 resumed: status %s, attempts %d, last status code %d, updated %s, finished %s; "+
			"want COMPLETED, 2, 200, %s, %s as worker 2 left it",
			got.Status, got.Attempts, got.LastStatusCode, got.UpdatedAt, got.FinishedAt, done.UpdatedAt, done.FinishedAt)
	}
	if n := len(e.dest.of(id)); n != 2 {
		t.Errorf("%d deliveries, want 2 (worker 1 must not deliver again)", n)
	}
	if !w1.Running() || !w2.Running() {
		t.Errorf("a worker process exited: worker 1 running %v, worker 2 running %v", w1.Running(), w2.Running())
	}

	// The history as the API shows it: the expired lease of worker 1's
	// attempt, worker 2's delivery, then worker 1's late outcome, stale.
	var view api.EventView
	callJSON(t, http.MethodGet, server.baseURL(t)+"/v1/events/"+testApp+"/"+id, http.StatusOK, &view)
	if view.Status != string(scheduler.StatusCompleted) || view.Attempts != 2 || len(view.History) != 3 {
		t.Fatalf("GET: status %s, attempts %d, history %+v; want COMPLETED, 2, 3 lines", view.Status, view.Attempts, view.History)
	}
	h := view.History
	if h[0].Attempt != 1 || h[0].Worker != w1ID || h[0].ErrorText() == "" || h[0].Stale {
		t.Errorf("history[0] %+v: want attempt 1 of %s recovered after its lease expired", h[0], w1ID)
	}
	if h[1].Attempt != 2 || h[1].Worker != w2ID || h[1].Code() != 200 || h[1].Stale {
		t.Errorf("history[1] %+v: want attempt 2 of %s, 200", h[1], w2ID)
	}
	if h[2].Attempt != 1 || h[2].Worker != w1ID || !h[2].Stale {
		t.Errorf("history[2] %+v: want attempt 1 of %s marked stale", h[2], w1ID)
	}
	lateOutcome := fmt.Sprintf("status %d", h[2].Code())
	if h[2].Code() == 0 {
		// Worker 1 may see its lease ended (on its own clock, at once on
		// resuming) or lost before the response is read, and abandon the
		// delivery instead.
		lateOutcome = "abandoned: " + h[2].ErrorText()
		if msg := h[2].ErrorText(); !strings.Contains(msg, "lease lost") && !strings.Contains(msg, "lease expired") {
			t.Errorf("history[2] %+v: want status 500 or an abandoned delivery (lease lost, or expired on the worker's clock)", h[2])
		}
	} else if h[2].Code() != http.StatusInternalServerError {
		t.Errorf("history[2] %+v: want status 500", h[2])
	}

	// Exactly one final outcome in the outbox; the stale attempt went
	// there as an attempt entry, which leaves the run as it is.
	kinds := e.outboxKinds(id)
	if kinds[scheduler.RecordFinal] != 1 || kinds[scheduler.RecordAttempt] != 2 {
		t.Errorf("outbox entries of %s by kind: %v; want 1 final and 2 attempts (the expired lease, the stale outcome)", id, kinds)
	}
	// The archive gets one run, COMPLETED, with the three attempts.
	ae.startArchiver(nil, nil, worker.ArchiverConfig{})
	ae.waitArchived(1, 3, 15*time.Second)
	run := archivedRuns(t, db, testApp)[id]
	if run.status != scheduler.StatusCompleted || run.attempts != 2 || run.history != 3 {
		t.Errorf("archived run %+v: want COMPLETED after 2 attempts, with 3 history rows", run)
	}
	var staleRows int
	if err := db.DB().QueryRow("SELECT COUNT(*) FROM attempts WHERE event_id = ? AND stale <> 0 AND worker = ?", id, w1ID).Scan(&staleRows); err != nil || staleRows != 1 {
		t.Errorf("archive: %d stale attempts of worker 1 (err %v), want 1", staleRows, err)
	}
	e.assertNothingInFlight()

	t.Logf("worker 1 %s (visibility %s), worker 2 %s", w1ID, visibility, w2ID)
	t.Logf("first attempt arrived %s after scheduling; SIGSTOP confirmed %s later; lease deadline %s after the stop",
		arrived.Sub(scheduled).Round(time.Millisecond), stopped.Sub(arrived).Round(10*time.Microsecond), leaseDeadline.Sub(stopped).Round(time.Millisecond))
	t.Logf("reaped %s after the lease deadline; redelivered by worker 2 %s after the deadline (%s after the stop); COMPLETED seen %s after the stop",
		reaped.Sub(leaseDeadline).Round(time.Millisecond), redelivered.Sub(leaseDeadline).Round(time.Millisecond),
		redelivered.Sub(stopped).Round(time.Millisecond), completed.Sub(stopped).Round(time.Millisecond))
	t.Logf("worker 1 frozen %s; its late outcome (%s) refused and recorded stale %s after SIGCONT; status unchanged 3s later",
		resumed.Sub(stopped).Round(time.Millisecond), lateOutcome, staleRecorded.Sub(resumed).Round(time.Millisecond))
}

// memberPrefix returns an event's Redis member and the key prefix of its shard.
func (e *env) memberPrefix(id string) (member, prefix string) {
	member = testApp + "/" + id
	sh := int(crc32.ChecksumIEEE([]byte(member)) % uint32(e.store.Shards()))
	return member, fmt.Sprintf("%s:{%s:%d}", e.ns, e.ns, sh)
}

// leaseDeadline returns the lease deadline of a PROCESSING event.
func (e *env) leaseDeadline(id string) time.Time {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, prefix := e.memberPrefix(id)
	score, err := e.redis.Client().ZScore(ctx, prefix+":lease", m).Result()
	if err != nil {
		e.t.Fatalf("lease of %s: %v", m, err)
	}
	return time.UnixMilli(int64(score))
}

// outboxKinds counts an event's outbox records by kind: entries of its
// own, and its records in packed entries (a batch's creates or finals:
// lines, the first of each record its member).
func (e *env) outboxKinds(id string) map[scheduler.RecordKind]int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, prefix := e.memberPrefix(id)
	msgs, err := e.redis.Client().XRange(ctx, prefix+":out", "-", "+").Result()
	if err != nil && err != redis.Nil {
		e.t.Fatalf("outbox of %s: %v", m, err)
	}
	out := map[scheduler.RecordKind]int{}
	for _, msg := range msgs {
		k, _ := msg.Values["k"].(string)
		packed, _ := msg.Values["e"].(string)
		lines := strings.Split(strings.TrimSuffix(packed, "\n"), "\n")
		switch k {
		case "creates", "finals":
			per := map[string]int{"creates": 2, "finals": 4}[k]
			for i := 0; i+per <= len(lines); i += per {
				if lines[i] == m {
					out[scheduler.RecordKind(strings.TrimSuffix(k, "s"))]++
				}
			}
		default:
			if msg.Values["m"] == m {
				out[scheduler.RecordKind(k)]++
			}
		}
	}
	return out
}
