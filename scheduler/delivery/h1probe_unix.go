//go:build unix

package delivery

import (
	"errors"
	"net"
	"syscall"
)

// livenessProbe returns conn's raw connection and a probe for it: a
// non-blocking read that sets *alive when there is nothing to read (EAGAIN),
// the state of an open idle connection. Zero bytes (closed by the peer),
// unasked bytes or another error leave it false.
func livenessProbe(conn net.Conn, alive *bool) (syscall.RawConn, func(fd uintptr) bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	var b [1]byte
	return raw, func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), b[:])
		*alive = n < 0 && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
		return true // never wait for readability
	}
}
