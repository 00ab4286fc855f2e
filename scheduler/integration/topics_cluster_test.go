package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
)

// TestTopicsOnCluster: subscriptions of two applications and messages
// fanned out to 20 and 5 of them, through a server and a worker process on
// a 3-master Redis Cluster: every message COMPLETED, each subscriber
// reached once, and no process meets a CROSSSLOT error (topic keys and
// scripts stay within one slot each).
func TestTopicsOnCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	f := startFleet(t, fleetOptions{RedisURL: c.Seeds(), Cluster: true, Namespace: "topics", Servers: 1, Workers: 1,
		Env: []string{"CASSATA_POLL_INTERVAL=200ms"}})
	base := "http://" + f.servers[0].addr
	dest := newDestination(t, nil)
	started := time.Now()

	apps := map[string]int{"shop": 20, "blog": 5}
	for app, n := range apps {
		for i := range n {
			subscribe(t, base, app, fmt.Sprintf("s%02d", i), map[string]any{"url": dest.URL("/" + app)})
		}
		// Another topic of the same application is not part of the message.
		subscribe(t, base, app, "elsewhere", map[string]any{"topic": "refunds", "url": dest.URL("/" + app + "/refunds")})
	}
	for app, n := range apps {
		var list struct {
			Subscriptions []struct {
				ID string `json:"id"`
			} `json:"subscriptions"`
		}
		apiJSON(t, http.MethodGet, base+"/v1/subscriptions?"+query("app", app, "topic", "orders", "limit", "100"), nil, http.StatusOK, &list)
		if len(list.Subscriptions) != n {
			t.Errorf("%s lists %d subscriptions of orders, want %d", app, len(list.Subscriptions), n)
		}
	}
	for app := range apps {
		apiJSON(t, http.MethodPost, base+"/v1/messages", map[string]any{
			"app": app, "topic": "orders", "id": "m-" + app, "body": map[string]any{"app": app},
		}, http.StatusCreated, nil)
	}
	for app, n := range apps {
		m := waitMessage(t, base, app, "m-"+app, "COMPLETED", 30*time.Second, nil)
		if len(m.Deliveries) != n {
			t.Errorf("%s: %d deliveries, want %d", app, len(m.Deliveries), n)
		}
		for _, d := range m.Deliveries {
			if d.Status != "COMPLETED" || d.EventID != "m-"+app+"~"+d.Subscription {
				t.Errorf("%s: delivery %+v", app, d)
			}
		}
	}
	t.Logf("both messages COMPLETED %s after the first subscription was created", time.Since(started))

	got := map[string]int{}
	for _, a := range dest.all() {
		got[a.App+"/"+a.Header.Get("Cassata-Subscription-Id")]++
		if strings.HasSuffix(a.Path, "/refunds") {
			t.Errorf("a subscription of another topic received %s", a.ID)
		}
	}
	for app, n := range apps {
		for i := range n {
			if k := fmt.Sprintf("%s/s%02d", app, i); got[k] != 1 {
				t.Errorf("%s received %d requests, want 1", k, got[k])
			}
		}
	}
	for _, p := range f.all() {
		if out := p.Output(); strings.Contains(out, "CROSSSLOT") {
			t.Errorf("%s logged a CROSSSLOT error:\n%s", p.name, p.Tail(40))
		}
	}
}
