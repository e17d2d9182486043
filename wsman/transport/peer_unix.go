//go:build unix

package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// peerOpen reports whether the host has not closed an idle connection:
// one non-blocking peek at the socket. A request written on a connection
// the host already closed would be lost in a way that leaves open whether
// the host saw it; found closed here, nothing has been written and a new
// connection is dialled instead. net/http learns the same from a reader
// goroutine that waits on every idle connection.
//
// On a plain connection, bytes waiting while idle also make it unusable
// (the stream is out of step). On TLS they may be a session ticket or a
// key update, which leave it usable, or the close_notify alert that a
// host (Go's server, HTTP.sys) sends before it closes, or data: only
// crypto/tls can tell, so it reads them (see tlsIdleOpen).
func peerOpen(c net.Conn) bool {
	tc, isTLS := c.(*tls.Conn)
	if isTLS {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open, waiting := true, false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) || errors.Is(rerr, syscall.EINTR):
		case rerr != nil, n == 0:
			open = false
		default:
			waiting = true
		}
		return true
	})
	if err != nil || !open {
		return false
	}
	if waiting {
		return isTLS && tlsIdleOpen(tc)
	}
	return true
}

// tlsIdleWait bounds how long tlsIdleOpen lets crypto/tls read records
// already seen waiting; it is spent whole only when they were all
// post-handshake messages, and then once.
const tlsIdleWait = 20 * time.Millisecond

// tlsIdleOpen lets crypto/tls read the records waiting on an idle
// connection. It handles post-handshake messages itself and returns
// only data, an error, or (the records used up) the deadline: only the
// last leaves the connection usable. A timeout does not break a
// tls.Conn (crypto/tls keeps only non-temporary errors).
func tlsIdleOpen(tc *tls.Conn) bool {
	_ = tc.SetReadDeadline(time.Now().Add(tlsIdleWait))
	var b [1]byte
	n, err := tc.Read(b[:])
	_ = tc.SetReadDeadline(time.Time{})
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}
