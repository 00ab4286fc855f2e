package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/redistest"
)

// TestRedisRestartWithPendingEvents schedules 10,000 events through a
// `cassata server` process, due 3-5s later, then restarts redis-server
// (AOF, appendfsync everysec) under the server and two `cassata worker`
// processes: once crashing it (kill -9) and holding it down until the
// first events are due, once stopping it cleanly. Every event is delivered,
// none early, and the same processes recover by themselves and are ready.
func TestRedisRestartWithPendingEvents(t *testing.T) {
	t.Run("kill9", func(t *testing.T) { testRedisRestart(t, true) })
	t.Run("sigterm", func(t *testing.T) { testRedisRestart(t, false) })
}

func testRedisRestart(t *testing.T, crash bool) {
	const (
		total    = 10_000
		batch    = api.MaxBatch
		firstDue = 3 * time.Second
		spread   = 2 * time.Second
	)
	e := setup(t, nil, redistest.WithAOF(), redistest.WithArgs("--appendfsync", "everysec"))
	server := startCassata(t, e, "server")
	workers := []*cassataProcess{
		startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT=10s"),
		startWorkerProcess(t, e, "CASSATA_VISIBILITY_TIMEOUT=10s"),
	}
	procs := append([]*cassataProcess{server}, workers...)
	pids := make([]int, len(procs))
	for i, p := range procs {
		p.waitReady(t, 30*time.Second)
		pids[i] = p.Pid()
	}
	base := server.baseURL(t)

	// 10 batches of 1000 over HTTP, due from base+3s to base+5s.
	start := time.Now()
	due := make(map[string]time.Time, total)
	client := &http.Client{Timeout: 30 * time.Second, Transport: ownTransport()}
	for b := 0; b < total; b += batch {
		evs := make([]v1Create, 0, batch)
		for i := b; i < b+batch; i++ {
			id := fmt.Sprintf("r-%05d", i)
			at := start.Add(firstDue + spread*time.Duration(i)/total).Truncate(time.Millisecond)
			due[id] = at
			evs = append(evs, v1Create{App: testApp, ID: id, URL: e.dest.URL("/hook/" + id), At: at.UTC().Format(time.RFC3339Nano)})
		}
		postBatch(t, client, base, evs)
	}
	scheduled := time.Now()
	if n := len(e.dest.all()); n != 0 {
		t.Logf("warning: %d deliveries already before the restart (scheduling took %s)", n, scheduled.Sub(start))
	}

	down := time.Now()
	if crash {
		e.redis.Kill()
		// Stay down until the first events are due, so some fall due during the outage.
		time.Sleep(time.Until(start.Add(firstDue + 500*time.Millisecond)))
	}
	e.redis.Restart(t) // a crashed server is started again; a running one is stopped cleanly first
	up := time.Now()

	waitFor(t, 60*time.Second, func() string {
		if n := len(e.dest.byID()); n < total {
			return fmt.Sprintf("%d of %d events delivered", n, total)
		}
		return ""
	})
	allDelivered := time.Now()

	arrivals := e.dest.all()
	first := arrivals[0].At
	var early, dups int
	var dupIDs []string
	for id, arr := range e.dest.byID() {
		d, ok := due[id]
		if !ok {
			t.Errorf("unknown event %q delivered", id)
			continue
		}
		if len(arr) > 1 {
			dups += len(arr) - 1
			dupIDs = append(dupIDs, id)
		}
		for _, a := range arr {
			if a.At.Before(d) {
				early++
				if early <= 5 {
					t.Errorf("%s delivered %s early", id, d.Sub(a.At))
				}
			}
			if a.At.Before(first) {
				first = a.At
			}
		}
	}
	if early > 0 {
		t.Errorf("%d deliveries before their due time", early)
	}

	// The same processes recovered by themselves and are ready again.
	for i, p := range procs {
		if !p.Running() || p.Pid() != pids[i] {
			t.Fatalf("%s process %d is gone (%s):\n%s", p.mode, pids[i], p.State(), p.Output())
		}
		p.waitReady(t, 15*time.Second)
		if code, body, err := p.probe(t, "/healthz"); err != nil || code != http.StatusOK {
			t.Errorf("%s /healthz: %d %s (err %v)", p.mode, code, body, err)
		}
	}
	waitFor(t, 20*time.Second, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := e.store.Live(ctx, time.Now())
		if err != nil || c.Pending != 0 || c.Processing != 0 {
			return fmt.Sprintf("live counts %+v (err %v), want nothing pending or processing", c, err)
		}
		return ""
	})
	e.assertNothingInFlight()

	how := "clean restart (SIGTERM)"
	if crash {
		how = "kill -9"
	}
	slices.Sort(dupIDs)
	t.Logf("%s: scheduled %d events in %s; redis down %s (from %s after scheduling began; first due at %s)",
		how, total, scheduled.Sub(start).Round(time.Millisecond), up.Sub(down).Round(time.Millisecond),
		down.Sub(start).Round(time.Millisecond), firstDue)
	t.Logf("first delivery %s after redis was back (%s after the first due time); all %d delivered %s after it was back; duplicates %d %v; early 0",
		first.Sub(up).Round(time.Millisecond), first.Sub(start.Add(firstDue)).Round(time.Millisecond), total,
		allDelivered.Sub(up).Round(time.Millisecond), dups, dupIDs[:min(len(dupIDs), 10)])
	t.Logf("server pid %d, worker pids %d %d: same processes, /readyz 200 after recovery", pids[0], pids[1], pids[2])
}

// v1Create is the body of a v1 create, due at an RFC 3339 time.
type v1Create struct {
	App string `json:"app"`
	ID  string `json:"id"`
	URL string `json:"url"`
	At  string `json:"at"`
}

// postBatch creates events with POST /v1/events/batch and fails the test
// unless every one is created (201).
func postBatch(t testing.TB, client *http.Client, base string, evs []v1Create) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"events": evs})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(base+"/v1/events/batch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/events/batch: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []api.BatchResult `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/events/batch: %d (decode: %v)", resp.StatusCode, err)
	}
	if len(out.Results) != len(evs) {
		t.Fatalf("batch of %d: %d results", len(evs), len(out.Results))
	}
	for i, r := range out.Results {
		if r.Status != http.StatusCreated {
			t.Fatalf("batch item %s: %d %+v, want 201", evs[i].ID, r.Status, r.Error)
		}
	}
}
