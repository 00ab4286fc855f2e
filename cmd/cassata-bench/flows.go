package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/config"
)

// The flows-steady workload (API.md §9) measures what flow control costs an
// event that carries a flow key whose limits never hold it back: the steady
// workload (--steady events due evenly over --steady-span) runs twice in
// one deployment, once without flow keys (row "flows steady: none") and
// once with the events spread round-robin over --flow-keys keys (100), each
// given {"parallelism": --flow-parallelism} (10) and no rate through
// PUT /v1/flows before the run and deleted after it (row "flows steady: 100
// keys"). Every keyed event then takes a permit before its request
// (flowacquire.lua) and releases it after (flowpump.lua), which is the
// overhead measured.
//
// The rate is chosen so the limits do not bind: key k gets every K-th event,
// so its events are due K × span / steady apart (100 ms at the defaults)
// and it has P permits in flight only if each is held longer than
// P × K × span / steady (1 s), while the sink answers at once. flowsLegend
// prints that figure and warns when it is short.
//
// Beside each row's lateness, the CPU time (user + system, /proc) of the
// workers, the server, Redis and the sink per delivery, from the first due
// time until the last delivery plus dupGrace, and a line of keys/none ratios. The order
// of the two runs alternates between --runs (odd runs: none first), so
// warm-up and the calibration backlog favour neither; the outbox is
// drained before each.

const (
	appFlowsNone = "flowsnone"
	appFlowsKeys = "flowskeys"

	// flowsNoneRow names the run without flow keys.
	flowsNoneRow = "flows steady: none"

	// flowConc is how many clients set or delete the flow keys at once.
	flowConc = 8

	// flowsBindWarn: when a key's permits would have to be held for less
	// than this to bind, the workload may measure throttling, not overhead.
	flowsBindWarn = 100 * time.Millisecond

	// flowSampleEvery is how often the bench reads the flow keys' held
	// queues and permits from Redis (one pipeline of ZCARDs) during a run.
	flowSampleEvery = 100 * time.Millisecond
)

// flowsKeysRow names the run with flow keys.
func flowsKeysRow(keys int) string { return "flows steady: " + formatInt(float64(keys)) + " keys" }

// flowKeyName names flow key k of the workload.
func flowKeyName(k int) string { return "k" + strconv.Itoa(k) }

// flowsBindHold is how long each of a key's permits must be held for its
// parallelism to hold an event back: its events are due
// keys × span / events apart, and P permits are out at once only when each
// lasts longer than P of those gaps.
func flowsBindHold(o options) time.Duration {
	return time.Duration(o.flowParallelism) * time.Duration(o.flowKeys) * o.steadySpan / time.Duration(o.steady)
}

// flowsLegend says what the flows-steady rows are and why the limits do
// not bind.
func flowsLegend(o options) string {
	perSec := float64(o.steady) / o.steadySpan.Seconds()
	conc := o.workerConcurrency
	if conc == 0 {
		conc = config.DefaultWorkerConcurrency
	}
	poolNote := ""
	if pool := o.workers * conc; pool < o.flowKeys*o.flowParallelism {
		poolNote = fmt.Sprintf("; all keys together allow %s in flight, more than the workers' %d × %d slots",
			formatInt(float64(o.flowKeys*o.flowParallelism)), o.workers, conc)
	}
	s := fmt.Sprintf("flows steady: the steady workload (%s events over %s, %s/s) twice in one deployment, "+
		"without flow keys and round-robin over %d keys (parallelism %d each, no rate; set by PUT /v1/flows "+
		"before the run), order alternating between runs; throughput = deliveries / (last arrival − first due); "+
		"CPU = user + system (/proc) from the first due time to the last delivery + %s, per delivery; "+
		"held max = most events the keys held back, permits max = most permits one key had out (Redis read every %s). "+
		"Not throttling: each key gets %s events/s, due %s apart, and reaches its parallelism only if each "+
		"permit is held over %s (the sink answers at once)%s, so the keys/none ratio is flow control's overhead",
		formatInt(float64(o.steady)), o.steadySpan, formatInt(perSec), o.flowKeys, o.flowParallelism, dupGrace, flowSampleEvery,
		strconv.FormatFloat(perSec/float64(o.flowKeys), 'g', 4, 64),
		(time.Duration(o.flowKeys) * o.steadySpan / time.Duration(o.steady)).Round(time.Microsecond),
		flowsBindHold(o).Round(time.Microsecond), poolNote)
	if flowsBindHold(o) < flowsBindWarn {
		s += fmt.Sprintf(" — WARNING: under %s, the limits may bind at this rate: raise --flow-keys or "+
			"--flow-parallelism, or lower --steady", flowsBindWarn)
	}
	return s
}

