//go:build !unix

package delivery

import (
	"net"
	"syscall"
)

// livenessProbe has no portable non-blocking read here: idle connections
// are reused unchecked, and a request on one the peer closed is resent when
// the retry rules allow it.
func livenessProbe(net.Conn, *bool) (syscall.RawConn, func(fd uintptr) bool) { return nil, nil }
