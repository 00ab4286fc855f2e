// Command cassata-bench measures a real Cassata deployment on this machine
// and prints one table: delivery throughput and lateness (burst, steady),
// create throughput (ingest), Redis memory per pending event (memory),
// deliveries under a steady 5,000 events/s (archive) and topic deliveries
// (topic-fanout: one message to 1,000 subscribers; topic-steady: 200
// messages/s to 10), flow keys (flows-steady: the steady workload without
// flow keys and over 100 keys of parallelism 10, with the CPU time of the
// workers and Redis per delivery) and recurring schedules (schedules-minute: the
// occurrences of 100,000 schedules firing every minute, beside a plain burst
// of as many events; schedules-idle: Redis memory per idle schedule and the
// steady workload with and without 100,000 idle schedules; these two take
// minutes), followed by a second table with the archive workload's outbox
// lag and archive throughput and a third with CPU time per delivery of
// each process: the workers, the server, Redis and the sink, from the
// kernel's accounting of the child processes (/proc/<pid>/stat) over each
// delivery workload's window (cpuLegend says which). The report starts
// with the machine (CPU model, logical CPUs, GOMAXPROCS, memory, load
// average when the bench started), the event shape and the number of runs.
//
// Events have a realistic shape by default (--shape realistic): the sink's
// URL with a ~40-byte query string and a 100-byte JSON body, both varying
// per event, and a Content-Type: application/json header; --shape small
// sends the bench's original event (bare URL, 100 digits, one X-Bench
// header). Every workload uses the shape, memory's bytes/pending too.
// Event ids are the bench's own short sequential ones ("burst-42") unless
// --ids uuid, which gives every event a UUID-shaped id instead (36 bytes,
// derived from the short one), as clients' own ids often are: they cost
// more memory and land on random places of the archive's key.
// Events are created through POST /v1/events/batch by 4 concurrent clients
// (ingest single uses the single route, with 32).
//
// It builds ./cmd/cassata (or takes --cassata), starts its own redis-server,
// an HTTP sink that records every delivery, and `cassata server` plus
// `cassata worker` as separate processes, all on 127.0.0.1 only. The sink
// is a process of its own too, so its CPU is not the bench's: the bench
// runs its own binary again as `cassata-bench sink --listen ADDR` (a hidden
// subcommand), which stamps each arrival with the machine's wall clock,
// and reads the arrivals back over loopback HTTP (GET /arrivals?from=N,
// one line per arrival). Each workload gets an emptied Redis, an emptied
// sink and a fresh namespace. Every process it started is stopped when it
// ends, fails or is interrupted.
//
// Workers archive every finished event (CASSATA_ARCHIVE_DSN). With
// --archive sqlite (the default) each namespace gets a SQLite file in the
// bench's temporary directory; with --archive mysql the bench starts its own
// MariaDB (mariadbd, or MySQL's mysqld) on a free loopback port with its
// data directory under the temporary directory (internal/mysqltest),
// one database per namespace, and stops it at the end:
//
//	make bench BENCH_ARGS="--archive mysql --only archive"
//
// It prints numbers and never fails on a timing; it exits non-zero only when
// it could not measure (a process failed to start or died) or when Cassata
// lost, refused or wrongly delivered events, or left some out of the archive.
//
//	go run ./cmd/cassata-bench [--only burst,steady,ingest,memory,archive,topic-fanout,topic-steady,flows-steady,schedules-minute,schedules-idle]
//	    [--shape realistic|small] [--ids seq|uuid] [--archive sqlite|mysql] [--runs K] [--backlog N] [--schedules N] [--flow-keys N] [--flow-parallelism P]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	cassata           string        // cassata binary; built from ./cmd/cassata when empty
	redisServer       string        // redis-server binary
	only              []string      // workloads to run, in the order of workloads
	runs              int           // repetitions; the report shows medians
	backlog           int           // far-future events preloaded before burst and steady
	workers           int           // cassata worker processes
	workerConcurrency int           // CASSATA_WORKER_CONCURRENCY; 0 keeps cassata's default
	burst             int           // events in the burst
	steady            int           // events in the steady workload
	steadySpan        time.Duration // how long the steady events' due times spread over
	ingestTime        time.Duration // duration of each ingest phase
	memory            int           // events created by the memory workload
	archive           string        // archive database: archiveSQLite or archiveMySQL
	shape             string        // what each event looks like: shapeRealistic or shapeSmall
	ids               string        // event ids: idsSeq or idsUUID
	archiveRate       int           // deliveries per second of the archive workload
	archiveSpan       time.Duration // how long the archive workload's due times spread over
	topicSubscribers  int           // subscribers of the topic fan-out's one message
	topicSteadySubs   int           // subscribers of the topic steady workload's topic
	topicRate         int           // messages per second of the topic steady workload
	topicSpan         time.Duration // how long the topic steady workload's due times spread over
	schedules         int           // schedules of schedules-minute and schedules-idle
	flowKeys          int           // flow keys of flows-steady
	flowParallelism   int           // parallelism of each of them
	deadline          time.Duration // wait for deliveries this long after the last due time
	keep              bool          // keep the temporary directory (logs, archives)
	profile           string        // directory for CPU profiles of the burst (empty: none)
	verbose           bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var only string
	fs := flag.NewFlagSet("cassata-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.cassata, "cassata", "", "cassata binary to run (default: go build ./cmd/cassata into a temp dir)")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&only, "only", "", "comma-separated workloads to run (default: all of burst,steady,ingest,memory,archive,topic-fanout,topic-steady,flows-steady,schedules-minute,schedules-idle; the schedules ones take minutes)")
	fs.IntVar(&o.runs, "runs", 1, "run every workload K times and report medians")
	fs.IntVar(&o.backlog, "backlog", 0, "preload N events due in 24h before burst and steady")
	fs.IntVar(&o.workers, "workers", 1, "number of cassata worker processes")
	fs.IntVar(&o.workerConcurrency, "worker-concurrency", 0, "CASSATA_WORKER_CONCURRENCY for the workers (default: cassata's)")
	fs.IntVar(&o.burst, "burst", 20_000, "events in the burst, all due at one instant")
	fs.IntVar(&o.steady, "steady", 10_000, "events in the steady workload")
	fs.DurationVar(&o.steadySpan, "steady-span", 10*time.Second, "time the steady events' due times spread over")
	fs.DurationVar(&o.ingestTime, "ingest-time", 5*time.Second, "duration of each ingest phase (single, batch)")
	fs.IntVar(&o.memory, "memory", 50_000, "pending events the memory workload creates")
	fs.StringVar(&o.archive, "archive", archiveSQLite, "archive database of the workers: sqlite (a file per namespace) or mysql (the bench starts its own MariaDB)")
	fs.StringVar(&o.ids, "ids", idsSeq, "event ids: seq (the bench's short ids, e.g. burst-42) or uuid (UUID-shaped, 36 bytes, derived from the short ones: as clients' own ids often are)")
	fs.StringVar(&o.shape, "shape", shapeRealistic, "what every event looks like: realistic (sink URL with a ~40-byte query string, 100-byte JSON body, Content-Type header; both varying per event) or small (bare sink URL, fixed 100-byte body, one X-Bench header)")
	fs.IntVar(&o.archiveRate, "archive-rate", 5_000, "deliveries per second of the archive workload")
	fs.DurationVar(&o.archiveSpan, "archive-span", 10*time.Second, "time the archive workload's due times spread over")
	fs.IntVar(&o.topicSubscribers, "topic-subscribers", 1000, "subscribers the topic fan-out's one message goes to")
	fs.IntVar(&o.topicSteadySubs, "topic-steady-subscribers", 10, "subscribers of the topic steady workload's topic")
	fs.IntVar(&o.topicRate, "topic-rate", 200, "messages per second of the topic steady workload")
	fs.DurationVar(&o.topicSpan, "topic-span", 10*time.Second, "time the topic steady workload's due times spread over")
	fs.IntVar(&o.schedules, "schedules", 100_000, "schedules created by schedules-minute (every minute) and schedules-idle (once a year)")
	fs.IntVar(&o.flowKeys, "flow-keys", 100, "flow keys the flows-steady workload spreads the steady events over")
	fs.IntVar(&o.flowParallelism, "flow-parallelism", 10, "parallelism of each flow key of flows-steady (no rate)")
	fs.DurationVar(&o.deadline, "deadline", time.Minute, "how long after the last due time to wait for deliveries before counting the rest as missing")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory with process logs and archives")
	fs.StringVar(&o.profile, "profile", "", "write CPU profiles of the server and workers during the burst (and the batch ingest) into this directory")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: cassata-bench [flags]\n\n"+
			"Benchmarks cassata on loopback with its own redis-server and prints one table.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	if only == "" {
		o.only = names
	} else {
		for _, n := range strings.Split(only, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if !slices.Contains(names, n) {
				return o, fmt.Errorf("--only: unknown workload %q (have %s)", n, strings.Join(names, ", "))
			}
			if !slices.Contains(o.only, n) {
				o.only = append(o.only, n)
			}
		}
		if len(o.only) == 0 {
			return o, errors.New("--only: no workload named")
		}
	}

	for _, c := range []struct {
		name string
		v    int
		min  int
	}{
		{"runs", o.runs, 1}, {"workers", o.workers, 1}, {"worker-concurrency", o.workerConcurrency, 0},
		{"burst", o.burst, 1}, {"steady", o.steady, 1}, {"memory", o.memory, 1}, {"backlog", o.backlog, 0},
		{"archive-rate", o.archiveRate, 1}, {"topic-subscribers", o.topicSubscribers, 1},
		{"topic-steady-subscribers", o.topicSteadySubs, 1}, {"topic-rate", o.topicRate, 1},
		{"schedules", o.schedules, 1}, {"flow-keys", o.flowKeys, 1}, {"flow-parallelism", o.flowParallelism, 1},
	} {
		if c.v < c.min {
			return o, fmt.Errorf("--%s must be at least %d", c.name, c.min)
		}
	}
	for _, c := range []struct {
		name string
		v    time.Duration
	}{{"steady-span", o.steadySpan}, {"ingest-time", o.ingestTime}, {"deadline", o.deadline}, {"archive-span", o.archiveSpan}, {"topic-span", o.topicSpan}} {
		if c.v <= 0 {
			return o, fmt.Errorf("--%s must be positive", c.name)
		}
	}
	if o.archive != archiveSQLite && o.archive != archiveMySQL {
		return o, fmt.Errorf("--archive must be %s or %s, not %q", archiveSQLite, archiveMySQL, o.archive)
	}
	if o.ids != idsSeq && o.ids != idsUUID {
		return o, fmt.Errorf("--ids must be %s or %s, not %q", idsSeq, idsUUID, o.ids)
	}
	if o.shape != shapeRealistic && o.shape != shapeSmall {
		return o, fmt.Errorf("--shape must be %s or %s, not %q", shapeRealistic, shapeSmall, o.shape)
	}
	if n := archiveEvents(o); n < 1 {
		return o, fmt.Errorf("--archive-rate × --archive-span is %d events; want at least 1", n)
	}
	if n := topicMessages(o); n < 1 {
		return o, fmt.Errorf("--topic-rate × --topic-span is %d messages; want at least 1", n)
	}
	return o, nil
}

