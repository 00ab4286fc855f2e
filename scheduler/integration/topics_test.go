package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/testbin"
	"github.com/cassata/cassata/internal/testproc"
)

// Topics through real processes (API.md §7): subscriptions and messages go
// through a `cassata server`'s HTTP API, `cassata worker` processes fan the
// messages out, and destinations in the test process receive them.

// apiClient is the client of the JSON API in the topic tests.
var apiClient = &http.Client{Timeout: 30 * time.Second, Transport: ownTransport()}

// apiDo sends method u with body (nil: none; else JSON) and returns the
// status code and the answer.
func apiDo(t testing.TB, method, u string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// apiJSON sends a request, checks the status and decodes the answer into out (nil: not).
func apiJSON(t testing.TB, method, u string, body any, want int, out any) {
	t.Helper()
	code, b := apiDo(t, method, u, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, u, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, u, b, err)
		}
	}
}

// msgDelivery is one of a message's deliveries or rollbacks.
type msgDelivery struct {
	Subscription string `json:"subscription"`
	EventID      string `json:"event_id"`
	Status       string `json:"status"`
	Attempts     int    `json:"attempts"`
}

// msgView is a message as GET /v1/messages/{app}/{id} shows it.
type msgView struct {
	App          string        `json:"app"`
	ID           string        `json:"id"`
	Topic        string        `json:"topic"`
	Mode         string        `json:"mode"`
	Status       string        `json:"status"`
	Deliveries   []msgDelivery `json:"deliveries"`
	Rollbacks    []msgDelivery `json:"rollbacks"`
	FilterErrors []struct {
		Subscription string `json:"subscription"`
		Error        string `json:"error"`
	} `json:"filter_errors"`
}

// eventView is an event as the v1 API shows it (the fields the tests read).
type eventView struct {
	App      string         `json:"app"`
	ID       string         `json:"id"`
	Status   string         `json:"status"`
	Attempts int            `json:"attempts"`
	History  []historyEntry `json:"history"`
}

// historyEntry is one attempt of an event's history.
type historyEntry struct {
	Attempt    int     `json:"attempt"`
	StatusCode *int    `json:"status_code"`
	Error      *string `json:"error"`
}

// leaseExpired reports whether an attempt of the event ended with its lease expired.
func (ev eventView) leaseExpired() bool {
	return slices.ContainsFunc(ev.History, func(h historyEntry) bool {
		return h.Error != nil && strings.Contains(*h.Error, "lease expired")
	})
}

// subscribe creates or replaces a subscription with PUT.
func subscribe(t testing.TB, base, app, id string, sub map[string]any) {
	t.Helper()
	body := map[string]any{"topic": "orders"}
	for k, v := range sub {
		body[k] = v
	}
	apiJSON(t, http.MethodPut, base+"/v1/subscriptions/"+app+"/"+id, body, http.StatusOK, nil)
}

// getMessage reads a message.
func getMessage(t testing.TB, base, app, id string) msgView {
	t.Helper()
	var m msgView
	apiJSON(t, http.MethodGet, base+"/v1/messages/"+app+"/"+url.PathEscape(id), nil, http.StatusOK, &m)
	return m
}

// getEvent reads an event.
func getEvent(t testing.TB, base, app, id string) eventView {
	t.Helper()
	var ev eventView
	apiJSON(t, http.MethodGet, base+"/v1/events/"+app+"/"+url.PathEscape(id), nil, http.StatusOK, &ev)
	return ev
}

// waitMessage waits until the message is in status and returns it; seen
// (when not nil) collects every status it was read in on the way.
func waitMessage(t testing.TB, base, app, id, status string, timeout time.Duration, seen map[string]bool) msgView {
	t.Helper()
	var m msgView
	waitFor(t, timeout, func() string {
		m = getMessage(t, base, app, id)
		if seen != nil {
			seen[m.Status] = true
		}
		if m.Status == status {
			return ""
		}
		return fmt.Sprintf("message %s is %s (deliveries %+v, rollbacks %+v), want %s", id, m.Status, m.Deliveries, m.Rollbacks, status)
	})
	return m
}

// searchEvents pages through GET /v1/events with the query and returns every event.
func searchEvents(t testing.TB, base string, kv ...string) []eventView {
	t.Helper()
	var out []eventView
	cursor := ""
	for {
		var page struct {
			Events     []eventView `json:"events"`
			NextCursor *string     `json:"next_cursor"`
		}
		apiJSON(t, http.MethodGet, base+"/v1/events?"+query(append(slices.Clone(kv), "limit", "500", "cursor", cursor)...), nil, http.StatusOK, &page)
		out = append(out, page.Events...)
		if page.NextCursor == nil || *page.NextCursor == "" {
			return out
		}
		cursor = *page.NextCursor
	}
}