// flowPhase is one of flows-steady's two steady runs.
type flowPhase struct {
	name string
	app  string
	keys int // 0: events without a flow key

	due      map[string]time.Time // "<app>/<id>" → due time of each created event
	firstDue time.Time
	errors   int       // creates refused, flow keys not set or not deleted
	cpu      cpuSample // spent over the measured window, when cpuOK
	cpuOK    bool
	held     flowSample // the most seen in one sample
}

// flowSample is what one look at the flow keys' state found.
type flowSample struct {
	Held    int // events held back, over every key
	Permits int // permits out, of the key with the most
	ok      bool
}

// runFlowsSteady runs the steady workload without and with flow keys in
// one deployment and returns the two rows (none first).
func runFlowsSteady(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	o := b.opts
	none := &flowPhase{name: flowsNoneRow, app: appFlowsNone}
	keyed := &flowPhase{name: flowsKeysRow(o.flowKeys), app: appFlowsKeys, keys: o.flowKeys}
	order := flowsOrder(b.runNo, none, keyed)
	slog.Info("flows steady", "first", order[0].name, "then", order[1].name,
		"keys", o.flowKeys, "parallelism", o.flowParallelism, "bind_hold", flowsBindHold(o))
	if flowsBindHold(o) < flowsBindWarn {
		slog.Warn("the flow keys' parallelism may bind at this rate: the workload measures throttling too",
			"permit_hold_to_bind", flowsBindHold(o))
	}

	for _, p := range order {
		if err := b.settle(ctx, d, "the previous run"); err != nil {
			return nil, err
		}
		if p.keys > 0 {
			refused, err := b.setFlows(ctx, d, p.app, p.keys, o.flowParallelism)
			p.errors += refused
			if err != nil {
				return nil, err
			}
		}
		if err := b.flowSteadyPhase(ctx, d, p); err != nil {
			return nil, err
		}
		if p.keys > 0 {
			refused, err := b.deleteFlows(ctx, d, p.app, p.keys)
			p.errors += refused
			if err != nil {
				return nil, err
			}
		}
	}

	// Both rows from the final record, so a late duplicate of the first
	// run is counted; each ignores the other run's arrivals.
	arrivals := b.sink.snapshot()
	rows := []row{flowRow(none, without(arrivals, keyed.app), o.deadline),
		flowRow(keyed, without(arrivals, none.app), o.deadline)}
	slog.Info("flows steady: keys / none (target: late p99 within 10%)", "keys", o.flowKeys,
		"late_p50_ratio", ratioText(rows[1].LateP50, rows[0].LateP50),
		"late_p99_ratio", ratioText(rows[1].LateP99, rows[0].LateP99),
		"worker_cpu_ratio", ratioText(rows[1].WorkerCPU, rows[0].WorkerCPU),
		"redis_cpu_ratio", ratioText(rows[1].RedisCPU, rows[0].RedisCPU))
	return rows, nil
}

// flowsOrder is the order of the two runs in run number run (1-based):
// none first in odd runs, keyed first in even ones.
func flowsOrder(run int, none, keyed *flowPhase) []*flowPhase {
	if run%2 == 0 {
		return []*flowPhase{keyed, none}
	}
	return []*flowPhase{none, keyed}
}

// flowRow turns a run's arrivals into its report row.
func flowRow(p *flowPhase, arrivals []arrival, deadline time.Duration) row {
	st := analyzeArrivals(p.app, p.due, arrivals, deadline)
	if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		slog.Debug("lateness by second of the run (p50/max ms)", "run", p.name,
			"seconds", latenessBySecond(p.due, arrivals, p.firstDue))
	}
	r := deliveryRow(p.name, st, p.errors)
	if span := st.LastArrival.Sub(p.firstDue); st.Delivered > 0 && span > 0 {
		r.DeliveriesPerSec = some(float64(st.Delivered) / span.Seconds())
	}
	if p.held.ok {
		r.FlowHeldMax = some(float64(p.held.Held))
		r.FlowPermitsMax = some(float64(p.held.Permits))
	}
	if p.cpuOK {
		r.setCPU(p.cpu, st.Delivered)
	}
	return r
}

