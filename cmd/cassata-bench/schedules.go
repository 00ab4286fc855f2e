package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The schedule workloads (API.md §8) measure recurring events. Every
// occurrence is an ordinary event with id "<schedule id>@<Unix ms>", due at
// that time, so the sink matches arrivals like events' and reads the due
// time from the id.
//
//   - schedules-minute: --schedules (100,000) schedules "* * * * *" are
//     created with scheduleConc clients (the creation rate is reported);
//     the first minute boundary M at least minuteLead after the last create
//     must deliver exactly one "@M" event per schedule, never early, and
//     M+1 again (the chain continues). Beforehand, in the same deployment,
//     the burst workload's measurement runs with as many one-off events due
//     at one instant: the full delivery speed the minute is compared with,
//     since a minute of 100,000 occurrences is a burst of 100,000 events
//     plus the work of advancing each schedule.
//   - schedules-idle: Redis used_memory before and after creating
//     --schedules schedules whose next occurrence is far away ("0 0 1 1 *")
//     gives the bytes of an idle schedule (record, index, pending
//     occurrence). The steady workload then runs in a fresh deployment
//     without schedules and in one with the idle schedules, comparing
//     lateness and the CPU time of the workers and Redis per delivery:
//     idle schedules should cost everything else nothing measurable.
//
// Both take minutes at the default size: schedules-minute waits for two
// minute boundaries.

const (
	appSchedMinute = "schedminute"
	appSchedIdle   = "schedidle"

	// scheduleConc is how many clients create schedules at once.
	scheduleConc = 16

	// everyMinute fires at each minute boundary; idleCron once a year
	// (midnight, 1 January), far beyond any run of the bench.
	everyMinute = "* * * * *"
	idleCron    = "0 0 1 1 *"

	// minuteLead is the least time between the last create and the measured
	// minute boundary, so that no create competes with its deliveries.
	minuteLead = 5 * time.Second

	// settleWait bounds the wait for the archiver to catch up between
	// phases, so one phase's archiving does not load the next.
	settleWait = 2 * time.Minute
)