// topicProcs starts one server and n workers on the env's Redis, all on
// one SQLite archive (so the server's search sees what the workers
// archive), with extra environment settings for the workers; it returns
// the server's base URL, the workers and the archive's setting
// (CASSATA_ARCHIVE_DSN=...) for more processes.
func topicProcs(t *testing.T, e *env, n int, workerEnv ...string) (string, []*cassataProcess, string) {
	t.Helper()
	archive := "CASSATA_ARCHIVE_DSN=sqlite://" + filepath.Join(t.TempDir(), "archive.db")
	srv := startCassata(t, e, "server", archive)
	var workers []*cassataProcess
	for range n {
		workers = append(workers, startCassata(t, e, "worker", append([]string{archive}, workerEnv...)...))
	}
	srv.waitReady(t, 30*time.Second)
	for _, w := range workers {
		w.workerID(t)
	}
	return srv.baseURL(t), workers, archive
}

// startDev starts `cassata dev` (embedded Redis, its own SQLite archive)
// on a free loopback port and returns its base URL once it is ready.
func startDev(t *testing.T) *cassataProcess {
	t.Helper()
	bin, err := testbin.Shared()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CASSATA_") {
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	// dev logs text by default; the tests read the JSON lines.
	p := &cassataProcess{mode: "dev", Proc: testproc.StartT(t, testproc.Config{
		Name:          "dev process",
		Path:          bin,
		Args:          []string{"dev", "--listen", "127.0.0.1:0"},
		Env:           append(env, "CASSATA_LOG_LEVEL=info", "CASSATA_LOG_FORMAT=json", "CASSATA_ARCHIVE_DSN=sqlite://"+filepath.Join(dir, "dev.db")),
		Dir:           dir,
		KillOnCleanup: true,
	})}
	p.waitReady(t, 30*time.Second)
	return p
}

// TestTopicsThroughProcesses: subscriptions and a message through the HTTP
// API of a server process, fanned out by two worker processes on a real
// redis-server, and the same through `cassata dev`: the message reaches
// COMPLETED with exactly the deliveries whose filters match (in the switch
// service's notation), each destination gets one request with the topic
// headers, a delivery is an ordinary event, the message is listed, and a
// message not fanned out yet can be cancelled once.
func TestTopicsThroughProcesses(t *testing.T) {
	t.Parallel()
	t.Run("server and workers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		base, _, _ := topicProcs(t, e, 2)
		topicsFlow(t, base)
	})
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		topicsFlow(t, startDev(t).baseURL(t))
	})
}