// bench holds what lives for the whole run: the binary, Redis, MariaDB
// (--archive mysql) and the sink.
type bench struct {
	opts     options
	tmp      string
	bin      string
	redis    *redisServer
	mysql    *mysqlServer // nil unless --archive mysql
	sink     *sinkClient  // the sink process
	nsSeq    int
	runNo    int // the run under way, from 1 (--runs)
	calibSeq int // calibrations so far (calibrate)
	machine  machine
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == sinkCommand {
		return runSinkCommand(args[1:], stderr)
	}
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cassata-bench:", err)
		return 2
	}
	level := slog.LevelInfo
	if opts.verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{opts: opts}
	rows, err := b.run(ctx)
	b.close(err != nil && ctx.Err() == nil)

	code := 0
	switch {
	case err != nil && ctx.Err() != nil:
		slog.Error("interrupted; stopped every process the bench started")
		code = 1
	case err != nil:
		slog.Error("bench failed", "err", err)
		code = 1
	}
	merged := mergeRuns(rows)
	if len(merged) > 0 {
		if werr := b.writeReport(stdout, merged, rows); werr != nil {
			slog.Error("write report", "err", werr)
			code = 1
		}
	}
	for _, r := range merged {
		if r.failed() {
			slog.Error("events were lost, refused or delivered when not due; see the missing and errors columns",
				"workload", r.Workload)
			code = 1
		}
	}
	return code
}

