package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// The command name holds a space and a parenthesis; utime 250 and
	// stime 50 ticks are 3 s.
	stat := "4242 (cassata w) rk) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 10"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %s, %v; want 3s", got, err)
	}
	// A real line of redis-server, as the kernel writes it (with a newline).
	redis := "81234 (redis-server) S 81200 81234 81200 0 -1 4194304 1203 0 0 0 1234 567 0 0 20 0 5 0 " +
		"9876543 150000000 2500 18446744073709551615 1 1 0 0 0 0 0 4097 17642 0 0 0 17 1 0 0 0 0 0\n"
	if got, err := parseStatCPU(redis); err != nil || got != 18010*time.Millisecond {
		t.Errorf("parseStatCPU(redis) = %s, %v; want 18.01s", got, err)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 x 50 0",
		"4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 -5 50 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) should fail", bad)
		}
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if _, err := cpuTimes(os.Getpid()); err != nil {
			t.Errorf("cpuTimes(self): %v", err)
		}
		if _, err := cpuTimes(-1); err == nil {
			t.Error("cpuTimes of a pid that cannot exist should fail")
		}
	}
}

func TestCPUPerDelivery(t *testing.T) {
	t.Parallel()
	start := cpuSample{Worker: time.Second, Server: 2 * time.Second, Redis: 3 * time.Second, Sink: 4 * time.Second}
	end := cpuSample{Worker: 3 * time.Second, Server: 2*time.Second + 100*time.Millisecond, Redis: 4 * time.Second,
		Sink: 4*time.Second + 500*time.Millisecond}
	var r row
	r.setCPU(end.sub(start), 10_000)
	if r.WorkerCPU != some(200) || r.ServerCPU != some(10) || r.RedisCPU != some(100) || r.SinkCPU != some(50) {
		t.Errorf("per delivery = %+v %+v %+v %+v; want 200, 10, 100, 50 µs", r.WorkerCPU, r.ServerCPU, r.RedisCPU, r.SinkCPU)
	}
	var none row
	none.setCPU(end.sub(start), 0)
	if none.WorkerCPU.ok || none.SinkCPU.ok {
		t.Errorf("no deliveries should leave the CPU columns empty: %+v", none)
	}
	if l := cpuLegend(options{runs: 3, workers: 2}); !strings.Contains(l, "medians of 3 runs") || !strings.Contains(l, "outbox is drained") {
		t.Errorf("legend = %q", l)
	}
}

// TestSetCPUArchive: the archive DB column is filled only when the bench ran
// its own MariaDB (with SQLite the archive's work is in the workers).
func TestSetCPUArchive(t *testing.T) {
	start := cpuSample{Worker: time.Second, Archive: 2 * time.Second, HasArchive: true}
	end := cpuSample{Worker: 3 * time.Second, Archive: 3 * time.Second, HasArchive: true}
	var r row
	r.setCPU(end.sub(start), 1000)
	if !r.ArchiveCPU.ok || r.ArchiveCPU.v != 1000 || r.WorkerCPU.v != 2000 {
		t.Fatalf("archive %+v, worker %+v; want 1000 and 2000 µs per delivery", r.ArchiveCPU, r.WorkerCPU)
	}
	var sqlite row
	sqlite.setCPU(cpuSample{Worker: time.Second}.sub(cpuSample{}), 1000)
	if sqlite.ArchiveCPU.ok {
		t.Fatalf("archive CPU %+v without an archive process", sqlite.ArchiveCPU)
	}
}
