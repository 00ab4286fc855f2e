package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // read-only row counts of the SQLite archives

	"github.com/cassata/cassata/internal/mysqltest"
	"github.com/cassata/cassata/scheduler/worker"
)

// --archive values.
const (
	archiveSQLite = "sqlite"
	archiveMySQL  = "mysql"
)

const (
	// lagSampleEvery is the interval of the archive workload's lag samples.
	lagSampleEvery = 100 * time.Millisecond

	// drainPoll is how often the outbox is checked once every event has
	// been delivered, for the catch-up time.
	drainPoll = 10 * time.Millisecond

	// archiveDrainTimeout bounds the wait for the outbox to empty after the
	// last delivery; after it the catch-up time is reported as unknown.
	archiveDrainTimeout = 3 * time.Minute
)

// archiveEvents is how many events the archive workload creates.
func archiveEvents(o options) int {
	return int(float64(o.archiveRate) * o.archiveSpan.Seconds())
}

// mysqlServer is the bench's own MariaDB (--archive mysql).
type mysqlServer struct {
	proc    *mysqltest.Process
	version string
}

// startMySQL initialises a data directory under dir and starts MariaDB (or
// MySQL) on a free loopback port.
func startMySQL(ctx context.Context, dir string) (*mysqlServer, error) {
	start := time.Now()
	p, err := mysqltest.StartProcess(filepath.Join(dir, "mariadb"))
	if errors.Is(err, mysqltest.ErrNoBinary) {
		return nil, fmt.Errorf("--archive mysql: %w; install mariadb-server (`make deps` does) or use --archive sqlite", err)
	}
	if err != nil {
		return nil, fmt.Errorf("start MariaDB: %w", err)
	}
	m := &mysqlServer{proc: p}
	if err := p.Admin().QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.version); err != nil {
		m.stop()
		return nil, fmt.Errorf("MariaDB: SELECT VERSION(): %w", err)
	}
	slog.Info("mariadb ready", "addr", p.Addr(), "version", m.version, "dir", p.Dir(),
		"in", time.Since(start).Round(time.Millisecond))
	return m, nil
}

func (m *mysqlServer) stop() {
	if m == nil {
		return
	}
	m.proc.Close()
}

// archiveName describes the archive for the report's summary line.
func (b *bench) archiveName() string {
	if b.mysql != nil {
		return "mysql (" + b.mysql.version + ")"
	}
	return b.opts.archive
}

// archiveDSN is the CASSATA_ARCHIVE_DSN of namespace ns.
func (b *bench) archiveDSN(ns string) string {
	if b.mysql != nil {
		return b.mysql.proc.DSN(ns)
	}
	return "sqlite://" + b.sqlitePath(ns)
}

func (b *bench) sqlitePath(ns string) string { return filepath.Join(b.tmp, ns+"-archive.db") }

// prepareArchive creates namespace ns's database on MariaDB; the workers
// create the tables. A SQLite file needs nothing.
func (b *bench) prepareArchive(ctx context.Context, ns string) error {
	if b.mysql == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return b.mysql.proc.CreateDatabase(cctx, ns)
}

// countArchived counts the archive rows of app in namespace ns: its events
// rows (one per run) and attempts rows (one per attempt).
func (b *bench) countArchived(ctx context.Context, ns, app string) (events, attempts int64, err error) {
	var db *sql.DB
	prefix := ""
	if b.mysql != nil {
		db = b.mysql.proc.Admin()
		prefix = ns + "."
	} else {
		// Read-only, beside the workers' connections (WAL mode).
		dsn := "file:" + b.sqlitePath(ns) + "?mode=ro&_pragma=" + url.QueryEscape("busy_timeout(10000)")
		if db, err = sql.Open("sqlite", dsn); err != nil {
			return 0, 0, err
		}
		defer db.Close()
	}
	for _, c := range []struct {
		table string
		n     *int64
	}{{"events", &events}, {"attempts", &attempts}} {
		q := "SELECT COUNT(*) FROM " + prefix + c.table + " WHERE app = ?"
		if err := db.QueryRowContext(ctx, q, app).Scan(c.n); err != nil {
			return 0, 0, fmt.Errorf("count archived %s: %w", c.table, err)
		}
	}
	return events, attempts, nil
}

// outboxState is what the outbox streams of a namespace hold at one moment.
type outboxState struct {
	Entries int64     // entries not yet archived (archived ones are deleted)
	Added   int64     // entries ever added (XINFO STREAM entries-added)
	Oldest  time.Time // time of the oldest entry's id; zero when empty
	// Leases: deliveries in flight (the shards' lease zsets), whose
	// outcome is not recorded yet.
	Leases int64
}