// run sets up the shared pieces and runs every selected workload
// --runs times. It returns the rows of each run, even after an error, so
// what was measured is still reported.
func (b *bench) run(ctx context.Context) ([][]row, error) {
	// Before the bench loads the machine itself.
	b.machine = readMachine()
	slog.Info("machine", "description", b.machine.String())
	var err error
	if b.tmp, err = os.MkdirTemp("", "cassata-bench-"); err != nil {
		return nil, err
	}
	if b.opts.keep {
		slog.Info("keeping temporary directory", "dir", b.tmp)
	}

	redisBin, err := exec.LookPath(b.opts.redisServer)
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	if b.opts.cassata != "" {
		if b.bin, err = exec.LookPath(b.opts.cassata); err != nil {
			return nil, fmt.Errorf("--cassata: %w", err)
		}
	} else if b.bin, err = buildCassata(ctx, b.tmp); err != nil {
		return nil, err
	}

	if b.redis, err = startRedis(ctx, redisBin, b.tmp); err != nil {
		return nil, err
	}
	if b.opts.archive == archiveMySQL {
		if b.mysql, err = startMySQL(ctx, b.tmp); err != nil {
			return nil, err
		}
	}
	if b.sink, err = startSink(ctx, b.tmp); err != nil {
		return nil, err
	}

	var runs [][]row
	for run := 1; run <= b.opts.runs; run++ {
		b.runNo = run
		var rows []row
		for _, w := range workloads {
			if !slices.Contains(b.opts.only, w.name) {
				continue
			}
			if b.opts.runs > 1 {
				slog.Info("run", "n", run, "of", b.opts.runs, "workload", w.name)
			}
			r, err := b.runWorkload(ctx, w)
			rows = append(rows, r...)
			if err != nil {
				return append(runs, rows), err
			}
		}
		runs = append(runs, rows)
	}
	return runs, nil
}

