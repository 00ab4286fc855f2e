package testproc

import (
	"errors"
	"net"
	"strconv"
)

// PortAttempts is how many ports OnFreePort tries.
const PortAttempts = 5

// ErrAddrInUse is what a start function given to OnFreePort wraps when the
// child could not bind its port, so that OnFreePort tries another.
var ErrAddrInUse = errors.New("address already in use")

// FreePort asks the kernel for an unused loopback port. Another process may
// take it before the child binds it: see OnFreePort.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LoopbackAddr returns 127.0.0.1:port.
func LoopbackAddr(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// OnFreePort calls start with a free loopback port, and again with another
// one, up to PortAttempts times, while start fails with ErrAddrInUse. It
// returns start's last error.
func OnFreePort(start func(port int) error) error {
	var err error
	for range PortAttempts {
		var port int
		if port, err = FreePort(); err != nil {
			return err
		}
		if err = start(port); !errors.Is(err, ErrAddrInUse) {
			return err
		}
	}
	return err
}
