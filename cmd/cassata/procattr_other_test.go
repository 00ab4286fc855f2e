//go:build !linux

package main

import "syscall"

// sysProcAttr: Pdeathsig is Linux's; elsewhere the test's cleanup kills.
func sysProcAttr() *syscall.SysProcAttr { return nil }