// topicsFlow runs the topic checks against a running API at base.
func topicsFlow(t *testing.T, base string) {
	start := time.Now()
	const app = testApp
	dests := map[string]*destination{}
	for _, s := range []string{"s-either", "s-nested", "s-none"} {
		dests[s] = newDestination(t, nil)
	}
	subscribe(t, base, app, "s-either", map[string]any{"url": dests["s-either"].URL("/either"),
		"filter": `data["body"]["x"] == 1 and data["headers"]["y"] == "z" or data["special_key"] == "special value"`})
	subscribe(t, base, app, "s-nested", map[string]any{"url": dests["s-nested"].URL("/nested"),
		"filter":  `data["http_method"] == "post" and data["body"]["x"] and data["body"]["x"]["y"]`,
		"headers": map[string]string{"X-Sub": "nested"}})
	subscribe(t, base, app, "s-none", map[string]any{"url": dests["s-none"].URL("/none"),
		"filter": `data["body"]["x"] == 2`})
	// Another topic's subscription never sees the message.
	subscribe(t, base, app, "s-other-topic", map[string]any{"topic": "refunds", "url": dests["s-none"].URL("/other")})

	const msgID = "order-1"
	var pub msgView
	apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
		"app": app, "topic": "orders", "id": msgID,
		"headers": map[string]string{"y": "z"},
		"body":    map[string]any{"x": map[string]any{"y": 1}, "special_key": "special value"},
	}, http.StatusCreated, &pub)
	if pub.ID != msgID || pub.Topic != "orders" || pub.Mode != "independent" {
		t.Fatalf("published %+v", pub)
	}

	m := waitMessage(t, base, app, msgID, "COMPLETED", 20*time.Second, nil)
	t.Logf("message COMPLETED %s after the subscriptions were created", time.Since(start))
	var subs []string
	for _, d := range m.Deliveries {
		subs = append(subs, d.Subscription)
		if d.EventID != msgID+"~"+d.Subscription || d.Status != "COMPLETED" || d.Attempts != 1 {
			t.Errorf("delivery %+v, want event %s~%s COMPLETED after 1 attempt", d, msgID, d.Subscription)
		}
	}
	if !slices.Equal(subs, []string{"s-either", "s-nested"}) {
		t.Errorf("deliveries to %v, want [s-either s-nested]", subs)
	}
	if len(m.FilterErrors) != 0 || len(m.Rollbacks) != 0 {
		t.Errorf("filter errors %+v, rollbacks %+v; want none", m.FilterErrors, m.Rollbacks)
	}

	for _, s := range []string{"s-either", "s-nested"} {
		arr := dests[s].all()
		if len(arr) != 1 {
			t.Errorf("%s received %d requests, want 1", s, len(arr))
			continue
		}
		a := arr[0]
		for h, want := range map[string]string{"Cassata-Topic": "orders", "Cassata-Message-Id": msgID,
			"Cassata-Subscription-Id": s, "Cassata-Event-Id": msgID + "~" + s, "y": "z"} {
			if got := a.Header.Get(h); got != want {
				t.Errorf("%s: header %s = %q, want %q", s, h, got, want)
			}
		}
		if a.Method != http.MethodPost || !strings.Contains(string(a.Body), `"special_key"`) {
			t.Errorf("%s: %s with body %s, want the message body POSTed", s, a.Method, a.Body)
		}
	}
	if got := dests["s-nested"].all(); len(got) == 1 && got[0].Header.Get("X-Sub") != "nested" {
		t.Errorf("s-nested: the subscription's header X-Sub is %q", got[0].Header.Get("X-Sub"))
	}
	if n := len(dests["s-none"].all()); n != 0 {
		t.Errorf("the non-matching subscriptions received %d requests", n)
	}

	// A delivery is an ordinary event.
	for _, s := range []string{"s-either", "s-nested"} {
		if ev := getEvent(t, base, app, msgID+"~"+s); ev.Status != "COMPLETED" || ev.Attempts != 1 || len(ev.History) != 1 {
			t.Errorf("event %s~%s: %+v, want COMPLETED after one attempt", msgID, s, ev)
		}
	}
	if code, b := apiDo(t, http.MethodGet, base+"/v1/events/"+app+"/"+msgID+"~s-none", nil); code != http.StatusNotFound {
		t.Errorf("the non-matching subscription's delivery: %d %s, want 404", code, b)
	}

	var list struct {
		Messages []msgView `json:"messages"`
	}
	apiJSON(t, http.MethodGet, base+"/v1/messages?"+query("app", app, "topic", "orders"), nil, http.StatusOK, &list)
	if len(list.Messages) != 1 || list.Messages[0].ID != msgID || list.Messages[0].Status != "COMPLETED" {
		t.Errorf("GET /v1/messages?topic=orders: %+v, want %s COMPLETED", list.Messages, msgID)
	}
	apiJSON(t, http.MethodGet, base+"/v1/messages?"+query("app", app, "topic", "refunds"), nil, http.StatusOK, &list)
	if len(list.Messages) != 0 {
		t.Errorf("GET /v1/messages?topic=refunds: %+v, want none", list.Messages)
	}

	// Cancelling a message before its fan-out, once.
	apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
		"app": app, "topic": "orders", "id": "order-later", "delay": "1h", "body": map[string]any{"x": 1},
	}, http.StatusCreated, nil)
	var cancelled msgView
	apiJSON(t, http.MethodDelete, base+"/v1/messages/"+app+"/order-later", nil, http.StatusOK, &cancelled)
	if cancelled.Status != "CANCELLED" {
		t.Errorf("cancelled message is %s, want CANCELLED", cancelled.Status)
	}
	if code, b := apiDo(t, http.MethodDelete, base+"/v1/messages/"+app+"/order-later", nil); code != http.StatusConflict {
		t.Errorf("second cancel: %d %s, want 409", code, b)
	}
	if code, b := apiDo(t, http.MethodDelete, base+"/v1/messages/"+app+"/"+msgID, nil); code != http.StatusConflict {
		t.Errorf("cancel after fan-out: %d %s, want 409", code, b)
	}
	if m := getMessage(t, base, app, "order-later"); m.Status != "CANCELLED" || len(m.Deliveries) != 0 {
		t.Errorf("cancelled message reads %+v", m)
	}
	t.Logf("flow took %s", time.Since(start))
}
