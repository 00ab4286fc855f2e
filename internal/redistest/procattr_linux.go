package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server when the test binary dies,
// e.g. when `go test -timeout` panics before cleanups run, so no orphaned
// servers outlive a test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