// scheduleBody is the body of POST /v1/schedules.
type scheduleBody struct {
	App      string            `json:"app"`
	ID       string            `json:"id"`
	Cron     string            `json:"cron"`
	Timezone string            `json:"timezone"`
	URL      string            `json:"url"`
	Method   string            `json:"method"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
}

// newSchedule builds a schedule whose occurrences are the bench event of
// shape sh: POST to base (the sink) with the shape's query, headers and body.
func newSchedule(sh, app, id, cron, base string) scheduleBody {
	p := payloadFor(sh, base, app+"/"+id)
	return scheduleBody{App: app, ID: id, Cron: cron, Timezone: "UTC", URL: p.URL, Method: http.MethodPost,
		Headers: p.Headers, Body: p.Body}
}

// scheduleID names schedule i.
func scheduleID(i int) string { return "sc" + strconv.Itoa(i) }

// occurrenceSuffix ends the event id of every occurrence due at at.
func occurrenceSuffix(at time.Time) string { return "@" + strconv.FormatInt(at.UnixMilli(), 10) }

// occurrenceTime reads the due time from an occurrence's event id.
func occurrenceTime(eventID string) (time.Time, bool) {
	i := strings.LastIndexByte(eventID, '@')
	if i < 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(eventID[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true // UTC: usable as a map key beside other UTC times
}

// nextMinute is the first minute boundary at least lead after now.
func nextMinute(now time.Time, lead time.Duration) time.Time {
	t := now.Add(lead)
	m := t.Truncate(time.Minute)
	if m.Before(t) {
		m = m.Add(time.Minute)
	}
	return m
}

// expectOccurrences maps the sink key of each schedule's occurrence due at
// at ("<app>/<id>@<ms>") to at.
func expectOccurrences(app string, ids []string, at time.Time) map[string]time.Time {
	due := make(map[string]time.Time, len(ids))
	suffix := occurrenceSuffix(at)
	for _, id := range ids {
		due[app+"/"+id+suffix] = at
	}
	return due
}

// occurrenceArrivals returns the arrivals of app's occurrences due at at.
func occurrenceArrivals(arrivals []arrival, app string, at time.Time) []arrival {
	suffix := occurrenceSuffix(at)
	var out []arrival
	for _, a := range arrivals {
		if a.App == app && strings.HasSuffix(a.ID, suffix) {
			out = append(out, a)
		}
	}
	return out
}

// occurrencesByMinute counts app's arrivals per due time read from the id,
// and how many of them came before it (of any minute, not only the
// measured ones).
func occurrencesByMinute(arrivals []arrival, app string) (perDue map[time.Time]int, early int) {
	perDue = map[time.Time]int{}
	for _, a := range arrivals {
		if a.App != app {
			continue
		}
		due, ok := occurrenceTime(a.ID)
		if !ok {
			continue
		}
		perDue[due]++
		if a.At.Before(due) {
			early++
		}
	}
	return perDue, early
}

// createSchedules creates n schedules of app with cron, pointing at the
// sink, and returns the ids of those created and how that went.
func (b *bench) createSchedules(ctx context.Context, d *deployment, app, cron string, n int) ([]string, createResult, error) {
	slog.Info("creating schedules", "workload", app, "schedules", n, "cron", cron, "clients", scheduleConc)
	res, err := d.api.sendAll(ctx, n, scheduleConc, func(i int) (string, string, any) {
		return http.MethodPost, "/v1/schedules", newSchedule(b.opts.shape, app, scheduleID(i), cron, b.sink.URL())
	}, created)
	if err != nil {
		return nil, res, fmt.Errorf("create %s schedules: %w", app, err)
	}
	logRefusals(app+" schedules", res)
	slog.Info("schedules created", "workload", app, "schedules", res.Created, "in", res.Elapsed.Round(time.Millisecond),
		"creates_per_s", int(float64(res.Created)/res.Elapsed.Seconds()))
	ids := make([]string, 0, res.Created)
	for i, ok := range res.CreatedOK {
		if ok {
			ids = append(ids, scheduleID(i))
		}
	}
	return ids, res, nil
}

// settle waits (up to settleWait) until the archiver has taken every
// outbox entry, so the next phase does not share the CPU with its catch-up.
func (b *bench) settle(ctx context.Context, d *deployment, what string) error {
	streams, err := b.redis.outboxStreams(ctx, d.ns)
	if err != nil {
		return err
	}
	empty, st, err := b.waitOutboxEmpty(ctx, streams, time.Now().Add(settleWait))
	if err != nil {
		return err
	}
	if !empty {
		slog.Warn("outbox not drained; the next phase shares the CPU with the archiver", "after", what,
			"entries", st.Entries, "waited", settleWait)
	}
	return nil
}

// waitOccurrences waits until every schedule has delivered its occurrence
// due at at (want of them), or --deadline after at. Until at it only
// checks the deployment; then it watches the sink's distinct count of app,
// which is cheap, and counts the occurrences of at exactly (a walk over
// every id) only when that count says they may all be there, or once a
// second.
func (b *bench) waitOccurrences(ctx context.Context, d *deployment, app string, at time.Time, want int) error {
	slog.Info("waiting for the minute", "workload", app, "due", at.UTC().Format(time.TimeOnly),
		"in", time.Until(at).Round(time.Millisecond), "occurrences", want)
	for time.Now().Before(at) {
		if err := sleep(ctx, min(time.Second, time.Until(at))); err != nil {
			return err
		}
		if err := d.alive(); err != nil {
			return err
		}
	}
	suffix := occurrenceSuffix(at)
	deadline := at.Add(b.opts.deadline)
	base := b.sink.distinctCount(app) - b.sink.countSuffix(app, suffix)
	lastExact := time.Now()
	for time.Now().Before(deadline) {
		if b.sink.distinctCount(app)-base >= want || time.Since(lastExact) > time.Second {
			lastExact = time.Now()
			got := b.sink.countSuffix(app, suffix)
			if got >= want {
				return nil
			}
			// Others of app arrived meanwhile (an earlier minute's stragglers):
			// recount from here.
			base = b.sink.distinctCount(app) - got
			if err := d.alive(); err != nil {
				return err
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// minuteRow analyzes the occurrences due at at of every schedule in ids:
// exactly one each, never early; deliveries/s from at to the last arrival.
func minuteRow(name, app string, ids []string, at time.Time, arrivals []arrival) (row, deliveryStats) {
	st := analyze(expectOccurrences(app, ids, at), occurrenceArrivals(arrivals, app, at))
	r := deliveryRow(name, st, 0)
	if span := st.LastArrival.Sub(at); st.Delivered > 0 && span > 0 {
		r.DeliveriesPerSec = some(float64(st.Delivered) / span.Seconds())
	}
	return r, st
}

func logMinute(app, which string, at time.Time, st deliveryStats) {
	if st.Missing > 0 || st.Dups > 0 || st.Early > 0 {
		slog.Error("a schedule did not deliver exactly one occurrence, on time", "workload", app, "minute", which,
			"missing", st.Missing, "dups", st.Dups, "early", st.Early, "of", st.Expected)
	}
	slog.Info("minute delivered", "workload", app, "minute", which, "due", at.UTC().Format(time.TimeOnly),
		"occurrences", st.Delivered, "of", st.Expected, "dups", st.Dups, "early", st.Early,
		"late_p50", st.LateP50.Round(time.Millisecond), "late_p99", st.LateP99.Round(time.Millisecond),
		"late_max", st.LateMax.Round(time.Millisecond), "drained_in", st.LastArrival.Sub(at).Round(time.Millisecond))
}

// runSchedulesMinute measures the plain burst of --schedules one-off
// events, then creates --schedules schedules firing every minute and
// measures the next two minute boundaries' occurrences.
func runSchedulesMinute(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	const app = appSchedMinute
	n := b.opts.schedules

	slog.Info("plain burst first, for comparison", "workload", app, "events", n)
	plain, err := b.measureBurst(ctx, d, "schedules: plain burst", n)
	if err != nil {
		return nil, err
	}
	if err := b.settle(ctx, d, "the plain burst"); err != nil {
		return nil, err
	}

	ids, res, err := b.createSchedules(ctx, d, app, everyMinute, n)
	if err != nil {
		return nil, err
	}
	m := nextMinute(time.Now(), minuteLead)
	stopProfile := b.profileFrom(ctx, d, "schedules-minute", m, time.Duration(n/10_000+1)*time.Second)
	err = b.waitOccurrences(ctx, d, app, m, len(ids))
	stopProfile()
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, dupGrace); err != nil {
		return nil, err
	}
	_, st := minuteRow("", app, ids, m, b.sink.snapshot())
	logMinute(app, "M", m, st)

	m1 := m.Add(time.Minute)
	if err := b.waitOccurrences(ctx, d, app, m1, len(ids)); err != nil {
		return nil, err
	}
	if err := sleep(ctx, dupGrace); err != nil {
		return nil, err
	}

	// Both minutes from the final record, so a duplicate of M that came
	// during M+1 is counted.
	arrivals := b.sink.snapshot()
	first, st := minuteRow("schedules minute", app, ids, m, arrivals)
	second, st1 := minuteRow("schedules minute+1", app, ids, m1, arrivals)
	logMinute(app, "M+1", m1, st1)
	first.CreatesPerSec = some(float64(res.Created) / res.Elapsed.Seconds())
	first.Errors.v += float64(res.Rejected)

	perDue, early := occurrencesByMinute(arrivals, app)
	if early > 0 {
		slog.Error("occurrences arrived before their due time", "workload", app, "count", early)
	}
	minutes := make([]string, 0, len(perDue))
	for due, k := range perDue {
		minutes = append(minutes, due.UTC().Format(time.TimeOnly)+"="+strconv.Itoa(k))
	}
	slices.Sort(minutes)
	// A schedule's first occurrence is the first boundary after its create,
	// so minutes before M have the schedules created before each.
	slog.Info("occurrences per minute",
		"workload", app, "minutes", strings.Join(minutes, " "), "early_any_minute", early)

	ratio := func(x, y metric) float64 {
		if !x.ok || !y.ok || y.v == 0 {
			return 0
		}
		return x.v / y.v
	}
	slog.Info("schedules minute vs plain burst", "workload", app, "n", n,
		"minute_deliveries_per_s", int(first.DeliveriesPerSec.v), "plain_deliveries_per_s", int(plain.DeliveriesPerSec.v),
		"deliveries_ratio", fmt.Sprintf("%.2f", ratio(first.DeliveriesPerSec, plain.DeliveriesPerSec)),
		"minute_late_p50", st.LateP50.Round(time.Millisecond), "plain_late_p50", msDuration(plain.LateP50),
		"minute_late_p99", st.LateP99.Round(time.Millisecond), "plain_late_p99", msDuration(plain.LateP99),
		"late_p99_ratio", fmt.Sprintf("%.2f", ratio(first.LateP99, plain.LateP99)))
	return []row{plain, first, second}, nil
}

// runSchedulesIdle runs the steady workload without schedules, then in a
// fresh deployment measures the memory of --schedules idle schedules and
// runs the steady workload beside them.
func runSchedulesIdle(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	const app = appSchedIdle
	n := b.opts.schedules

	none, noneCPU, err := b.steadyCPU(ctx, d, "schedules idle: steady, none")
	if err != nil {
		return nil, err
	}

	if err := b.redeploy(ctx, d); err != nil {
		return nil, err
	}
	// Let start-up writes (meta, worker heartbeats) land before the baseline.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	before, err := b.redis.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	_, res, err := b.createSchedules(ctx, d, app, idleCron, n)
	if err != nil {
		return nil, err
	}
	// The creates' outbox entries are gone once archived; an idle schedule
	// is what remains.
	if err := b.settle(ctx, d, "creating the schedules"); err != nil {
		return nil, err
	}
	// Redis shrinks idle client query buffers in its cron; give it a beat.
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	after, err := b.redis.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	mem := row{Workload: "schedules idle", Errors: some(float64(res.Rejected))}
	if res.Created > 0 {
		per := float64(after-before) / float64(res.Created)
		mem.BytesPerPending = some(per)
		mem.CreatesPerSec = some(float64(res.Created) / res.Elapsed.Seconds())
		slog.Info("schedules memory", "workload", app, "schedules", res.Created, "used_memory_before", before,
			"used_memory_after", after, "bytes_per_idle_schedule", int(per))
	}

	with, withCPU, err := b.steadyCPU(ctx, d, "schedules idle: steady, "+formatInt(float64(res.Created))+" idle")
	if err != nil {
		return nil, err
	}
	ratio := func(x, y float64) string {
		if y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	attrs := []any{"workload", app, "schedules", res.Created,
		"late_p50_none", msDuration(none.LateP50), "late_p50_with", msDuration(with.LateP50),
		"late_p50_ratio", ratio(with.LateP50.v, none.LateP50.v),
		"late_p99_none", msDuration(none.LateP99), "late_p99_with", msDuration(with.LateP99),
		"late_p99_ratio", ratio(with.LateP99.v, none.LateP99.v)}
	if noneCPU.ok && withCPU.ok {
		attrs = append(attrs,
			"worker_cpu_us_per_delivery_none", int(noneCPU.worker), "worker_cpu_us_per_delivery_with", int(withCPU.worker),
			"worker_cpu_ratio", ratio(withCPU.worker, noneCPU.worker),
			"redis_cpu_us_per_delivery_none", int(noneCPU.redis), "redis_cpu_us_per_delivery_with", int(withCPU.redis),
			"redis_cpu_ratio", ratio(withCPU.redis, noneCPU.redis))
	}
	slog.Info("idle schedules' cost to the steady workload (target: within 10%)", attrs...)
	return []row{none, mem, with}, nil
}

// msDuration turns a row's milliseconds back into a duration for the log,
// rounded to 0.1 ms like the table.
func msDuration(m metric) time.Duration {
	return time.Duration(m.v * float64(time.Millisecond)).Round(100 * time.Microsecond)
}

// cpuPerDelivery is CPU time (user + system) per delivery, in microseconds.
type cpuPerDelivery struct {
	worker, redis float64 // all workers together; Redis
	ok            bool    // false where /proc cannot be read
}

// steadyCPU runs the steady workload's measurement in d, names its row and
// returns the CPU time the workers and Redis spent per delivery over the
// whole run (calibration and creates included, the same in every run).
func (b *bench) steadyCPU(ctx context.Context, d *deployment, name string) (row, cpuPerDelivery, error) {
	pids := func() (workers []int, redis int) {
		for _, w := range d.workers {
			workers = append(workers, w.Pid())
		}
		return workers, b.redis.proc.Pid()
	}
	wp, rp := pids()
	w0, werr := cpuTimes(wp...)
	r0, rerr := cpuTimes(rp)
	rows, err := runSteady(ctx, b, d)
	if err != nil {
		return row{}, cpuPerDelivery{}, err
	}
	r := rows[0]
	r.Workload = name
	var c cpuPerDelivery
	delivered := float64(b.opts.steady)
	if r.Missing.ok {
		delivered -= r.Missing.v
	}
	w1, werr1 := cpuTimes(wp...)
	r1, rerr1 := cpuTimes(rp)
	if err := errors.Join(werr, rerr, werr1, rerr1); err != nil {
		slog.Warn("no CPU figures", "err", err)
	} else if delivered > 0 {
		c = cpuPerDelivery{worker: float64((w1 - w0).Microseconds()) / delivered,
			redis: float64((r1 - r0).Microseconds()) / delivered, ok: true}
		slog.Info("steady CPU", "run", name, "worker_cpu_us_per_delivery", int(c.worker),
			"redis_cpu_us_per_delivery", int(c.redis))
	}
	return r, c, nil
}
