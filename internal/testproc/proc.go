package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultGrace is how long Stop waits after SIGTERM before SIGKILL when
// Config.Grace is zero.
const DefaultGrace = 5 * time.Second

// Config describes a child process.
type Config struct {
	// Name names the process in errors and failure output. Defaults to the
	// base name of Path.
	Name string
	// Path is the binary to run.
	Path string
	// Args are the arguments after the binary's name.
	Args []string
	// Env is the child's whole environment. Defaults to the caller's
	// environment (nil, as in exec.Cmd).
	Env []string
	// Dir is the child's working directory. Defaults to the caller's.
	Dir string
	// LogPath is the file that receives the child's stdout and stderr:
	// truncated by Start, appended to by Restart. Defaults to memory.
	LogPath string
	// Grace is how long Stop waits after SIGTERM before it sends SIGKILL.
	// Defaults to DefaultGrace.
	Grace time.Duration
	// KillOnCleanup makes the cleanup StartT registers send SIGKILL at once
	// instead of stopping gracefully: for processes whose shutdown a test
	// does not care about, and for processes a test may have paused
	// (SIGSTOP), which would sit out the whole grace.
	KillOnCleanup bool
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = filepath.Base(c.Path)
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	return c
}

// Proc is a child process. Its methods are safe for concurrent use.
type Proc struct {
	cfg Config

	mu     sync.Mutex // serialises start, Stop, Kill and Restart
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	mem    Buffer        // output without LogPath
	since  int64         // where the current run's output starts
}

// Start starts the child described by cfg. It does not wait for the child
// to be ready: see WaitReady.
func Start(cfg Config) (*Proc, error) {
	p := &Proc{cfg: cfg.withDefaults()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startLocked(true); err != nil {
		return nil, err
	}
	return p, nil
}

// StartT starts the child for t, failing t when it cannot start. When t
// ends the child is stopped (or killed, see Config.KillOnCleanup) and,
// if t failed, its output is logged.
func StartT(t testing.TB, cfg Config) *Proc {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	p.Cleanup(t)
	return p
}

// Cleanup registers with t.Cleanup what StartT registers: end the process,
// then log its output if t failed.
func (p *Proc) Cleanup(t testing.TB) {
	t.Cleanup(func() {
		if p.cfg.KillOnCleanup {
			p.Kill()
		} else {
			p.Stop()
		}
		if t.Failed() {
			t.Logf("%s (pid %d, %s) output:\n%s", p.cfg.Name, p.Pid(), p.State(), p.Output())
		}
	})
}

// startLocked starts the command; callers hold p.mu.
func (p *Proc) startLocked(first bool) error {
	cmd := exec.Command(p.cfg.Path, p.cfg.Args...)
	cmd.Env = p.cfg.Env
	cmd.Dir = p.cfg.Dir
	cmd.SysProcAttr = sysProcAttr()
	var logf *os.File
	if p.cfg.LogPath != "" {
		flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
		if first {
			flags |= os.O_TRUNC
		}
		var err error
		if logf, err = os.OpenFile(p.cfg.LogPath, flags, 0o644); err != nil {
			return fmt.Errorf("%s: log file: %w", p.cfg.Name, err)
		}
		defer logf.Close() // the child keeps its own descriptor
		fi, err := logf.Stat()
		if err != nil {
			return fmt.Errorf("%s: log file: %w", p.cfg.Name, err)
		}
		p.since = fi.Size()
		cmd.Stdout, cmd.Stderr = logf, logf
	} else {
		p.since = int64(p.mem.Len())
		cmd.Stdout, cmd.Stderr = &p.mem, &p.mem
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// Name returns the process's name.
func (p *Proc) Name() string { return p.cfg.Name }

// Pid returns the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Exited returns a channel closed once the current run has exited.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Running reports whether the current run has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.Exited():
		return false
	default:
		return true
	}
}

// State returns the exit state of the current run, nil while it runs.
func (p *Proc) State() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Err returns nil while the current run is running, and once it has
// exited an error saying how, with the tail of its output.
func (p *Proc) Err() error {
	p.mu.Lock()
	exited, cmd := p.exited, p.cmd
	p.mu.Unlock()
	select {
	case <-exited:
		return fmt.Errorf("%s exited (%s); last output:\n%s", p.cfg.Name, cmd.ProcessState, p.Tail(20))
	default:
		return nil
	}
}

// Output returns what the current run has written so far (since the last
// Start or Restart).
func (p *Proc) Output() string {
	p.mu.Lock()
	since := p.since
	p.mu.Unlock()
	var b []byte
	if p.cfg.LogPath == "" {
		b = p.mem.Bytes()
	} else {
		f, err := os.Open(p.cfg.LogPath)
		if err != nil {
			return "(no log: " + err.Error() + ")"
		}
		defer f.Close()
		if b, err = io.ReadAll(f); err != nil {
			return "(log: " + err.Error() + ")"
		}
	}
	if since > int64(len(b)) {
		return ""
	}
	return string(b[since:])
}

// Tail returns the last n lines of Output, indented, with a count of the
// lines left out.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	var head string
	if len(lines) > n {
		head = fmt.Sprintf("    ... (%d lines before)\n", len(lines)-n)
		lines = lines[len(lines)-n:]
	}
	return head + "    " + strings.Join(lines, "\n    ")
}

