// Package testnet gives tests network addresses with a known behaviour.
//
// Tests that must bind a port they chose before (a host restarted on its
// old address, a server told where to listen) use a loopback address of
// their own, which no other test binds, so that the port cannot be taken
// in between by a listener of the tests running in parallel (Linux
// routes all of 127.0.0.0/8 to loopback and picks the source address of
// outgoing connections from 127.0.0.1). Every other test binds port 0 on
// 127.0.0.1 or 127.0.0.2. Taken so far:
//
//	127.0.0.11-13  integration: sims that restart (sim_test.go)
//	127.0.0.21-22  bitsprov/bitssim: TestHostServerAddrs
package testnet

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// RefusedAddr returns a loopback "127.0.0.1:port" on which every
// connection is refused, for as long as the test runs.
//
// The usual trick (listen on port 0, note the port, close the listener)
// races with every other test running in parallel: the kernel may hand
// the same port to the next listener, and then the "dead" host answers
// (CI once saw an NTLM handshake meet HTTP 405 from a file server).
// Here the port stays bound to a socket that never listens: the kernel
// answers a SYN with RST, so connecting fails with ECONNREFUSED, and no
// other socket can take the port until the test's cleanup closes it.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("testnet: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testnet: bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("testnet: getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("testnet: getsockname gave %T", sa)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
}

// RefusedPort is RefusedAddr's port, for tests that build the address
// themselves.
func RefusedPort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(RefusedAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}
