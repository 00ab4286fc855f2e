//go:build !linux

package main

import "syscall"

// sysProcAttr leaves children in the bench's process group outside Linux;
// the bench still stops every child it started when it exits.
func sysProcAttr() *syscall.SysProcAttr { return nil }
