package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes the computer the bench ran on, for the report: the
// numbers mean little without it.
type machine struct {
	CPUModel   string // "unknown" when /proc/cpuinfo does not say
	CPUs       int    // logical CPUs
	GOMAXPROCS int    // of the bench; cassata's processes use their own default
	MemTotal   int64  // bytes; 0 when unknown
	Load       [3]float64
	LoadOK     bool
}

// readMachine reads the machine's description from /proc and the Go
// runtime; what cannot be read stays unknown.
func readMachine() machine {
	m := machine{CPUModel: "unknown", CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if s := parseCPUModel(string(b)); s != "" {
			m.CPUModel = s
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal, _ = parseMemTotal(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if l, err := parseLoadavg(string(b)); err == nil {
			m.Load, m.LoadOK = l, true
		}
	}
	return m
}

// parseCPUModel finds the CPU's name in /proc/cpuinfo: "model name" on
// x86, "Model" or "Hardware" on ARM, "cpu model" on MIPS. It returns ""
// when none is there.
func parseCPUModel(cpuinfo string) string {
	found := map[string]string{}
	for line := range strings.Lines(cpuinfo) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, seen := found[k]; !seen && v != "" {
			found[k] = v
		}
	}
	for _, k := range []string{"model name", "Model", "Hardware", "cpu model"} {
		if v := found[k]; v != "" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// parseMemTotal reads MemTotal from /proc/meminfo, in bytes.
func parseMemTotal(meminfo string) (int64, error) {
	for line := range strings.Lines(meminfo) {
		v, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("MemTotal: unexpected %q", strings.TrimSpace(v))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, fmt.Errorf("MemTotal: bad size %q", f[0])
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}

// parseLoadavg reads the 1, 5 and 15 minute load averages from /proc/loadavg.
func parseLoadavg(s string) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return l, fmt.Errorf("loadavg: %q has fewer than 3 fields", strings.TrimSpace(s))
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || v < 0 {
			return l, fmt.Errorf("loadavg: bad field %q", f[i])
		}
		l[i] = v
	}
	return l, nil
}

// String is the report's machine line.
func (m machine) String() string {
	mem := "unknown"
	if m.MemTotal > 0 {
		mem = fmt.Sprintf("%.1f GiB", float64(m.MemTotal)/(1<<30))
	}
	load := "unknown"
	if m.LoadOK {
		load = fmt.Sprintf("%.2f %.2f %.2f (1/5/15 min)", m.Load[0], m.Load[1], m.Load[2])
	}
	return fmt.Sprintf("machine: %s, %d logical CPUs, GOMAXPROCS %d, %s memory; load average when the bench started: %s",
		m.CPUModel, m.CPUs, m.GOMAXPROCS, mem, load)
}

// headerLine is the line under the machine's: the shape and the runs.
func (b *bench) headerLine() string {
	return fmt.Sprintf("shape: %s; runs: %d; sink: a process of its own (cassata-bench sink)",
		shapeLegend(b.opts.shape), b.opts.runs)
}