// Signal sends sig to the process (e.g. SIGSTOP and SIGCONT to pause it).
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM, letting the process shut down cleanly, and waits for
// it to exit, sending SIGKILL to its group after Config.Grace. It does
// nothing when the process has already exited, or on a nil *Proc (a server
// that never started).
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(syscall.SIGTERM, p.cfg.Grace)
}

// Kill sends SIGKILL to the process group, simulating a crash, and waits
// for the process to exit. Like Stop, it does nothing on a nil *Proc.
func (p *Proc) Kill() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(syscall.SIGKILL, 0)
}

// Restart stops the process if it still runs and starts the same command
// again; output goes on in the same log. It does not wait for readiness.
func (p *Proc) Restart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(syscall.SIGTERM, p.cfg.Grace)
	return p.startLocked(false)
}

// restartPause is how long RestartReady waits before it tries again.
const restartPause = 200 * time.Millisecond

// RestartReady restarts p and calls ready, and does both again after a
// pause, up to PortAttempts times, while ready fails with ErrAddrInUse: a
// port that p itself freed can be taken by another process in between,
// and there is no other port to move to when clients hold the address.
func (p *Proc) RestartReady(ready func(*Proc) error) error {
	var err error
	for range PortAttempts {
		if err = p.Restart(); err == nil {
			err = ready(p)
		}
		if err == nil || !errors.Is(err, ErrAddrInUse) {
			return err
		}
		time.Sleep(restartPause)
	}
	return err
}

// endLocked signals a running process and waits for it; with a positive
// grace it escalates to SIGKILL after grace. Callers hold p.mu.
func (p *Proc) endLocked(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	if sig == syscall.SIGKILL {
		killGroup(p.cmd.Process)
	} else {
		_ = p.cmd.Process.Signal(sig)
	}
	if grace > 0 {
		select {
		case <-p.exited:
			return
		case <-time.After(grace):
			killGroup(p.cmd.Process)
		}
	}
	<-p.exited
}

// Probe reports whether a process is ready; WaitReady calls it until it
// returns nil. Each call gets a context bounded by ProbeTimeout.
type Probe func(ctx context.Context) error

// ProbeTimeout bounds one call of a Probe.
const ProbeTimeout = time.Second

// pollInterval is the pause between two probes.
const pollInterval = 25 * time.Millisecond

// WaitReady calls probe until it returns nil, the process exits, ctx ends
// or timeout passes. Its errors carry the tail of the output. It does not
// end the process.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration, probe Probe) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := p.Exited()
	for {
		pctx, pcancel := context.WithTimeout(ctx, ProbeTimeout)
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return p.Err()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready within %s (last: %v); last output:\n%s", p.cfg.Name, timeout, err, p.Tail(20))
			}
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// Buffer is a bytes.Buffer safe for concurrent writes and reads: the
// output of a child, or a log destination.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Bytes returns a copy of everything written so far.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

// Len returns the number of bytes written so far.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
