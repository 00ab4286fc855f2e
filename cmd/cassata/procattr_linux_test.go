package main

import "syscall"

// sysProcAttr makes the kernel kill a cassata subprocess when the test
// binary dies first (e.g. a -timeout panic), so none outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
