// Package testproc runs the child processes of tests and of the bench:
// redis-server, MariaDB and cassata itself. It is the one place that knows
// how such a child is started, watched and ended:
//
//	Start ──► WaitReady(probe) ──► ... ──► Stop (SIGTERM, SIGKILL after Grace)
//	                                  ├──► Kill (SIGKILL: a crash)
//	                                  └──► Restart (Stop, then the same command again)
//
// Each child runs in its own process group, so a Ctrl-C in the terminal
// reaches only the program that started it (which then stops its children
// in order) and Kill takes any grandchildren along. On Linux the kernel also
// kills the child when the starting thread dies, e.g. when `go test
// -timeout` panics before cleanups run, so no server outlives a test run.
//
// A child's output goes to a log file or, without one, to memory; Output and
// Tail give what the current run wrote, for failure messages. StartT ties a
// child to a test: it is stopped when the test ends and its output is logged
// when the test failed.
//
// Ports: FreePort asks the kernel for an unused loopback port, which another
// process may take before the child binds it; OnFreePort retries a start on
// a new port while it fails with ErrAddrInUse.
package testproc
