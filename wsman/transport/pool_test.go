package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// waitPeerClosed polls peerOpen until it sees the host's close of h,
// which reaches the socket a moment after the host closes.
func waitPeerClosed(t *testing.T, h *hconn) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); peerOpen(h.nc); {
		if time.Now().After(deadline) {
			t.Fatal("peerOpen still says open 10s after the host closed the connection")
		}
		time.Sleep(time.Millisecond)
	}
}

func skipWithoutPeek(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("peerOpen cannot peek on " + runtime.GOOS)
	}
}

// serveThenClose answers one request on each connection, then waits
// for close (when non-nil) and closes it.
func serveThenClose(t *testing.T, close <-chan struct{}) *rawServer {
	return newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, okReply); err != nil {
				return
			}
			if close != nil {
				<-close
				return
			}
		}
	})
}

func TestPeerOpenPlain(t *testing.T) {
	skipWithoutPeek(t)
	closeIt := make(chan struct{})
	srv := serveThenClose(t, closeIt)
	ep := mustEndpoint(t, srv.url())
	h := dialRaw(t, srv.addr)
	if _, err := h.roundTrip(context.Background(), ep, nil, soapType, nil, 100, 0); err != nil {
		t.Fatal(err)
	}
	if !peerOpen(h.nc) || !h.reusable(time.Hour) {
		t.Fatal("an idle connection the host keeps open is not reusable")
	}
	if h.reusable(time.Nanosecond) {
		t.Error("a connection idle beyond maxIdle is reusable")
	}
	close(closeIt)
	waitPeerClosed(t, h)
	if h.reusable(time.Hour) {
		t.Error("reusable after the host closed it")
	}
}

// Bytes the host sends on an idle plain connection put it out of step.
func TestPeerOpenStrayBytes(t *testing.T) {
	skipWithoutPeek(t)
	srv := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, okReply)
		// A forged reply after a pause, so that it is not read with the first.
		time.Sleep(10 * time.Millisecond)
		_, _ = io.WriteString(c, okReply)
		_, _ = io.Copy(io.Discard, br)
	})
	h := dialRaw(t, srv.addr)
	if _, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, nil, 100, 0); err != nil {
		t.Fatal(err)
	}
	waitPeerClosed(t, h)
	if h.broken {
		t.Error("peerOpen closed the connection; it only reports")
	}
}

// startRawTLS is a TLS 1.3 server on loopback whose connections answer
// one request each and close when close is closed (sending
// close_notify). handshaked receives a value when a handshake is done,
// by which time the server has written its session tickets.
func startRawTLS(t *testing.T, pki *testPKI, close <-chan struct{}) (srv *rawServer, handshaked <-chan struct{}) {
	hs := make(chan struct{}, 4)
	// Asking for a client certificate makes Go's server send its session
	// tickets after the client's Finished, so that they wait in the
	// client's socket rather than arrive with the handshake.
	conf := &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}, MinVersion: tls.VersionTLS13, ClientAuth: tls.RequestClientCert}
	srv = newRawServer(t, func(c net.Conn, _ int) {
		tc := tls.Server(c, conf)
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			return
		}
		hs <- struct{}{}
		if _, _, err := readRequest(bufio.NewReader(tc)); err != nil {
			return
		}
		if _, err := io.WriteString(tc, okReply); err != nil {
			return
		}
		<-close
	})
	return srv, hs
}

func TestPeerOpenTLS(t *testing.T) {
	skipWithoutPeek(t)
	pki := newTestPKI(t)
	closeIt := make(chan struct{})
	srv, handshaked := startRawTLS(t, pki, closeIt)
	ep := mustEndpoint(t, "https://"+srv.addr+"/wsman")
	d, err := Config{CAFile: pki.CAFile, Proxy: noProxy}.newDialer()
	if err != nil {
		t.Fatal(err)
	}
	// With a session cache the client offers PSK modes, and Go's server
	// then sends session tickets (none to a client that could not use
	// them).
	d.tls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	h, err := d.connect(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	<-handshaked
	// The session tickets are waiting, unread: they leave it open, and
	// reading them leaves the TLS connection usable.
	for range 3 {
		if !peerOpen(h.nc) {
			t.Fatal("a TLS connection with session tickets waiting reads as closed")
		}
	}
	if _, err := h.roundTrip(context.Background(), ep, nil, soapType, nil, 100, 0); err != nil {
		t.Fatalf("request after peerOpen read the tickets: %v", err)
	}
	if !h.reusable(time.Hour) {
		t.Fatal("an idle TLS connection the host keeps open is not reusable")
	}
	close(closeIt) // close_notify, then FIN
	waitPeerClosed(t, h)
}

// The pool finds the idle connection closed by the host before writing
// on it, and dials a new one: the request goes out once, and succeeds.
func TestPoolDialsAfterHostClosedIdle(t *testing.T) {
	skipWithoutPeek(t)
	closeIt := make(chan struct{})
	srv := serveThenClose(t, closeIt)
	d, err := Config{Proxy: noProxy}.newDialer()
	if err != nil {
		t.Fatal(err)
	}
	p := newConnPool(d, Config{})
	defer p.closeIdle()
	ep := mustEndpoint(t, srv.url())
	if _, err := p.exchange(context.Background(), ep, nil, soapType, []byte("1"), 100, 0); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	if len(p.idle) != 1 {
		t.Fatalf("%d idle connections after one exchange, want 1", len(p.idle))
	}
	idle := p.idle[0].h
	p.mu.Unlock()
	close(closeIt)
	waitPeerClosed(t, idle)

	// The second connection stays open: closeIt is closed, so each
	// handler returns after one reply; the new one must still answer.
	resp, err := p.exchange(context.Background(), ep, nil, soapType, []byte("2"), 100, 0)
	if err != nil {
		t.Fatalf("second request: %v", err)
	}
	if string(resp.Body) != "ok" {
		t.Errorf("body %q", resp.Body)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("%d connections dialled, want 2", n)
	}
	if !idle.broken {
		t.Error("the dead connection was not closed")
	}
}

// Idle connections beyond MaxIdleConnsPerHost are closed, the others
// reused most recent first.
func TestPoolKeepsAtMostMaxIdle(t *testing.T) {
	srv := serveThenClose(t, nil)
	d, err := Config{Proxy: noProxy}.newDialer()
	if err != nil {
		t.Fatal(err)
	}
	p := newConnPool(d, Config{MaxIdleConnsPerHost: 1})
	defer p.closeIdle()
	ep := mustEndpoint(t, srv.url())
	a, err := p.get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*hconn{a, b} {
		if _, err := h.roundTrip(context.Background(), ep, nil, soapType, nil, 100, 0); err != nil {
			t.Fatal(err)
		}
	}
	p.put(ep.key, a)
	p.put(ep.key, b)
	if !b.broken || a.broken {
		t.Errorf("broken: first %v, second %v; want only the one beyond the bound closed", a.broken, b.broken)
	}
	got, err := p.get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Error("the idle connection was not reused")
	}
	got.close()
	p.put(ep.key, got)
	p.mu.Lock()
	n := len(p.idle)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("a broken connection was pooled (%d idle)", n)
	}
}