// without returns the arrivals not of app.
func without(arrivals []arrival, app string) []arrival {
	out := make([]arrival, 0, len(arrivals))
	for _, a := range arrivals {
		if a.App != app {
			out = append(out, a)
		}
	}
	return out
}

// flowSteadyPhase runs the steady workload's events of p.app (over p.keys
// flow keys, when set) and records their due times and the CPU the
// workers and Redis spent from the first due time to the end.
func (b *bench) flowSteadyPhase(ctx context.Context, d *deployment, p *flowPhase) error {
	n := b.opts.steady
	lead, err := b.leadTime(ctx, d, n)
	if err != nil {
		return err
	}
	first := time.Now().Add(lead).Truncate(time.Millisecond)
	step := b.opts.steadySpan / time.Duration(n)
	dueAt := func(i int) time.Time { return first.Add(time.Duration(i) * step).Truncate(time.Millisecond) }
	var flowKey func(int) string
	if p.keys > 0 {
		flowKey = func(i int) string { return flowKeyName(i % p.keys) }
	}

	window := b.cpuFrom(d, p.name, first)
	defer window.cancel()
	stopProfile := b.profileFrom(ctx, d, profileName.Replace(p.name), first, b.opts.steadySpan)
	// Both runs sample the keyed run's keys (absent in the other run), so
	// the sampling costs them the same.
	sctx, stopSampling := context.WithCancel(ctx)
	samples := make(chan flowSample, 1)
	go func() { samples <- b.sampleFlows(sctx, d.ns, appFlowsKeys, b.opts.flowKeys, first) }()

	due, res, err := b.createDueKeyed(ctx, d, p.app, n, dueAt, flowKey)
	if err == nil {
		err = b.waitDelivered(ctx, d, p.app, res.Created, dueAt(n-1))
	}
	if err == nil {
		err = sleep(ctx, dupGrace)
	}
	stopProfile()
	stopSampling()
	p.held = <-samples
	if err != nil {
		return err
	}
	p.cpu, p.cpuOK = window.end()
	p.due, p.firstDue, p.errors = due, first, p.errors+res.Rejected
	return nil
}

// flowKey is the Redis key of a flow key's record, as store/redisstore
// lays it out (keys.go): <ns>:{<ns>:fl:<app>:<key>}, its permits ":run"
// and its held events ":q".
func flowRedisKey(ns, app, key string) string { return ns + ":{" + ns + ":fl:" + app + ":" + key + "}" }

// sampleFlows reads, every flowSampleEvery from from until ctx ends, how
// many events the keys flow keys of app hold back and how many permits
// each has out, and returns the most seen in one sample (ok false when
// Redis could not be read).
func (b *bench) sampleFlows(ctx context.Context, ns, app string, keys int, from time.Time) flowSample {
	if sleep(ctx, time.Until(from)) != nil {
		return flowSample{}
	}
	var most flowSample
	tick := time.NewTicker(flowSampleEvery)
	defer tick.Stop()
	for {
		pipe := b.redis.client.Pipeline()
		held := make([]*redis.IntCmd, keys)
		run := make([]*redis.IntCmd, keys)
		for i := range keys {
			fk := flowRedisKey(ns, app, flowKeyName(i))
			held[i] = pipe.ZCard(ctx, fk+":q")
			run[i] = pipe.ZCard(ctx, fk+":run")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			if ctx.Err() == nil {
				slog.Warn("reading the flow keys failed", "err", err)
			}
			return most
		}
		cur := flowSample{ok: true}
		for i := range keys {
			cur.Held += int(held[i].Val())
			cur.Permits = max(cur.Permits, int(run[i].Val()))
		}
		most = flowSample{Held: max(most.Held, cur.Held), Permits: max(most.Permits, cur.Permits), ok: true}
		select {
		case <-ctx.Done():
			return most
		case <-tick.C:
		}
	}
}

