package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU per delivery comes from the kernel's accounting of the bench's child
// processes: utime + stime of /proc/<pid>/stat, read at the start and at
// the end of a workload's window, for the workers (summed), the server,
// Redis and the sink. Each process is single (no children of its own), so
// its own counters hold all its CPU.

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture.
const userHZ = 100

// cpuTimes sums the user and system CPU time of pids from /proc.
func cpuTimes(pids ...int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, err
		}
		t, err := parseStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += t
	}
	return total, nil
}

// parseStatCPU reads utime + stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, fmt.Errorf("negative CPU time %d", v)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuSample is CPU time (user + system) of each part of a deployment:
// since it started, or over a window (sub).
type cpuSample struct {
	Worker, Server, Redis, Sink time.Duration // Worker: all workers together
	// Archive is the bench's MariaDB (--archive mysql), when HasArchive:
	// with SQLite the archive's work is in the workers.
	Archive    time.Duration
	HasArchive bool
}

func (s cpuSample) sub(t cpuSample) cpuSample {
	return cpuSample{Worker: s.Worker - t.Worker, Server: s.Server - t.Server, Redis: s.Redis - t.Redis,
		Sink: s.Sink - t.Sink, Archive: s.Archive - t.Archive, HasArchive: s.HasArchive && t.HasArchive}
}

// cpuProcs are the processes a delivery's CPU is spent in.
type cpuProcs struct {
	workers             []int
	server, redis, sink int
	archive             int // the bench's MariaDB; 0: none (SQLite)
}

func (b *bench) cpuProcs(d *deployment) cpuProcs {
	p := cpuProcs{server: d.server.Pid(), redis: b.redis.proc.Pid(), sink: b.sink.proc.Pid()}
	if b.mysql != nil {
		p.archive = b.mysql.proc.Pid()
	}
	for _, w := range d.workers {
		p.workers = append(p.workers, w.Pid())
	}
	return p
}

// read samples every process's CPU time.
func (p cpuProcs) read() (cpuSample, error) {
	var s cpuSample
	var errs [5]error
	s.Worker, errs[0] = cpuTimes(p.workers...)
	s.Server, errs[1] = cpuTimes(p.server)
	s.Redis, errs[2] = cpuTimes(p.redis)
	s.Sink, errs[3] = cpuTimes(p.sink)
	if p.archive != 0 {
		s.Archive, errs[4] = cpuTimes(p.archive)
		s.HasArchive = true
	}
	return s, errors.Join(errs[:]...)
}

// cpuWindow measures the CPU time spent from a given instant (a first due
// time) until end is called.
type cpuWindow struct {
	name  string
	procs cpuProcs
	timer *time.Timer
	start chan cpuStart
}

type cpuStart struct {
	s   cpuSample
	err error
}

// cpuFrom starts a window whose first sample is taken at at (by a timer,
// so the caller may be busy creating events then); name is for the log.
func (b *bench) cpuFrom(d *deployment, name string, at time.Time) *cpuWindow {
	w := &cpuWindow{name: name, procs: b.cpuProcs(d), start: make(chan cpuStart, 1)}
	w.timer = time.AfterFunc(time.Until(at), func() {
		s, err := w.procs.read()
		w.start <- cpuStart{s, err}
	})
	return w
}

// end takes the last sample and returns the CPU spent since the window's
// start; ok is false (and the reason logged) when the start had not come
// or /proc could not be read.
func (w *cpuWindow) end() (spent cpuSample, ok bool) {
	if w.timer.Stop() {
		slog.Warn("no CPU figures: the first due time had not come", "run", w.name)
		return cpuSample{}, false
	}
	last, err := w.procs.read()
	start := <-w.start
	if err := errors.Join(start.err, err); err != nil {
		slog.Warn("no CPU figures", "run", w.name, "err", err)
		return cpuSample{}, false
	}
	spent = last.sub(start.s)
	slog.Info("CPU", "run", w.name, "worker", spent.Worker, "server", spent.Server, "redis", spent.Redis,
		"sink", spent.Sink, "archive_db", spent.Archive)
	return spent, true
}

// setCPU fills r's CPU columns: spent per delivery, in microseconds.
func (r *row) setCPU(spent cpuSample, delivered int) {
	if delivered <= 0 {
		return
	}
	per := func(d time.Duration) metric { return some(float64(d.Microseconds()) / float64(delivered)) }
	r.WorkerCPU, r.ServerCPU, r.RedisCPU, r.SinkCPU = per(spent.Worker), per(spent.Server), per(spent.Redis),
		per(spent.Sink)
	if spent.HasArchive {
		r.ArchiveCPU = per(spent.Archive)
	}
}

// cancel stops a window whose end will not come (the workload failed).
func (w *cpuWindow) cancel() { w.timer.Stop() }

// cpuLegend says what the CPU table measures and over which window.
func cpuLegend(o options) string {
	runs := "one run"
	if o.runs > 1 {
		runs = fmt.Sprintf("medians of %d runs", o.runs)
	}
	return "CPU = user + system time of each child process from the kernel's accounting (/proc/<pid>/stat, " +
		"10 ms ticks) per delivery, " + runs + "; worker = all " + strconv.Itoa(o.workers) + " worker(s). " +
		"Windows: burst, the schedules' plain burst and archive from the first create until the outbox is " +
		"drained (each event's whole life: create, claim, delivery, finish, archiving); " +
		"steady (and schedules idle's steady rows) from the first due time until the last delivery was seen; " +
		"flows steady until the last delivery + " + dupGrace.String() + ". " +
		"The bench learns of the last delivery from one long-polling request to the sink a second and reads the " +
		"arrivals after the window, so the sink's figure is its deliveries; Redis's includes the bench's outbox " +
		"polls (burst, archive) and flow-key samples (flows steady); archive DB = the bench's MariaDB " +
		"(--archive mysql; with SQLite the archive's work is in the workers' figure)"
}