// outboxStreams returns the outbox stream of every shard of namespace ns,
// from the shard count the server recorded in <ns>:meta.
func (r *redisServer) outboxStreams(ctx context.Context, ns string) ([]string, error) {
	shards, err := r.client.HGet(ctx, ns+":meta", "shards").Int()
	if err != nil {
		return nil, fmt.Errorf("shard count of %s: %w", ns, err)
	}
	return outboxStreamNames(ns, shards), nil
}

// outboxStreamNames are the keys <ns>:{<ns>:<shard>}:out (redisstore's layout).
func outboxStreamNames(ns string, shards int) []string {
	out := make([]string, shards)
	for sh := range shards {
		out[sh] = ns + ":{" + ns + ":" + strconv.Itoa(sh) + "}:out"
	}
	return out
}

// outbox reads the state of streams in one round trip.
func (r *redisServer) outbox(ctx context.Context, streams []string) (outboxState, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.XInfoStreamCmd, len(streams))
	leases := make([]*redis.IntCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.XInfoStream(ctx, s)
		leases[i] = pipe.ZCard(ctx, strings.TrimSuffix(s, ":out")+":lease")
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var st outboxState
	for _, c := range leases {
		n, err := c.Result()
		if err != nil {
			return outboxState{}, fmt.Errorf("ZCARD of a lease zset: %w", err)
		}
		st.Leases += n
	}
	for i, c := range cmds {
		info, err := c.Result()
		if err != nil {
			if strings.Contains(err.Error(), "no such key") {
				continue // a shard nothing was written to yet
			}
			return outboxState{}, fmt.Errorf("XINFO STREAM %s: %w", streams[i], err)
		}
		st.Entries += info.Length
		st.Added += info.EntriesAdded
		if info.Length > 0 {
			if t, ok := streamIDTime(info.FirstEntry.ID); ok && (st.Oldest.IsZero() || t.Before(st.Oldest)) {
				st.Oldest = t
			}
		}
	}
	return st, nil
}

