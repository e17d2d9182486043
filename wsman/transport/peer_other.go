//go:build !unix

package transport

import "net"

// peerOpen cannot peek at the socket here; a connection the host closed
// is found out when a request is written on it.
func peerOpen(net.Conn) bool { return true }
