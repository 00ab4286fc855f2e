package mysqltest

import "syscall"

// sysProcAttr makes the kernel kill the server when the program that
// started it dies, e.g. when `go test -timeout` panics before cleanups and
// TestMain run, so no orphaned servers outlive a test run. Its own process
// group keeps a Ctrl-C in the terminal from reaching the server directly:
// the program decides when to stop it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
