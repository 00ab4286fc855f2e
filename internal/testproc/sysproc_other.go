//go:build !linux

package testproc

import (
	"os"
	"syscall"
)

// sysProcAttr: process groups and Pdeathsig are set up on Linux only;
// elsewhere Stop, Kill and the test cleanups still end every child.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }
