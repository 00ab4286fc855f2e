package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/redistest"
)

// TestFlowLimitsOnCluster: on a 3-master Redis Cluster, one server and two
// worker processes hold two keys to parallelism 2 and two keys to 10
// requests per second (keys in different slots, so on different masters
// as it falls), every event delivered once as attempt 1, none early; 40
// unlimited events beside them measure the run's delivery jitter.
func TestFlowLimitsOnCluster(t *testing.T) {
	t.Parallel()
	const (
		n        = 24
		parLimit = 2
		rate     = 10
		parHold  = 100 * time.Millisecond
	)
	c := redistest.StartCluster(t, 3)
	d := newFlowDest(t, func(w http.ResponseWriter, r *http.Request, a flowArrival) {
		if a.Key == "par-a" || a.Key == "par-b" {
			select {
			case <-time.After(parHold):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	f := startFlowFleet(t, c.Seeds(), true, "", 2)
	parKeys, rateKeys := []string{"par-a", "par-b"}, []string{"rate-a", "rate-b"}
	for _, k := range parKeys {
		f.putFlow(t, flowApp, k, flowLimits{Parallelism: ptr(parLimit)})
	}
	for _, k := range rateKeys {
		f.putFlow(t, flowApp, k, flowLimits{Rate: ptr(float64(rate))})
	}
	due := time.Now().Add(time.Second)
	evs := map[string][]flowEvent{}
	var all []flowEvent
	for _, k := range append(parKeys, rateKeys...) {
		evs[k] = d.batch(flowApp, k, k, n, func(int) time.Time { return due })
		all = append(all, evs[k]...)
	}
	// Unlimited events beside them show this run's delivery jitter.
	free := d.spreadEvents(flowApp, "free", "free", 40, due, 2*time.Second, 1)
	all = append(all, free...)
	f.create(t, all)
	owners := map[string]string{}
	for _, k := range append(parKeys, rateKeys...) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ns := f.opts.Namespace
		if node, err := c.KeyOwner(ctx, ns+":{"+ns+":fl:"+flowApp+":"+k+"}"); err == nil {
			owners[k] = node.Addr()
		}
		cancel()
	}
	t.Logf("the keys' masters: %v", owners)

	for _, k := range parKeys {
		got := d.waitKey(t, k, n, 30*time.Second)
		checkOnce(t, k, evs[k], got)
		most := checkParallel(t, k, got, parLimit)
		if m := d.maxInFlight(k); m != parLimit || most != parLimit {
			t.Errorf("key %s: at most %d in flight (counter %d), want exactly %d", k, most, m, parLimit)
		}
		t.Logf("key %s, parallelism %d: %d requests, at most %d in flight", k, parLimit, len(got), most)
	}
	freeGot := d.waitKey(t, "free", len(free), 30*time.Second)
	checkOnce(t, "unlimited", free, freeGot)
	late := lateness(t, "unlimited", free, freeGot)
	jitter := jitterOf(late)
	t.Logf("lateness of %d unlimited events: p50 %s, p99 %s, max %s", len(late), pct(late, 50), pct(late, 99), pct(late, 100))
	for _, k := range rateKeys {
		got := d.waitKey(t, k, n, 30*time.Second)
		checkOnce(t, k, evs[k], got)
		perSecond, spread := checkRate(t, k, got, rate, jitter)
		t.Logf("key %s, rate %d/s: %d starts over %s, at most %d in a 1 s window at the destination (jitter allowance %s)",
			k, rate, len(got), spread.Round(time.Millisecond), perSecond, jitter)
	}
	for _, k := range append(parKeys, rateKeys...) {
		f.checkAttempts(t, k, evs[k])
		waitFor(t, 5*time.Second, func() string {
			if st := f.getFlow(t, flowApp, k); st.InFlight != 0 || st.Held != 0 {
				return fmt.Sprintf("key %s after every delivery: %+v", k, st)
			}
			return ""
		})
	}
	f.checkRunning(t)
}
