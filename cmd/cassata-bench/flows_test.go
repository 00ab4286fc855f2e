package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlowsBindHold(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 events/s over 100 keys: each key's events are 100 ms apart, so
	// 10 permits are out at once only if each lasts over 1 s.
	if got := flowsBindHold(o); got != time.Second {
		t.Errorf("flowsBindHold(defaults) = %v, want 1s", got)
	}
	legend := flowsLegend(o)
	for _, want := range []string{"100 keys (parallelism 10 each, no rate", "10 events/s, due 100ms apart",
		"held over 1s", "allow 1,000 in flight, more than the workers' 1 × 100 slots"} {
		if !strings.Contains(legend, want) {
			t.Errorf("legend lacks %q:\n%s", want, legend)
		}
	}
	if strings.Contains(legend, "WARNING") {
		t.Errorf("the defaults should not warn:\n%s", legend)
	}

	o.steady, o.flowKeys, o.flowParallelism = 100_000, 10, 2 // 10,000/s: 2 ms per key's gap
	if got := flowsBindHold(o); got != 2*time.Millisecond {
		t.Errorf("flowsBindHold = %v, want 2ms", got)
	}
	if !strings.Contains(flowsLegend(o), "WARNING") {
		t.Errorf("a rate at which the limits may bind should warn")
	}
}

func TestFlowsOrder(t *testing.T) {
	t.Parallel()
	none, keyed := &flowPhase{name: "none"}, &flowPhase{name: "keyed"}
	for run, first := range map[int]*flowPhase{1: none, 2: keyed, 3: none, 4: keyed} {
		got := flowsOrder(run, none, keyed)
		if len(got) != 2 || got[0] != first || got[0] == got[1] {
			t.Errorf("flowsOrder(%d) = %s, %s", run, got[0].name, got[1].name)
		}
	}
}

func TestFlowRow(t *testing.T) {
	t.Parallel()
	first := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	p := &flowPhase{name: flowsKeysRow(100), app: appFlowsKeys, keys: 100, firstDue: first, errors: 1,
		due: map[string]time.Time{
			"flowskeys/a": first,
			"flowskeys/b": first.Add(time.Second),
		}}
	p.cpuOK = true
	p.held = flowSample{Held: 3, Permits: 10, ok: true}
	p.cpu = cpuSample{Worker: 300 * time.Microsecond, Server: 20 * time.Microsecond, Redis: 100 * time.Microsecond,
		Sink: 60 * time.Microsecond}
	arrivals := []arrival{
		{At: first.Add(2 * time.Millisecond), App: appFlowsKeys, ID: "a"},
		{At: first.Add(time.Second + 4*time.Millisecond), App: appFlowsKeys, ID: "b"},
		{At: first.Add(time.Second), App: appFlowsNone, ID: "a"}, // the other run's
	}
	r := flowRow(p, without(arrivals, appFlowsNone), time.Minute)
	if r.Workload != "flows steady: 100 keys" {
		t.Errorf("name = %q", r.Workload)
	}
	if r.LateP50 != some(2) || r.LateMax != some(4) || r.Early != some(0) || r.Missing != some(0) ||
		r.Dups != some(0) || r.Errors != some(1) {
		t.Errorf("row = %+v", r)
	}
	if want := 2 / 1.004; r.DeliveriesPerSec.v < want-1e-9 || r.DeliveriesPerSec.v > want+1e-9 {
		t.Errorf("deliveries/s = %v, want %v (2 over first due → last arrival)", r.DeliveriesPerSec.v, want)
	}
	if r.WorkerCPU != some(150) || r.ServerCPU != some(10) || r.RedisCPU != some(50) || r.SinkCPU != some(30) {
		t.Errorf("CPU per delivery = %+v, %+v, %+v, %+v; want 150, 10, 50, 30 µs",
			r.WorkerCPU, r.ServerCPU, r.RedisCPU, r.SinkCPU)
	}
	if r.FlowHeldMax != some(3) || r.FlowPermitsMax != some(10) {
		t.Errorf("held, permits = %+v, %+v; want 3, 10", r.FlowHeldMax, r.FlowPermitsMax)
	}

	// Without the filter, the other run's arrival is an error.
	if r := flowRow(p, arrivals, time.Minute); r.Errors != some(2) {
		t.Errorf("an arrival of another app should count as an error: %+v", r.Errors)
	}
}

func TestFlowsRatioLine(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := flowsRatioLine(o, [][]row{{{Workload: "steady"}}}); got != "" {
		t.Errorf("no flows rows: %q", got)
	}
	pair := func(p99None, p99Keys, cpuNone, cpuKeys float64) []row {
		return []row{
			{Workload: "burst"},
			{Workload: flowsNoneRow, LateP50: some(1), LateP99: some(p99None), WorkerCPU: some(cpuNone), RedisCPU: some(50)},
			{Workload: "flows steady: 100 keys", LateP50: some(1), LateP99: some(p99Keys), WorkerCPU: some(cpuKeys),
				RedisCPU: some(60)},
		}
	}
	one := flowsRatioLine(o, [][]row{pair(10, 11, 100, 120)})
	want := "flows steady, 100 keys / none: late p50 1.00; late p99 1.10; worker CPU/delivery 1.20; " +
		"Redis CPU/delivery 1.20 (target: late p99 ≤ 1.10)"
	if one != want {
		t.Errorf("one run:\n got %q\nwant %q", one, want)
	}
	three := flowsRatioLine(o, [][]row{pair(10, 11, 100, 120), pair(8, 12, 100, 100), pair(12, 12, 100, 150)})
	// Medians: p99 none 10, keys 12 → 1.20.
	for _, w := range []string{"(ratio of the medians)", "late p99 1.20 (runs 1.10, 1.50, 1.00)",
		"worker CPU/delivery 1.20 (runs 1.20, 1.00, 1.50)"} {
		if !strings.Contains(three, w) {
			t.Errorf("three runs: %q lacks %q", three, w)
		}
	}
	if got := flowsRatioLine(o, [][]row{{{Workload: flowsNoneRow, LateP99: some(0)},
		{Workload: "flows steady: 100 keys", LateP99: some(3)}}}); !strings.Contains(got, "late p99 -") {
		t.Errorf("a zero denominator should print -: %q", got)
	}
}

// TestFlowRedisKey pins the layout the bench reads the held queues and
// permits from: store/redisstore/keys.go (flow, flowRun, flowQ).
func TestFlowRedisKey(t *testing.T) {
	t.Parallel()
	if got, want := flowRedisKey("bench1", appFlowsKeys, flowKeyName(7)), "bench1:{bench1:fl:flowskeys:k7}"; got != want {
		t.Errorf("flowRedisKey = %q, want %q", got, want)
	}
}
