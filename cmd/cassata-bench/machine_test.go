package main

import (
	"strings"
	"testing"
)

func TestParseCPUModel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, want string }{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n" +
			"processor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n", "AMD EPYC 7B13 64-Core Processor"},
		{"arm", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		{"none", "processor\t: 0\nBogoMIPS\t: 50.00\n", ""},
		{"empty", "", ""},
	} {
		if got := parseCPUModel(c.in); got != c.want {
			t.Errorf("%s: parseCPUModel = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	t.Parallel()
	got, err := parseMemTotal("MemTotal:       24683748 kB\nMemFree:         1000000 kB\n")
	if err != nil || got != 24683748*1024 {
		t.Errorf("parseMemTotal = %d, %v; want %d", got, err, 24683748*1024)
	}
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: 12 MB\n", "MemTotal: x kB\n", "MemTotal: 0 kB\n"} {
		if _, err := parseMemTotal(bad); err == nil {
			t.Errorf("parseMemTotal(%q) should fail", bad)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	t.Parallel()
	got, err := parseLoadavg("13.21 9.44 5.19 10/181 26185\n")
	if err != nil || got != [3]float64{13.21, 9.44, 5.19} {
		t.Errorf("parseLoadavg = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1.0 2.0", "1.0 x 3.0 1/2 3", "-1 0 0 1/1 1"} {
		if _, err := parseLoadavg(bad); err == nil {
			t.Errorf("parseLoadavg(%q) should fail", bad)
		}
	}
}

func TestMachineString(t *testing.T) {
	t.Parallel()
	m := machine{CPUModel: "AMD EPYC", CPUs: 2, GOMAXPROCS: 2, MemTotal: 3 << 30, Load: [3]float64{1.5, 1, 0.25}, LoadOK: true}
	want := "machine: AMD EPYC, 2 logical CPUs, GOMAXPROCS 2, 3.0 GiB memory; load average when the bench started: 1.50 1.00 0.25 (1/5/15 min)"
	if got := m.String(); got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
	if got := (machine{CPUModel: "unknown", CPUs: 1, GOMAXPROCS: 1}).String(); !strings.Contains(got, "unknown memory") ||
		!strings.Contains(got, "started: unknown") {
		t.Errorf("unknown parts: %q", got)
	}
}
