package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// createConc is how many clients create events through the batch route
	// (issue 17: four, as a few application instances would).
	createConc = 4

	// singleConc is how many keep-alive clients use the single-create route.
	singleConc = 32

	// calibrationEvents are created (far in the future) before burst and
	// steady to measure the ingest rate, from which the due time is chosen.
	calibrationEvents = 4000

	// minLead is the slack between the end of ingest (as estimated) and the
	// first due time; maxLead caps the wait on a very slow server.
	minLead = 2 * time.Second
	maxLead = 2 * time.Minute

	// dupGrace is how long the sink keeps listening after the last expected
	// event arrived, to catch immediate duplicates.
	dupGrace = time.Second

	// farFuture is the due offset of events that must not fire during the
	// bench (ingest, memory); backlogFuture that of the --backlog events.
	farFuture     = time.Hour
	backlogFuture = 24 * time.Hour

	// Apps of the events the bench creates; the sink tells them apart by
	// Cassata-Application-Id.
	appBurst   = "burst"
	appSteady  = "steady"
	appIngest  = "ingest"
	appMemory  = "memory"
	appBacklog = "backlog"
	appCalib   = "calib"
	appArchive = "archive"
)

// workload is one named measurement. It runs against a fresh deployment in
// its own namespace and returns one or more report rows. An error means the
// bench could not measure (a process died, the server stopped answering),
// not that a number was bad.
type workload struct {
	name string
	run  func(ctx context.Context, b *bench, d *deployment) ([]row, error)
}

var workloads = []workload{
	{"burst", runBurst},
	{"steady", runSteady},
	{"ingest", runIngest},
	{"memory", runMemory},
	{"archive", runArchive},
	{"topic-fanout", runTopicFanout},
	{"topic-steady", runTopicSteady},
	{"flows-steady", runFlowsSteady},
	{"schedules-minute", runSchedulesMinute},
	{"schedules-idle", runSchedulesIdle},
}

// runWorkload empties Redis, deploys cassata in a fresh namespace, runs w
// and tears the deployment down.
func (b *bench) runWorkload(ctx context.Context, w workload) ([]row, error) {
	d, err := b.freshDeployment(ctx)
	if err != nil {
		return nil, err
	}
	defer d.stop() // whatever *d holds by then: a workload may redeploy

	slog.Info("workload start", "workload", w.name, "namespace", d.ns)
	start := time.Now()
	rows, err := w.run(ctx, b, d)
	if err == nil {
		// A process that crashed mid-workload makes its numbers meaningless.
		err = d.alive()
	}
	if err != nil {
		return rows, fmt.Errorf("%s: %w", w.name, err)
	}
	slog.Info("workload done", "workload", w.name, "in", time.Since(start).Round(time.Millisecond))
	return rows, nil
}