// streamIDTime is the time in a stream entry id ("<ms>-<seq>").
func streamIDTime(id string) (time.Time, bool) {
	msPart, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

// lagSample is one observation of the outbox.
type lagSample struct {
	At      time.Time
	Entries int64
	Lag     time.Duration // age of the oldest entry; 0 when the outbox is empty
}

func newLagSample(at time.Time, st outboxState) lagSample {
	s := lagSample{At: at, Entries: st.Entries}
	if st.Entries > 0 && !st.Oldest.IsZero() {
		s.Lag = max(0, at.Sub(st.Oldest))
	}
	return s
}

// lagSummary sums up the samples of one run.
type lagSummary struct {
	Samples       int
	MaxEntries    int64
	MaxEntriesAt  time.Time
	P50, P99, Max time.Duration // nearest-rank percentiles of the samples' lag
	MaxAt         time.Time
}

func summarizeLag(samples []lagSample) lagSummary {
	var s lagSummary
	s.Samples = len(samples)
	if len(samples) == 0 {
		return s
	}
	lags := make([]time.Duration, len(samples))
	for i, x := range samples {
		lags[i] = x.Lag
		if x.Entries > s.MaxEntries {
			s.MaxEntries, s.MaxEntriesAt = x.Entries, x.At
		}
		if x.Lag > s.Max {
			s.Max, s.MaxAt = x.Lag, x.At
		}
	}
	slices.Sort(lags)
	s.P50 = percentile(lags, 50)
	s.P99 = percentile(lags, 99)
	return s
}

// outboxDrained reports whether everything the deliveries wrote to the
// outbox has been archived: no delivery is in flight (a delivered event's
// outcome, with its final record, is recorded in the same step that ends
// its lease), an entry was added since added0 when expected events were
// delivered (an entry may hold the records of a batch: not one per event),
// and none is left.
func outboxDrained(st outboxState, added0, expected int64) bool {
	return st.Entries == 0 && st.Leases == 0 && (expected == 0 || st.Added > added0)
}

// waitOutboxEmpty polls until streams hold no entry or until passes; it
// reports whether the outbox emptied.
func (b *bench) waitOutboxEmpty(ctx context.Context, streams []string, until time.Time) (bool, outboxState, error) {
	for {
		st, err := b.redis.outbox(ctx, streams)
		if err != nil || st.Entries == 0 {
			return err == nil, st, err
		}
		if !time.Now().Before(until) {
			return false, st, nil
		}
		if err := sleep(ctx, min(20*time.Millisecond, time.Until(until))); err != nil {
			return false, st, err
		}
	}
}

// archiveLead is leadTime for the archive workload: the due time must come
// after ingest and after the archiver has written the creates' outbox
// entries, so the lag measured is that of the deliveries. It times the
// calibration events from the first create until the outbox is empty again.
func (b *bench) archiveLead(ctx context.Context, d *deployment, streams []string, n int) (time.Duration, error) {
	start := time.Now()
	res, err := b.calibrate(ctx, d)
	if err != nil {
		return 0, err
	}
	if _, _, err := b.waitOutboxEmpty(ctx, streams, time.Now().Add(maxLead)); err != nil {
		return 0, err
	}
	perEvent := time.Since(start) / time.Duration(res.Created)
	lead := min(perEvent*time.Duration(n)*3/2+minLead, maxLead)
	slog.Info("calibrated", "creates_per_s", int(float64(res.Created)/res.Elapsed.Seconds()),
		"created_and_archived_per_s", int(float64(res.Created)/time.Since(start).Seconds()),
		"lead", lead.Round(time.Millisecond))
	return lead, nil
}

// runArchive delivers --archive-rate events/s for --archive-span (created
// ahead through the batch route, due evenly over the span, like steady)
// and watches the archiver keep up: it samples the outbox every
// lagSampleEvery from the first due time until every delivery's outbox
// entry has been archived, then counts the archived rows.
func runArchive(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	n := archiveEvents(b.opts)
	streams, err := b.redis.outboxStreams(ctx, d.ns)
	if err != nil {
		return nil, err
	}
	lead, err := b.archiveLead(ctx, d, streams, n)
	if err != nil {
		return nil, err
	}
	first := time.Now().Add(lead).Truncate(time.Millisecond)
	step := b.opts.archiveSpan / time.Duration(n)
	dueAt := func(i int) time.Time { return first.Add(time.Duration(i) * step).Truncate(time.Millisecond) }
	lastDue := dueAt(n - 1)

	// CPU from the first due time until the outbox is drained.
	window := b.cpuFrom(d, "archive", first)
	defer window.cancel()
	createStart := time.Now()
	due, res, err := b.createDue(ctx, d, appArchive, n, dueAt)
	if err != nil {
		return nil, err
	}
	// The creates' outbox entries should be archived before the first
	// delivery, or the lag below would include them.
	empty, before, err := b.waitOutboxEmpty(ctx, streams, first)
	if err != nil {
		return nil, err
	}
	if empty {
		took := time.Since(createStart)
		slog.Info("creates archived before the first due time", "events", res.Created,
			"created_and_archived_in", took.Round(time.Millisecond),
			"rows_per_s", int(float64(res.Created)/took.Seconds()))
	} else {
		slog.Warn("the creates' outbox entries were not all archived at the first due time; the lag includes them",
			"entries", before.Entries)
	}
	if err := sleep(ctx, time.Until(first)); err != nil {
		return nil, err
	}
	start, err := b.redis.outbox(ctx, streams)
	if err != nil {
		return nil, err
	}

	samples, drainedAt, err := b.sampleArchive(ctx, d, streams, res.Created, start.Added, lastDue)
	if err != nil {
		return nil, err
	}
	cpu, cpuOK := window.end()
	st, err := b.analyzeDeliveries(ctx, appArchive, due)
	if err != nil {
		return nil, err
	}

	r := deliveryRow("archive", st, res.Rejected)
	if cpuOK {
		r.setCPU(cpu, st.Delivered)
	}
	if span := st.LastArrival.Sub(first); st.Delivered > 0 && span > 0 {
		r.DeliveriesPerSec = some(float64(st.Delivered) / span.Seconds())
	}
	lag := summarizeLag(samples)
	if lag.Samples > 0 {
		r.OutboxMax = some(float64(lag.MaxEntries))
		r.LagP50 = some(ms(lag.P50))
		r.LagP99 = some(ms(lag.P99))
		r.LagMax = some(ms(lag.Max))
	}
	slog.Info("archive lag", "samples", lag.Samples, "outbox_max", lag.MaxEntries,
		"outbox_max_at", lag.MaxEntriesAt.Sub(first).Round(time.Millisecond),
		"lag_p50", lag.P50, "lag_p99", lag.P99, "lag_max", lag.Max,
		"lag_max_at", lag.MaxAt.Sub(first).Round(time.Millisecond))
	if drainedAt.IsZero() {
		return []row{r}, nil
	}
	if st.Delivered > 0 {
		r.CatchUp = some(ms(max(0, drainedAt.Sub(st.LastArrival))))
	}
	events, attempts, err := b.countArchived(ctx, d.ns, appArchive)
	if err != nil {
		return []row{r}, err
	}
	took := drainedAt.Sub(first)
	r.RowsPerSec = some(float64(events+attempts) / took.Seconds())
	unarchived := max(0, int64(res.Created)-events) + max(0, int64(st.Delivered)-attempts)
	r.Unarchived = some(float64(unarchived))
	if unarchived > 0 {
		slog.Error("events missing from the archive after the outbox emptied", "created", res.Created,
			"events_rows", events, "delivered", st.Delivered, "attempts_rows", attempts)
	}
	slog.Info("archived", "events_rows", events, "attempts_rows", attempts,
		"first_due_to_outbox_empty", took.Round(time.Millisecond),
		"rows_per_s", int(float64(events+attempts)/took.Seconds()),
		"catch_up", drainedAt.Sub(st.LastArrival).Round(time.Millisecond))
	return []row{r}, nil
}

// sampleArchive samples the outbox every lagSampleEvery from now (the first
// due time) while the events are delivered, and then, polling every
// drainPoll, until every delivered event's outbox entry has been archived.
// It returns the samples on the lagSampleEvery grid and when the outbox was
// seen drained (zero when it was not within archiveDrainTimeout).
func (b *bench) sampleArchive(ctx context.Context, d *deployment, streams []string, created int,
	added0 int64, lastDue time.Time) ([]lagSample, time.Time, error) {
	var samples []lagSample
	nextSample := time.Now()
	deliveryDeadline := lastDue.Add(b.opts.deadline)
	// The sink says when the last event arrived (GET /wait), so the drain
	// polling starts right after it without the bench polling the sink.
	wctx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	arrived := make(chan int, 1)
	go func() {
		for {
			got, err := b.sink.waitCount(wctx, appArchive, created, min(time.Second, max(0, time.Until(deliveryDeadline))))
			if wctx.Err() != nil {
				return
			}
			if err == nil && (got >= created || time.Now().After(deliveryDeadline)) {
				arrived <- got
				return
			}
			if err != nil {
				slog.Warn("waiting for the sink failed", "err", err)
				if sleep(wctx, 100*time.Millisecond) != nil {
					return
				}
			}
		}
	}()
	delivered := false
	var expected int64
	var drainDeadline time.Time
	lastAlive := time.Now()
	for {
		if !delivered {
			select {
			case got := <-arrived:
				delivered, expected = true, int64(got)
				drainDeadline = time.Now().Add(archiveDrainTimeout)
			default:
			}
		}
		if delivered || !time.Now().Before(nextSample) {
			st, err := b.redis.outbox(ctx, streams)
			if err != nil {
				return samples, time.Time{}, err
			}
			now := time.Now()
			if !now.Before(nextSample) {
				samples = append(samples, newLagSample(now, st))
				nextSample = nextSample.Add(lagSampleEvery)
				if nextSample.Before(now) {
					nextSample = now.Add(lagSampleEvery)
				}
			}
			// The sink counts an arrival before the worker writes its
			// final record; outboxDrained waits for the record itself.
			if delivered && outboxDrained(st, added0, expected) {
				return samples, now, nil
			}
			if delivered && now.After(drainDeadline) {
				slog.Warn("the outbox did not empty after the last delivery; catch-up and rows/s unknown",
					"waited", archiveDrainTimeout, "entries", st.Entries)
				return samples, time.Time{}, nil
			}
		}
		if now := time.Now(); now.Sub(lastAlive) > time.Second {
			lastAlive = now
			if err := d.alive(); err != nil {
				return samples, time.Time{}, err
			}
		}
		if err := sleep(ctx, max(0, min(time.Until(nextSample), drainPoll))); err != nil {
			return samples, time.Time{}, err
		}
	}
}

// archiveLegend explains the archive table under it.
func archiveLegend(o options) string {
	return fmt.Sprintf("archive workload: %s deliveries/s for %s (%s events); lag = age of the oldest outbox entry, "+
		"sampled every %s from the first due time until the outbox is empty; catch-up = last delivery → outbox empty; "+
		"archived rows/s = the workload's events + attempts rows over first due → outbox empty "+
		"(2 rows per delivery, so at most twice the delivery rate); archiver batch: %d records (scheduler default)",
		formatInt(float64(o.archiveRate)), o.archiveSpan, formatInt(float64(archiveEvents(o))),
		lagSampleEvery, worker.DefaultArchiveBatch)
}
