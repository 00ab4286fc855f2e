package integration

import "syscall"

// sysProcAttr makes the kernel kill a worker subprocess when the test binary
// dies first (e.g. a -timeout panic), so no worker outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
