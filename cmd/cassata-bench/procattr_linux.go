package main

import "syscall"

// sysProcAttr puts each child in its own process group, so a Ctrl-C in the
// terminal reaches only the bench (which then stops the children in order),
// and makes the kernel kill the child if the bench dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
