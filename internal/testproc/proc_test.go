package testproc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/testproc"
)

// The children of these tests are this test binary itself, in a mode that
// helperEnv selects, so the tests need nothing installed.
const helperEnv = "TESTPROC_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

// helper is the child's main.
func helper(mode string) {
	// Signal handling is in place before "started" is printed: the tests
	// signal the child as soon as they read it.
	term := make(chan os.Signal, 1)
	switch mode {
	case "term":
		signal.Notify(term, syscall.SIGTERM)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Println("helper", mode, "started")
	switch mode {
	case "exit":
		fmt.Println("boom")
		os.Exit(3)
	case "term": // exits 0 on SIGTERM
		<-term
		fmt.Println("got SIGTERM")
		os.Exit(0)
	case "ignore-term":
		select {}
	case "http": // serves 200 on ADDR
		l, err := net.Listen("tcp", os.Getenv("ADDR"))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		_ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	case "grandchild": // starts a child of its own and prints its pid
		p, err := os.StartProcess(os.Args[0], os.Args[:1], &os.ProcAttr{Env: []string{helperEnv + "=ignore-term"}})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("grandchild-pid %d\n", p.Pid)
		select {}
	}
}

func helperConfig(t *testing.T, mode string, env ...string) testproc.Config {
	return testproc.Config{
		Name: "helper-" + mode,
		Path: os.Args[0],
		Env:  append([]string{helperEnv + "=" + mode}, env...),
		Dir:  t.TempDir(),
	}
}

// waitOutput waits until the process has written want.
func waitOutput(t *testing.T, p *testproc.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output:\n%s", want, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStopSendsSIGTERM(t *testing.T) {
	t.Parallel()
	p := testproc.StartT(t, helperConfig(t, "term"))
	waitOutput(t, p, "started")
	p.Stop()
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	if !strings.Contains(p.Output(), "got SIGTERM") || !p.State().Success() {
		t.Errorf("state %s, output:\n%s", p.State(), p.Output())
	}
	p.Stop() // a second Stop does nothing
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	cfg := helperConfig(t, "ignore-term")
	cfg.Grace = 200 * time.Millisecond
	p := testproc.StartT(t, cfg)
	waitOutput(t, p, "started")
	start := time.Now()
	p.Stop()
	if d := time.Since(start); d < cfg.Grace {
		t.Errorf("Stop returned after %s, before the grace of %s", d, cfg.Grace)
	}
	ws, ok := p.State().Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("state %s, want killed by SIGKILL", p.State())
	}
}

func TestKillTakesTheProcessGroup(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("process groups are set up on Linux")
	}
	p := testproc.StartT(t, helperConfig(t, "grandchild"))
	waitOutput(t, p, "grandchild-pid ")
	_, after, _ := strings.Cut(p.Output(), "grandchild-pid ")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(after, "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived Kill", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is no zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func TestWaitReadyHTTP(t *testing.T) {
	t.Parallel()
	var p *testproc.Proc
	err := testproc.OnFreePort(func(port int) error {
		addr := testproc.LoopbackAddr(port)
		p = testproc.StartT(t, helperConfig(t, "http", "ADDR="+addr))
		err := p.WaitReady(context.Background(), 10*time.Second, testproc.HTTP("http://"+addr+"/"))
		if err != nil && strings.Contains(p.Output(), "address already in use") {
			return fmt.Errorf("%w: %v", testproc.ErrAddrInUse, err)
		}
		if err == nil {
			err = testproc.TCP(addr)(context.Background())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWaitReadyReportsAnEarlyExit(t *testing.T) {
	t.Parallel()
	p := testproc.StartT(t, helperConfig(t, "exit"))
	err := p.WaitReady(context.Background(), 10*time.Second, func(context.Context) error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitReady = %v; want the exit status and the output", err)
	}
}

func TestWaitReadyTimesOut(t *testing.T) {
	t.Parallel()
	p := testproc.StartT(t, helperConfig(t, "term"))
	err := p.WaitReady(context.Background(), 100*time.Millisecond, func(context.Context) error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "not ready within") || !strings.Contains(err.Error(), "not yet") {
		t.Errorf("WaitReady = %v; want a timeout naming the last probe error", err)
	}
	if !p.Running() {
		t.Error("WaitReady ended the process")
	}
}

func TestRestartKeepsTheLogAndShowsTheNewRun(t *testing.T) {
	t.Parallel()
	cfg := helperConfig(t, "term")
	cfg.LogPath = filepath.Join(cfg.Dir, "helper.log")
	p := testproc.StartT(t, cfg)
	waitOutput(t, p, "started")
	first := p.Pid()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, "started")
	if p.Pid() == first || !p.Running() {
		t.Errorf("after Restart pid %d (was %d), running %v", p.Pid(), first, p.Running())
	}
	if out := p.Output(); strings.Contains(out, "got SIGTERM") {
		t.Errorf("Output shows the previous run:\n%s", out)
	}
	log, err := os.ReadFile(cfg.LogPath)
	if err != nil || strings.Count(string(log), "started") != 2 || !strings.Contains(string(log), "got SIGTERM") {
		t.Errorf("log file (err %v) should hold both runs:\n%s", err, log)
	}
}

func TestStartTStopsWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	var p *testproc.Proc
	t.Run("child", func(t *testing.T) {
		cfg := helperConfig(t, "ignore-term")
		cfg.KillOnCleanup = true
		p = testproc.StartT(t, cfg)
	})
	if p.Running() {
		t.Error("process still runs after its test ended")
	}
}

func TestOnFreePortTriesAnotherPort(t *testing.T) {
	t.Parallel()
	var ports []int
	err := testproc.OnFreePort(func(port int) error {
		ports = append(ports, port)
		if len(ports) < 3 {
			return fmt.Errorf("port %d: %w", port, testproc.ErrAddrInUse)
		}
		return nil
	})
	if err != nil || len(ports) != 3 {
		t.Errorf("OnFreePort = %v after %d tries; want success at the third", err, len(ports))
	}
	calls := 0
	other := errors.New("other")
	if err := testproc.OnFreePort(func(int) error { calls++; return other }); err != other || calls != 1 {
		t.Errorf("OnFreePort = %v after %d calls; want the first error that is not ErrAddrInUse", err, calls)
	}
}

func TestRestartReadyRetriesATakenPort(t *testing.T) {
	t.Parallel()
	p := testproc.StartT(t, helperConfig(t, "term"))
	pids := map[int]bool{p.Pid(): true}
	err := p.RestartReady(func(p *testproc.Proc) error {
		pids[p.Pid()] = true
		if len(pids) < 3 {
			return testproc.ErrAddrInUse
		}
		return nil
	})
	if err != nil || len(pids) != 3 || !p.Running() {
		t.Errorf("RestartReady = %v after %d runs, running %v; want success at the second restart", err, len(pids), p.Running())
	}
}
