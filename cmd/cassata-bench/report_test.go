package main

import (
	"strings"
	"testing"
)

func TestFormatInt(t *testing.T) {
	t.Parallel()
	tests := map[float64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 12345.6: "12,346",
		1_000_000: "1,000,000", -1234: "-1,234", 100_000: "100,000",
	}
	for v, want := range tests {
		if got := formatInt(v); got != want {
			t.Errorf("formatInt(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestFormatMS(t *testing.T) {
	t.Parallel()
	tests := map[float64]string{0.04: "0.0", 3.25: "3.2", 19.96: "20.0", -1.5: "-1.5", 12345.4: "12,345"}
	for v, want := range tests {
		if got := formatMS(v); got != want {
			t.Errorf("formatMS(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	rows := []row{
		{Workload: "burst", DeliveriesPerSec: some(15234.4), LateMin: some(3.24), LateP50: some(612.34), LateP99: some(1201),
			LateMax: some(1250.5), Early: some(0), Dups: some(0), Missing: some(0), Errors: some(0)},
		{Workload: "ingest single", CreatesPerSec: some(9001), Errors: some(0)},
		{Workload: "memory", BytesPerPending: some(351.7), Errors: some(0)},
	}
	var b strings.Builder
	if err := writeTable(&b, mainColumns, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, rule and 3 rows, got %d lines:\n%s", len(lines), b.String())
	}
	for i, l := range lines {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("line %d is %d wide, header %d: columns not aligned:\n%s", i, len([]rune(l)), len([]rune(lines[0])), b.String())
		}
	}
	wantCells := map[int][]string{
		0: {"workload", "deliveries/s", "late min ms", "late p50 ms", "late p99 ms", "late max ms", "early", "dups", "missing", "errors", "creates/s", "bytes/pending"},
		2: {"burst", "15,234", "3.2", "612.3", "1201.0", "1250.5", "0", "0", "0", "0", "-", "-"},
		3: {"ingest single", "-", "-", "-", "-", "-", "-", "-", "-", "0", "9,001", "-"},
		4: {"memory", "-", "-", "-", "-", "-", "-", "-", "-", "0", "-", "352"},
	}
	for i, want := range wantCells {
		var got []string
		for _, c := range strings.Split(lines[i], "|") {
			got = append(got, strings.TrimSpace(c))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("line %d cells = %q, want %q", i, got, want)
		}
	}
	if !strings.HasPrefix(lines[2], "burst ") || !strings.HasSuffix(lines[2], " -") {
		t.Errorf("workload should be left-aligned and numbers right-aligned: %q", lines[2])
	}
}

func TestMergeRuns(t *testing.T) {
	t.Parallel()
	runs := [][]row{
		{{Workload: "burst", DeliveriesPerSec: some(100), LateP99: some(5), Missing: some(0)},
			{Workload: "memory", BytesPerPending: some(300)}},
		{{Workload: "burst", DeliveriesPerSec: some(300), LateP99: some(9), Missing: some(2)},
			{Workload: "memory", BytesPerPending: some(320)}},
		{{Workload: "burst", DeliveriesPerSec: some(200), LateP99: some(7), Missing: some(0)}},
	}
	got := mergeRuns(runs)
	if len(got) != 2 || got[0].Workload != "burst" || got[1].Workload != "memory" {
		t.Fatalf("mergeRuns order = %+v", got)
	}
	b := got[0]
	if b.DeliveriesPerSec != some(200) || b.LateP99 != some(7) {
		t.Errorf("measurements should be medians: %+v", b)
	}
	if b.Missing != some(2) {
		t.Errorf("missing should be the worst run, got %+v", b.Missing)
	}
	if b.CreatesPerSec.ok {
		t.Errorf("a column no run measured should stay empty: %+v", b.CreatesPerSec)
	}
	if got[1].BytesPerPending != some(310) {
		t.Errorf("memory median over the runs that have it = %+v, want 310", got[1].BytesPerPending)
	}
	if !b.failed() || got[1].failed() {
		t.Errorf("failed(): burst with missing events should fail, memory should not")
	}
}