// freshDeployment empties Redis, forgets what the sink received and
// deploys cassata in a new namespace.
func (b *bench) freshDeployment(ctx context.Context) (*deployment, error) {
	if err := b.redis.client.FlushAll(ctx).Err(); err != nil {
		return nil, fmt.Errorf("FLUSHALL: %w", err)
	}
	b.nsSeq++
	ns := "bench" + strconv.Itoa(b.nsSeq)
	if err := b.prepareArchive(ctx, ns); err != nil {
		return nil, err
	}
	d, err := b.deploy(ctx, ns)
	if err != nil {
		return nil, err
	}
	if err := b.sink.reset(); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// redeploy stops d and replaces it with a fresh deployment, for a workload
// that compares two deployments; runWorkload's deferred stop and liveness
// check then apply to the new one.
func (b *bench) redeploy(ctx context.Context, d *deployment) error {
	d.stop()
	nd, err := b.freshDeployment(ctx)
	if err != nil {
		return err
	}
	*d = *nd
	slog.Info("redeployed", "namespace", d.ns)
	return nil
}

// runBurst creates --burst events all due at one instant and measures how
// fast the workers drain them and how late each one is.
func runBurst(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	rejected, err := b.preloadBacklog(ctx, d)
	if err != nil {
		return nil, err
	}
	r, err := b.measureBurst(ctx, d, "burst", b.opts.burst)
	if err != nil {
		return nil, err
	}
	r.Errors.v += float64(rejected)
	return []row{r}, nil
}

// profileName turns a row name into a profile file name:
// "schedules: plain burst" → "schedules-plain-burst".
var profileName = strings.NewReplacer(": ", "-", " ", "-")

// measureBurst creates n events of appBurst all due at one instant and
// returns the row named name: deliveries/s from the due time to the last
// arrival, and the lateness of each. CPU profiles (--profile) are named
// after name.
func (b *bench) measureBurst(ctx context.Context, d *deployment, name string, n int) (row, error) {
	lead, err := b.leadTime(ctx, d, n)
	if err != nil {
		return row{}, err
	}
	due := time.Now().Add(lead).Truncate(time.Millisecond)
	// Profiles cover the delivery: from the due time for about as long as
	// the burst takes at 10,000/s, plus a second.
	profiling := make(chan func(), 1)
	profileStart := time.AfterFunc(time.Until(due), func() {
		profiling <- b.profileAll(ctx, d, profileName.Replace(name), time.Duration(n/10_000+1)*time.Second)
	})
	dr, err := b.deliver(ctx, d, name, appBurst, n, func(int) time.Time { return due }, due, true)
	if !profileStart.Stop() {
		(<-profiling)() // the profiles started: wait for them to be written
	}
	if err != nil {
		return row{}, err
	}
	st := dr.st
	r := dr.row(name)
	if span := st.LastArrival.Sub(due); st.Delivered > 0 && span > 0 {
		r.DeliveriesPerSec = some(float64(st.Delivered) / span.Seconds())
	}
	return r, nil
}

// runSteady creates --steady events due evenly over --steady-span and
// measures the lateness of each, the number a user of a lightly loaded
// scheduler notices.
func runSteady(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	n := b.opts.steady
	rejected, err := b.preloadBacklog(ctx, d)
	if err != nil {
		return nil, err
	}
	lead, err := b.leadTime(ctx, d, n)
	if err != nil {
		return nil, err
	}
	first := time.Now().Add(lead).Truncate(time.Millisecond)
	step := b.opts.steadySpan / time.Duration(n)
	dueAt := func(i int) time.Time { return first.Add(time.Duration(i) * step).Truncate(time.Millisecond) }
	dr, err := b.deliver(ctx, d, "steady", appSteady, n, dueAt, dueAt(n-1), false)
	if err != nil {
		return nil, err
	}
	dr.res.Rejected += rejected
	return []row{dr.row("steady")}, nil
}

func deliveryRow(name string, st deliveryStats, rejected int) row {
	r := row{
		Workload: name,
		Early:    some(float64(st.Early)),
		Dups:     some(float64(st.Dups)),
		Missing:  some(float64(st.Missing)),
		Errors:   some(float64(rejected + st.Unexpected)),
	}
	if st.Delivered > 0 {
		r.LateMin = some(ms(st.LateMin))
		r.LateP50 = some(ms(st.LateP50))
		r.LateP99 = some(ms(st.LateP99))
		r.LateMax = some(ms(st.LateMax))
	}
	return r
}

// preloadBacklog creates --backlog events due far in the future, so burst
// and steady show whether claiming due events costs more with a big backlog.
// It returns how many were refused.
func (b *bench) preloadBacklog(ctx context.Context, d *deployment) (int, error) {
	n := b.opts.backlog
	if n == 0 {
		return 0, nil
	}
	at := time.Now().Add(backlogFuture)
	slog.Info("preloading backlog", "events", n)
	res, err := d.api.createAll(ctx, n, createConc, func(i int) event {
		return b.event(appBacklog, b.eventID("bl"+strconv.Itoa(i)), at)
	})
	if err != nil {
		return 0, fmt.Errorf("preload backlog: %w", err)
	}
	logRefusals("backlog", res)
	slog.Info("backlog preloaded", "events", res.Created, "in", res.Elapsed.Round(time.Millisecond),
		"creates_per_s", int(float64(res.Created)/res.Elapsed.Seconds()))
	// The workers archive every create: let them catch up first, so the
	// figures measure claiming beside a backlog, not the archiver's
	// catch-up competing for the CPU.
	streams, err := b.redis.outboxStreams(ctx, d.ns)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	empty, st, err := b.waitOutboxEmpty(ctx, streams, start.Add(backlogArchiveWait))
	if err != nil {
		return 0, err
	}
	if !empty {
		slog.Warn("the backlog's creates are not all archived yet; the figures include the archiver's catch-up",
			"entries", st.Entries, "waited", backlogArchiveWait)
	} else {
		slog.Info("backlog archived", "in", time.Since(start).Round(time.Millisecond))
	}
	return res.Rejected, nil
}

// backlogArchiveWait bounds the wait for the backlog's creates to be archived.
const backlogArchiveWait = 5 * time.Minute

// leadTime estimates how long creating n events takes, from a small
// calibration run (events far in the future, which stay as a tiny backlog),
// and returns that with 50% and minLead of slack: the due time must come
// after ingest ends, or the lateness would include ingest.
func (b *bench) leadTime(ctx context.Context, d *deployment, n int) (time.Duration, error) {
	res, err := b.calibrate(ctx, d)
	if err != nil {
		return 0, err
	}
	perEvent := res.Elapsed / time.Duration(res.Created)
	lead := min(perEvent*time.Duration(n)*3/2+minLead, maxLead)
	slog.Info("calibrated", "creates_per_s", int(float64(res.Created)/res.Elapsed.Seconds()),
		"lead", lead.Round(time.Millisecond))
	return lead, nil
}

// calibrate creates calibrationEvents events far in the future (they stay
// as a tiny backlog) and returns how that went, for the lead time. Each
// call has ids of its own, so a workload may calibrate twice in one
// deployment.
func (b *bench) calibrate(ctx context.Context, d *deployment) (createResult, error) {
	at := time.Now().Add(backlogFuture)
	b.calibSeq++
	prefix := "c" + strconv.Itoa(b.calibSeq) + "-"
	res, err := d.api.createAll(ctx, calibrationEvents, createConc, func(i int) event {
		return b.event(appCalib, b.eventID(prefix+strconv.Itoa(i)), at)
	})
	if err != nil {
		return res, fmt.Errorf("calibrate: %w", err)
	}
	if res.Created == 0 {
		return res, fmt.Errorf("calibrate: the server created none of %d valid events (first refusal: %s)",
			calibrationEvents, res.FirstErr)
	}
	return res, nil
}

// deliveryRun is what deliver measured.
type deliveryRun struct {
	st    deliveryStats
	res   createResult
	cpu   cpuSample // spent from the first due time to the window's end
	cpuOK bool
}

// row is the report row named name: lateness, counts and CPU per delivery.
func (dr deliveryRun) row(name string) row {
	r := deliveryRow(name, dr.st, dr.res.Rejected)
	if dr.cpuOK {
		r.setCPU(dr.cpu, dr.st.Delivered)
	}
	return r
}

// deliver creates n events of app, event i due at dueAt(i), waits until the
// sink has seen each created one (or --deadline after lastDue), and
// analyzes the arrivals. It measures the CPU time of every process from
// the first due time until the last delivery or, with drain, over each
// event's whole life: from the first create until the outbox has taken the
// final record of every delivery and the archiver has emptied it (bounded
// by archiveDrainTimeout); name is for the log.
func (b *bench) deliver(ctx context.Context, d *deployment, name, app string, n int,
	dueAt func(int) time.Time, lastDue time.Time, drain bool) (deliveryRun, error) {
	var dr deliveryRun
	var streams []string
	if drain {
		var err error
		if streams, err = b.redis.outboxStreams(ctx, d.ns); err != nil {
			return dr, err
		}
	}
	from := dueAt(0)
	if drain {
		from = time.Now()
	}
	window := b.cpuFrom(d, name, from)
	defer window.cancel()
	due, res, err := b.createDue(ctx, d, app, n, dueAt)
	dr.res = res
	if err != nil {
		return dr, err
	}
	var seen0 int
	var out0 outboxState
	if drain {
		// What arrived and was added so far (nothing, unless ingest ran
		// past the first due time): the drain waits for the rest.
		if seen0, err = b.sink.waitCount(ctx, app, 0, 0); err != nil {
			return dr, err
		}
		if out0, err = b.redis.outbox(ctx, streams); err != nil {
			return dr, err
		}
	}
	if err := b.waitDelivered(ctx, d, app, res.Created, lastDue); err != nil {
		return dr, err
	}
	if drain {
		seen, err := b.sink.waitCount(ctx, app, 0, 0)
		if err != nil {
			return dr, err
		}
		if err := b.waitDrained(ctx, d, streams, out0.Added, int64(seen-seen0)); err != nil {
			return dr, err
		}
	}
	dr.cpu, dr.cpuOK = window.end()
	dr.st, err = b.analyzeDeliveries(ctx, app, due)
	return dr, err
}

// waitDrained waits until expected entries were added to streams since
// added0 and the archiver has emptied them, or archiveDrainTimeout.
func (b *bench) waitDrained(ctx context.Context, d *deployment, streams []string, added0, expected int64) error {
	start := time.Now()
	for deadline := start.Add(archiveDrainTimeout); ; {
		st, err := b.redis.outbox(ctx, streams)
		if err != nil {
			return err
		}
		if outboxDrained(st, added0, expected) {
			slog.Info("outbox drained after the last delivery", "in", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			slog.Warn("the outbox did not empty after the last delivery; the CPU window ends here",
				"waited", archiveDrainTimeout, "entries", st.Entries)
			return nil
		}
		if err := sleep(ctx, drainPoll); err != nil {
			return err
		}
		if err := d.alive(); err != nil {
			return err
		}
	}
}

// waitDelivered waits until the sink has seen want distinct events of app,
// or --deadline after lastDue, checking every second that the deployment
// is alive. The sink answers when the count is reached (GET /wait), so
// the bench notices the last delivery at once without polling the sink.
func (b *bench) waitDelivered(ctx context.Context, d *deployment, app string, want int, lastDue time.Time) error {
	deadline := lastDue.Add(b.opts.deadline)
	for time.Now().Before(deadline) {
		got, err := b.sink.waitCount(ctx, app, want, min(time.Second, time.Until(deadline)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && got >= want {
			return nil
		}
		if err := d.alive(); err != nil {
			return err
		}
		if err != nil {
			slog.Warn("waiting for the sink failed", "err", err)
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// createDue creates n events of app, event i due at dueAt(i), and returns
// the due time of each created one by "<app>/<id>".
func (b *bench) createDue(ctx context.Context, d *deployment, app string, n int,
	dueAt func(int) time.Time) (map[string]time.Time, createResult, error) {
	return b.createDueKeyed(ctx, d, app, n, dueAt, nil)
}

// createDueKeyed is createDue with event i's flow key flowKey(i) (none when
// flowKey is nil).
func (b *bench) createDueKeyed(ctx context.Context, d *deployment, app string, n int,
	dueAt func(int) time.Time, flowKey func(int) string) (map[string]time.Time, createResult, error) {
	id := func(i int) string { return b.eventID(app + "-" + strconv.Itoa(i)) }
	res, err := d.api.createAll(ctx, n, createConc, func(i int) event {
		ev := b.event(app, id(i), dueAt(i))
		if flowKey != nil {
			ev.FlowKey = flowKey(i)
		}
		return ev
	})
	if err != nil {
		return nil, res, fmt.Errorf("create %s events: %w", app, err)
	}
	logRefusals(app, res)
	firstDue := dueAt(0)
	if over := time.Since(firstDue); over > 0 {
		slog.Warn("ingest ended after the first due time; lateness includes part of ingest",
			"workload", app, "overrun", over.Round(time.Millisecond))
	}
	slog.Info("created", "workload", app, "events", res.Created, "in", res.Elapsed.Round(time.Millisecond),
		"first_due_in", time.Until(firstDue).Round(time.Millisecond))

	due := make(map[string]time.Time, res.Created)
	for i, ok := range res.CreatedOK {
		if ok {
			due[app+"/"+id(i)] = dueAt(i)
		}
	}
	return due, res, nil
}

// analyzeDeliveries waits dupGrace for late duplicates, then matches the
// sink's arrivals against due and logs the outcome.
func (b *bench) analyzeDeliveries(ctx context.Context, app string, due map[string]time.Time) (deliveryStats, error) {
	if err := sleep(ctx, dupGrace); err != nil {
		return deliveryStats{}, err
	}
	return analyzeArrivals(app, due, b.sink.snapshot(), b.opts.deadline), nil
}

// analyzeArrivals matches arrivals against due and logs the outcome;
// deadline is how long the bench waited after the last due time.
func analyzeArrivals(app string, due map[string]time.Time, arrivals []arrival, deadline time.Duration) deliveryStats {
	st := analyze(due, arrivals)
	if st.Missing > 0 {
		slog.Error("events not delivered", "workload", app, "missing", st.Missing, "of", st.Expected,
			"waited_after_last_due", deadline)
	}
	if st.Unexpected > 0 {
		slog.Error("the sink received events that were not due", "workload", app, "count", st.Unexpected)
	}
	slog.Info("delivered", "workload", app, "events", st.Delivered, "dups", st.Dups, "early", st.Early,
		"late_p50", st.LateP50.Round(10*time.Microsecond), "late_p99", st.LateP99.Round(10*time.Microsecond),
		"late_max", st.LateMax.Round(10*time.Microsecond))
	return st
}

// runIngest measures create throughput: first the single-event route with
// singleConc keep-alive clients, then the batch route with createConc
// clients, each for --ingest-time. Events are due far in the future.
func runIngest(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	single, err := ingestSingle(ctx, b, d)
	if err != nil {
		return nil, err
	}
	wait := b.profileAll(ctx, d, "ingest-batch", b.opts.ingestTime)
	batch, err := ingestBatch(ctx, b, d)
	wait()
	if err != nil {
		return nil, err
	}
	return []row{single, batch}, nil
}

// ingestCounter tallies create outcomes across client goroutines.
type ingestCounter struct {
	created, throttled, refused, transport atomic.Int64

	mu       sync.Mutex
	firstErr string
}

func (c *ingestCounter) add(status int, reason string) {
	switch {
	case created(status):
		c.created.Add(1)
	case throttled(status):
		c.throttled.Add(1)
	default:
		c.refused.Add(1)
		c.note(reason)
	}
}

func (c *ingestCounter) note(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstErr == "" {
		c.firstErr = reason
	}
}

// row turns the tally into a report row; transport errors count as errors.
func (c *ingestCounter) row(name string, elapsed time.Duration) row {
	refused := c.refused.Load() + c.transport.Load()
	if refused > 0 {
		slog.Error("creates failed", "workload", name, "count", refused, "first", c.firstErr)
	}
	if t := c.throttled.Load(); t > 0 {
		slog.Warn("creates throttled (429/503), not counted as created", "workload", name, "count", t)
	}
	n := c.created.Load()
	slog.Info("ingested", "workload", name, "events", n, "in", elapsed.Round(time.Millisecond),
		"creates_per_s", int(float64(n)/elapsed.Seconds()))
	return row{
		Workload:      name,
		CreatesPerSec: some(float64(n) / elapsed.Seconds()),
		Errors:        some(float64(refused)),
	}
}

// maxTransportErrs stops an ingest client after this many connection errors
// in a row: the server is gone and the deployment check will say so.
const maxTransportErrs = 3

func ingestSingle(ctx context.Context, b *bench, d *deployment) (row, error) {
	var c ingestCounter
	at := time.Now().Add(farFuture)
	start := time.Now()
	stopAt := start.Add(b.opts.ingestTime)
	var wg sync.WaitGroup
	for client := range singleConc {
		wg.Go(func() {
			prefix := "s" + strconv.Itoa(client) + "-"
			fails := 0
			for i := 0; time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
				ev := b.event(appIngest, b.eventID(prefix+strconv.Itoa(i)), at)
				status, reason, err := d.api.create(ctx, &ev)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					c.transport.Add(1)
					c.note(err.Error())
					if fails++; fails >= maxTransportErrs {
						return
					}
					continue
				}
				fails = 0
				c.add(status, reason)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return row{}, err
	}
	return c.row("ingest single", time.Since(start)), nil
}

func ingestBatch(ctx context.Context, b *bench, d *deployment) (row, error) {
	var c ingestCounter
	at := time.Now().Add(farFuture)
	start := time.Now()
	stopAt := start.Add(b.opts.ingestTime)
	var wg sync.WaitGroup
	for client := range createConc {
		wg.Go(func() {
			evs := make([]event, maxBatch)
			fails := 0
			for batch := 0; time.Now().Before(stopAt) && ctx.Err() == nil; batch++ {
				prefix := "b" + strconv.Itoa(client) + "-" + strconv.Itoa(batch) + "-"
				for i := range evs {
					evs[i] = b.event(appIngest, b.eventID(prefix+strconv.Itoa(i)), at)
				}
				items, err := d.api.createBatch(ctx, evs)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					c.transport.Add(int64(len(evs)))
					c.note(err.Error())
					if fails++; fails >= maxTransportErrs {
						return
					}
					continue
				}
				fails = 0
				for _, it := range items {
					c.add(it.Status, it.Reason)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return row{}, err
	}
	return c.row("ingest batch", time.Since(start)), nil
}

// runMemory measures Redis memory per pending event: used_memory before and
// after creating --memory events due far in the future, in an emptied Redis.
func runMemory(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	n := b.opts.memory
	// Let start-up writes (meta, worker heartbeats) land before the baseline.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	before, err := b.redis.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	at := time.Now().Add(farFuture)
	res, err := d.api.createAll(ctx, n, createConc, func(i int) event {
		return b.event(appMemory, b.eventID("m"+strconv.Itoa(i)), at)
	})
	if err != nil {
		return nil, fmt.Errorf("create memory events: %w", err)
	}
	logRefusals("memory", res)
	streams, err := b.redis.outboxStreams(ctx, d.ns)
	if err != nil {
		return nil, err
	}
	// Creates leave outbox entries until the archiver has archived them;
	// measure the steady state of a pending event, after that.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		out, err := b.redis.outbox(ctx, streams)
		if err != nil {
			return nil, err
		}
		left := out.Entries
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			slog.Warn("outbox not drained; memory includes its entries", "entries", left)
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// Redis shrinks idle client query buffers in its cron; give it a beat so
	// they are not counted as event memory.
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	after, err := b.redis.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	r := row{Workload: "memory", Errors: some(float64(res.Rejected))}
	if res.Created > 0 {
		per := float64(after-before) / float64(res.Created)
		r.BytesPerPending = some(per)
		slog.Info("memory", "events", res.Created, "used_memory_before", before, "used_memory_after", after,
			"bytes_per_pending", int(per))
	}
	return []row{r}, nil
}

func logRefusals(what string, res createResult) {
	if res.Rejected > 0 {
		slog.Error("creates refused", "workload", what, "count", res.Rejected, "first", res.FirstErr)
	}
}