// setFlows gives keys flow keys of app the parallelism par and no rate. It
// returns how many the server refused.
func (b *bench) setFlows(ctx context.Context, d *deployment, app string, keys, par int) (int, error) {
	res, err := d.api.sendAll(ctx, keys, flowConc, func(i int) (string, string, any) {
		return http.MethodPut, flowPath(app, flowKeyName(i)), map[string]any{"parallelism": par}
	}, func(status int) bool { return status == http.StatusOK })
	if err != nil {
		return 0, fmt.Errorf("set flow keys: %w", err)
	}
	logRefusals(app+" flow keys", res)
	if n, err := b.redis.client.Exists(ctx, flowRedisKey(d.ns, app, flowKeyName(0))).Result(); err == nil && n == 0 && res.Created > 0 {
		slog.Warn("the flow key's record is not where the bench looks: held and permit counts will read 0",
			"key", flowRedisKey(d.ns, app, flowKeyName(0)))
	}
	slog.Info("flow keys set", "workload", app, "keys", res.Created, "parallelism", par,
		"in", res.Elapsed.Round(time.Millisecond))
	return res.Rejected, nil
}

// deleteFlows deletes the keys flow keys of app.
func (b *bench) deleteFlows(ctx context.Context, d *deployment, app string, keys int) (int, error) {
	res, err := d.api.sendAll(ctx, keys, flowConc, func(i int) (string, string, any) {
		return http.MethodDelete, flowPath(app, flowKeyName(i)), nil
	}, func(status int) bool { return status == http.StatusOK })
	if err != nil {
		return 0, fmt.Errorf("delete flow keys: %w", err)
	}
	logRefusals(app+" flow key deletes", res)
	return res.Rejected, nil
}

func flowPath(app, key string) string {
	return "/v1/flows/" + url.PathEscape(app) + "/" + url.PathEscape(key)
}

// ratioText is x / y with two decimals, "-" when either is missing or y is 0.
func ratioText(x, y metric) string {
	if !x.ok || !y.ok || y.v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x.v/y.v)
}

// flowsRatioLine compares the keyed row with the none row: the ratio of
// the medians and, with several runs, each run's own ratio. It returns ""
// when the runs have no flows-steady rows.
func flowsRatioLine(o options, runs [][]row) string {
	keyedName := flowsKeysRow(o.flowKeys)
	var pairs [][2]row
	for _, rows := range runs {
		var none, keyed *row
		for i := range rows {
			switch rows[i].Workload {
			case flowsNoneRow:
				none = &rows[i]
			case keyedName:
				keyed = &rows[i]
			}
		}
		if none != nil && keyed != nil {
			pairs = append(pairs, [2]row{*none, *keyed})
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	var merged [2]row
	for j := range merged {
		var rs [][]row
		for _, p := range pairs {
			rs = append(rs, []row{p[j]})
		}
		merged[j] = mergeRuns(rs)[0]
	}
	var parts []string
	for _, c := range []struct {
		name string
		get  func(*row) *metric
	}{
		{"late p50", func(r *row) *metric { return &r.LateP50 }},
		{"late p99", func(r *row) *metric { return &r.LateP99 }},
		{"worker CPU/delivery", func(r *row) *metric { return &r.WorkerCPU }},
		{"Redis CPU/delivery", func(r *row) *metric { return &r.RedisCPU }},
	} {
		s := c.name + " " + ratioText(*c.get(&merged[1]), *c.get(&merged[0]))
		if len(pairs) > 1 {
			each := make([]string, len(pairs))
			for i := range pairs {
				each[i] = ratioText(*c.get(&pairs[i][1]), *c.get(&pairs[i][0]))
			}
			s += " (runs " + strings.Join(each, ", ") + ")"
		}
		parts = append(parts, s)
	}
	head := "flows steady, " + formatInt(float64(o.flowKeys)) + " keys / none"
	if len(pairs) > 1 {
		head += " (ratio of the medians)"
	}
	return head + ": " + strings.Join(parts, "; ") + " (target: late p99 ≤ 1.10)"
}

// latenessBySecond sums up the first arrivals of due's events by the second
// of the run (from first) they were due in: "p50/max" in ms, for -v, to
// tell a queue that builds up from a slow start.
func latenessBySecond(due map[string]time.Time, arrivals []arrival, first time.Time) string {
	seen := map[string]bool{}
	var buckets [][]time.Duration
	for _, a := range arrivals {
		k := a.key()
		d, ok := due[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		i := max(0, int(d.Sub(first)/time.Second))
		for len(buckets) <= i {
			buckets = append(buckets, nil)
		}
		buckets[i] = append(buckets[i], a.At.Sub(d))
	}
	parts := make([]string, len(buckets))
	for i, b := range buckets {
		slices.Sort(b)
		parts[i] = fmt.Sprintf("%.0f/%.0f", ms(percentile(b, 50)), ms(percentile(b, 100)))
	}
	return strings.Join(parts, " ")
}