// close stops everything the bench started, in reverse order. After a
// failure the temporary directory stays, so the process logs can be read.
func (b *bench) close(failed bool) {
	b.sink.stop()
	b.mysql.stop()
	b.redis.stop()
	switch {
	case b.tmp == "" || b.opts.keep:
	case failed:
		slog.Info("kept the temporary directory with the process logs", "dir", b.tmp)
	default:
		_ = os.RemoveAll(b.tmp)
	}
}

// writeReport prints the tables of rows (merged over runs) and the lines
// under them; runs holds each run's own rows, for per-run ratios.
func (b *bench) writeReport(w io.Writer, rows []row, runs [][]row) error {
	if _, err := fmt.Fprintf(w, "%s\n%s\n\n", b.machine, b.headerLine()); err != nil {
		return err
	}
	if err := writeTable(w, mainColumns, rows); err != nil {
		return err
	}
	summary := fmt.Sprintf("runs: %d", b.opts.runs)
	if b.opts.runs > 1 {
		summary += " (medians; early, dups, missing, errors, unarchived: worst run)"
	}
	summary += fmt.Sprintf("; shape: %s; ids: %s; backlog: %s pending; workers: %d; archive: %s; creates: batch route, %d clients; "+
		"lateness = first arrival − due time (topics: the message's)",
		b.opts.shape, b.opts.ids, formatInt(float64(b.opts.backlog)), b.opts.workers, b.archiveName(), createConc)
	if _, err := fmt.Fprintf(w, "%s\n%s\n", summary, targetsLine); err != nil {
		return err
	}
	if slices.ContainsFunc(rows, func(r row) bool { return r.RowsPerSec.ok || r.LagMax.ok }) {
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
		if err := writeTable(w, archiveColumns, rows); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, archiveLegend(b.opts)); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(rows, func(r row) bool { return r.WorkerCPU.ok || r.RedisCPU.ok }) {
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
		if err := writeTable(w, cpuColumns, rows); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, cpuLegend(b.opts)); err != nil {
			return err
		}
	}
	if line := flowsRatioLine(b.opts, runs); line != "" {
		if _, err := fmt.Fprintf(w, "%s\n%s\n", line, flowsLegend(b.opts)); err != nil {
			return err
		}
	}
	return nil
}
