//go:build unix

package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerOpen reports whether the host has not closed an idle connection:
// one non-blocking peek at the socket. A request written on a connection
// the host already closed would be lost in a way that leaves open whether
// the host saw it; found closed here, nothing has been written and a new
// connection is dialled instead. net/http learns the same from a reader
// goroutine that waits on every idle connection.
//
// On a plain connection, bytes waiting while idle also make it unusable
// (the stream is out of step); on TLS they may be a session ticket, so
// only a close counts.
func peerOpen(c net.Conn) bool {
	tlsConn := false
	if tc, ok := c.(*tls.Conn); ok {
		c, tlsConn = tc.NetConn(), true
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) || errors.Is(rerr, syscall.EINTR):
		case rerr != nil, n == 0:
			open = false
		default:
			open = tlsConn
		}
		return true
	})
	return err == nil && open
}
