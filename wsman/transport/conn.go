package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file is the HTTP/1.1 engine under every transport: one TCP (or
// TLS) connection per hconn, a request written with one write, its reply
// read in the caller's goroutine.
//
// net/http's Transport was used before, and cost about 90 µs of client
// CPU per request on top of this engine's 50 (measured on loopback, 2
// cores): every request hands off to a writer and a reader goroutine,
// which wake each other and the caller through channels, and the
// request and reply go through maps of headers in both directions. A
// WinRM client needs none of that generality: every request is a POST
// of a byte slice to one path, replies are small and read whole, and
// NTLM binds authentication to one connection, which net/http's pool
// hides (the NTLM transports had to pin a connection through the dial
// hook and reconstruct what happened on it from httptrace callbacks).
// Here a connection is a value the transports hold, so they know which
// connection a message went out on, whether any of it was written and
// whether any reply came back.

// endpoint is a parsed WS-Man URL.
type endpoint struct {
	u *url.URL
	// key identifies the server a connection is made to: scheme and
	// address, so that connections to different endpoints never mix.
	key string
	// addr is host:port to dial (the default port added).
	addr string
	// hostHeader is the Host header: the URL's host as written.
	hostHeader string
	// https says the connection is TLS.
	https bool
	// raw is the URL as given; originTarget and proxyTarget are the
	// request-targets (see target).
	raw                       string
	originTarget, proxyTarget string
}

func newEndpoint(raw string) (endpoint, error) {
	u, err := parseEndpoint(raw)
	if err != nil {
		return endpoint{}, err
	}
	https := strings.EqualFold(u.Scheme, "https")
	port := u.Port()
	if port == "" {
		port = "80"
		if https {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	scheme := "http"
	if https {
		scheme = "https"
	}
	e := endpoint{u: u, key: scheme + "://" + addr, addr: addr, hostHeader: u.Host, https: https, raw: raw}
	e.setTargets()
	return e, nil
}

// target is the request-target: origin form, or absolute form when the
// request goes to a forwarding proxy (http:// through a proxy).
func (e endpoint) target(viaProxy bool) string {
	if viaProxy {
		return e.proxyTarget
	}
	return e.originTarget
}

func (e *endpoint) setTargets() {
	path := e.u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if e.u.RawQuery != "" {
		// url.Parse keeps a space in the query (it refuses controls), and
		// a space would split the request line.
		path += "?" + strings.ReplaceAll(e.u.RawQuery, " ", "%20")
	}
	e.originTarget = path
	e.proxyTarget = "http://" + e.u.Host + path
}

// endpointCache remembers the last endpoint parsed: a transport serves
// one host, so every request names the same URL, and parsing it again
// cost several allocations per request.
type endpointCache struct {
	last atomic.Pointer[endpoint]
}

// prepare is what every transport does before sending req: refuse a nil
// request, parse its endpoint (an error never repeats a password written
// into the URL) and turn its extra headers into header lines appended to
// dst. Its errors are marked ErrNotSent.
func (c *endpointCache) prepare(req *Request, dst []header) (endpoint, []header, error) {
	if req == nil {
		return endpoint{}, nil, errors.New("nil request")
	}
	ep, err := c.get(req.URL)
	if err != nil {
		return ep, nil, &notSentError{err}
	}
	hdrs, err := requestHeaders(dst, req.Header)
	if err != nil {
		return ep, nil, &notSentError{fmt.Errorf("post to %s: %w", ep.hostHeader, err)}
	}
	return ep, hdrs, nil
}

// get parses raw, or returns the endpoint parsed from it last time.
func (c *endpointCache) get(raw string) (endpoint, error) {
	if e := c.last.Load(); e != nil && e.raw == raw {
		return *e, nil
	}
	e, err := newEndpoint(raw)
	if err != nil {
		return e, err
	}
	c.last.Store(&e)
	return e, nil
}

// dialer opens connections to endpoints, through a proxy when the
// configuration says so, with TLS for https://.
type dialer struct {
	tls         *tls.Config
	proxy       func(*http.Request) (*url.URL, error)
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout time.Duration
}

func (c Config) newDialer() (*dialer, error) {
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	dt := c.DialTimeout
	if dt <= 0 {
		dt = DefaultDialTimeout
	}
	proxy := c.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	nd := &net.Dialer{KeepAlive: 30 * time.Second}
	return &dialer{tls: tlsConf, proxy: proxy, dial: nd.DialContext, dialTimeout: dt}, nil
}

// connect opens a connection to ep. Its errors are failures to connect:
// nothing of any request was written.
func (d *dialer) connect(ctx context.Context, ep endpoint) (*hconn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.dialTimeout)
	defer cancel()
	proxyURL, err := d.proxy(&http.Request{Method: http.MethodPost, URL: ep.u, Header: http.Header{}, Host: ep.u.Host})
	if err != nil {
		// http.ProxyFromEnvironment quotes a malformed HTTPS_PROXY whole,
		// credentials included.
		return nil, fmt.Errorf("proxy for %s: %s", ep.hostHeader, redactURLs(err.Error()))
	}
	addr := ep.addr
	if proxyURL != nil {
		if !strings.EqualFold(proxyURL.Scheme, "http") && !strings.EqualFold(proxyURL.Scheme, "https") {
			// net/http also spoke SOCKS5; this engine speaks HTTP (or
			// HTTP over TLS) to a proxy, and would send a SOCKS proxy
			// bytes it cannot read.
			return nil, fmt.Errorf("proxy %s for %s: scheme %q is not supported (use an http:// or https:// proxy)", proxyURL.Host, ep.hostHeader, proxyURL.Scheme)
		}
		addr = proxyAddr(proxyURL)
	}
	nc, err := d.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if proxyURL != nil && strings.EqualFold(proxyURL.Scheme, "https") {
		// TLS to the proxy itself (and, for https:// endpoints, TLS to the
		// host inside the CONNECT tunnel), as net/http does.
		conf := d.tls.Clone()
		conf.ServerName = proxyURL.Hostname()
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with proxy %s: %w", proxyURL.Host, err)
		}
		nc = tc
	}
	h := newHconn(nc)
	if proxyURL != nil && !ep.https {
		// A forwarding proxy: requests name the whole URL.
		h.viaProxy = true
		h.proxyAuth = proxyAuthorization(proxyURL)
		return h, nil
	}
	if proxyURL != nil {
		if err := h.tunnel(ctx, ep, proxyURL); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if ep.https {
		conf := d.tls.Clone()
		if conf.ServerName == "" {
			conf.ServerName = ep.u.Hostname()
		}
		tc := tls.Client(h.nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", ep.addr, err)
		}
		h.nc = tc
		h.br.Reset(tc)
	}
	return h, nil
}

// ErrProxyAuthentication is a proxy refusing our CONNECT with 407: its
// credentials (in the proxy URL's user information) are missing or wrong.
var ErrProxyAuthentication = errors.New("the proxy requires authentication")

// ErrProxyRefused is a proxy refusing our CONNECT with any other status:
// the host could not be reached through it.
var ErrProxyRefused = errors.New("the proxy refused the tunnel")

// proxyError is a refused CONNECT: its text is the cause's, and it
// matches its kind.
type proxyError struct {
	err  error
	kind error
}

func (e *proxyError) Error() string   { return e.err.Error() }
func (e *proxyError) Unwrap() []error { return []error{e.err, e.kind} }

// userinfoInURL matches the user information of a URL in a text.
var userinfoInURL = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^@/\s"']*@`)

// redactURLs replaces the user information of every URL in s, so that a
// proxy's password never reaches an error.
func redactURLs(s string) string { return userinfoInURL.ReplaceAllString(s, "${1}REDACTED@") }

func proxyAddr(p *url.URL) string {
	port := p.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(p.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(p.Hostname(), port)
}

func proxyAuthorization(p *url.URL) string {
	if p.User == nil {
		return ""
	}
	pw, _ := p.User.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(p.User.Username()+":"+pw))
}

// tunnel asks the proxy on h for a CONNECT tunnel to ep, so that TLS and
// NTLM run end to end over it.
func (h *hconn) tunnel(ctx context.Context, ep endpoint, proxyURL *url.URL) error {
	var b []byte
	b = append(b, "CONNECT "+ep.addr+" HTTP/1.1\r\nHost: "+ep.addr+"\r\n"...)
	if pa := proxyAuthorization(proxyURL); pa != "" {
		b = append(b, "Proxy-Authorization: "+pa+"\r\n"...)
	}
	b = append(b, "\r\n"...)
	stop := h.watch(ctx)
	defer stop()
	if _, err := h.nc.Write(b); err != nil {
		return fmt.Errorf("proxy %s: CONNECT %s: %w", proxyURL.Host, ep.addr, ctxErr(ctx, err))
	}
	status, _, err := h.readHead(true)
	if err != nil {
		return fmt.Errorf("proxy %s: CONNECT %s: %w", proxyURL.Host, ep.addr, ctxErr(ctx, err))
	}
	if status < 200 || status > 299 {
		// Any 2xx opens the tunnel (RFC 9110 9.3.6).
		kind := ErrProxyRefused
		if status == http.StatusProxyAuthRequired {
			kind = ErrProxyAuthentication
		}
		return &proxyError{fmt.Errorf("proxy %s refused CONNECT %s: HTTP %d", proxyURL.Host, ep.addr, status), kind}
	}
	if h.br.Buffered() != 0 {
		return fmt.Errorf("proxy %s: CONNECT %s: data after the 200", proxyURL.Host, ep.addr)
	}
	return nil
}

// hconn is one HTTP/1.1 connection. It is used by one goroutine at a
// time; the transports serialise or pool.
type hconn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte
	// exchanges counts complete request/reply exchanges: a connection
	// with one or more is "reused" for the next.
	exchanges int
	// broken says the connection must not carry another request: an
	// error, a reply that was not read to its end, or Connection: close.
	broken bool
	// idleSince is when the last exchange ended.
	idleSince time.Time
	// viaProxy and proxyAuth: requests go to a forwarding proxy.
	viaProxy  bool
	proxyAuth string
	// got says a byte of a reply has been read in this exchange.
	got bool
}

// readBufSize is the reader's buffer, and so the longest status or
// header line accepted.
const readBufSize = 16 << 10

func newHconn(nc net.Conn) *hconn {
	return &hconn{nc: nc, br: bufio.NewReaderSize(nc, readBufSize)}
}

// close closes the connection for good.
func (h *hconn) close() {
	h.broken = true
	h.nc.Close()
}

// reusable reports whether h may carry another request: not broken, not
// idle longer than maxIdle, and not closed by the host while idle.
func (h *hconn) reusable(maxIdle time.Duration) bool {
	if h.broken || (maxIdle > 0 && time.Since(h.idleSince) > maxIdle) {
		return false
	}
	if h.br.Buffered() != 0 {
		// Bytes nobody asked for: the stream is out of step.
		return false
	}
	return peerOpen(h.nc)
}

// header is one request header line.
type header struct{ name, value string }

// exchangeError is a failed exchange, with what is known of how far it
// got: whether any byte of the request was written, and whether any
// byte of a reply came back. It unwraps to its cause.
type exchangeError struct {
	err      error
	written  bool
	answered bool
	reused   bool
	// reading says the request was written whole and the reply failed.
	reading bool
}

func (e *exchangeError) Error() string { return e.err.Error() }

// op names the stage that failed, for the error's prefix.
func (e *exchangeError) op() string {
	if e.reading {
		return "read reply from"
	}
	return "post to"
}

// exchangeFailed prefixes err with the stage that failed and host, and
// marks it ErrNotSent when no byte of the request was written.
func exchangeFailed(ctx context.Context, host string, err error) error {
	op := "post to"
	var xe *exchangeError
	if errors.As(err, &xe) {
		op = xe.op()
	}
	err = fmt.Errorf("%s %s: %w", op, host, ctxErr(ctx, err))
	if xe != nil && !xe.written {
		return &notSentError{err}
	}
	return err
}
func (e *exchangeError) Unwrap() error { return e.err }

// responseTimeoutError is the reply headers not arriving within
// Config.ResponseTimeout. It matches context.DeadlineExceeded, as
// net/http's did, so that callers treat it as the timeout it is.
type responseTimeoutError struct{ d time.Duration }

func (e *responseTimeoutError) Error() string {
	return fmt.Sprintf("timeout awaiting response headers (%s)", e.d)
}
func (e *responseTimeoutError) Timeout() bool   { return true }
func (e *responseTimeoutError) Temporary() bool { return true }
func (e *responseTimeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

// errReplyTooLong is a status or header line longer than readBufSize.
var errReplyTooLong = errors.New("reply header line too long")

// maxHeaderLines bounds the header lines of one reply, and its
// trailer lines.
const maxHeaderLines = 200

// max1xx bounds the interim (1xx) replies before the real one, as
// net/http does: a peer sending "100 Continue" without end would
// otherwise hold the caller until its context ends.
const max1xx = 5

// maxChunkOverhead bounds the bytes of chunked framing (size lines,
// extensions, CRLFs) beyond an allowance per chunk, so that a peer
// cannot stream extensions without data; net/http has the same rule.
const maxChunkOverhead = 16 << 10

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O
// return at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch makes the connection's blocked I/O return when ctx ends (and
// sets ctx's deadline on it); the returned func undoes it and reports
// whether ctx ended. Cheap when ctx can never end.
func (h *hconn) watch(ctx context.Context) (stop func() bool) {
	d, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = h.nc.SetDeadline(d)
	}
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	unregister := context.AfterFunc(ctx, func() { _ = h.nc.SetDeadline(aLongTimeAgo) })
	return func() bool {
		ended := !unregister()
		if hasDeadline || ended {
			_ = h.nc.SetDeadline(time.Time{})
		}
		return ended
	}
}

// connCtxErr is ctxErr for an error of I/O under watch: the connection's
// deadline (ctx's) can fire a moment before ctx itself reports it ended.
func connCtxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
	}
	return ctxErr(ctx, err)
}

// roundTrip posts body to ep on h and reads the whole reply, up to limit
// bytes of body. respTimeout (0: none) bounds the wait for the reply's
// headers after the request is written. Any failure leaves h broken and
// comes as an *exchangeError.
func (h *hconn) roundTrip(ctx context.Context, ep endpoint, hdrs []header, contentType string, body []byte, limit int64, respTimeout time.Duration) (resp *Response, err error) {
	reused := h.exchanges > 0
	if err := ctx.Err(); err != nil {
		return nil, &exchangeError{err: err, reused: reused}
	}
	if h.broken {
		return nil, &exchangeError{err: errors.New("connection is closed"), reused: reused}
	}
	written, reading := false, false
	h.got = false
	stop := h.watch(ctx)
	defer func() {
		if stop() && err == nil {
			// ctx ended as the reply came in: its AfterFunc may set a
			// past deadline on the connection at any moment from now,
			// so the connection cannot carry another request.
			h.close()
		}
		if err != nil {
			h.close()
			err = connCtxErr(ctx, err)
			err = &exchangeError{err: err, written: written, answered: h.got, reused: reused, reading: reading}
		}
	}()

	w := h.wbuf[:0]
	w = append(w, "POST "...)
	w = append(w, ep.target(h.viaProxy)...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, ep.hostHeader...)
	w = append(w, "\r\nUser-Agent: bitsremote\r\nContent-Type: "...)
	w = append(w, contentType...)
	w = append(w, "\r\nContent-Length: "...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	w = append(w, "\r\n"...)
	if h.proxyAuth != "" {
		w = append(w, "Proxy-Authorization: "+h.proxyAuth+"\r\n"...)
	}
	for _, hd := range hdrs {
		w = append(w, hd.name...)
		w = append(w, ": "...)
		w = append(w, hd.value...)
		w = append(w, "\r\n"...)
	}
	w = append(w, "\r\n"...)
	const inline = 64 << 10
	var n int64
	if len(body) <= inline {
		w = append(w, body...)
		var k int
		k, err = h.nc.Write(w)
		n = int64(k)
	} else {
		bufs := net.Buffers{w, body}
		n, err = bufs.WriteTo(h.nc)
	}
	if cap(w) <= 4*inline {
		h.wbuf = w[:0]
	}
	written = n > 0
	if err != nil {
		if !written || ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		// The host stopped reading before the request was written
		// whole: it may have answered first (a 413 to a body over
		// MaxEnvelopeSizekb, a 401 sent early), and that answer, which
		// net/http used to return, says more than the write's error.
		if resp, rerr := h.readReply(ctx, limit, respTimeout); rerr == nil {
			h.close()
			return resp, nil
		}
		return nil, err
	}
	reading = true
	return h.readReply(ctx, limit, respTimeout)
}

// readReply reads the reply to a request written on h: interim replies
// skipped, then the status, headers and body.
func (h *hconn) readReply(ctx context.Context, limit int64, respTimeout time.Duration) (*Response, error) {
	if respTimeout > 0 {
		d := time.Now().Add(respTimeout)
		if cd, ok := ctx.Deadline(); !ok || d.Before(cd) {
			_ = h.nc.SetReadDeadline(d)
		} else {
			respTimeout = 0
		}
		// A deadline set after ctx's AfterFunc set a past one undoes
		// the cancellation: look again.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	var status int
	var hdr http.Header
	for i := 0; ; i++ {
		var err error
		status, hdr, err = h.readHead(false)
		if err != nil {
			if respTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				err = &responseTimeoutError{respTimeout}
			}
			return nil, err
		}
		if status >= 200 {
			break
		}
		if status == http.StatusSwitchingProtocols {
			// Final for the connection (RFC 9110 15.2.2), and never asked for.
			return nil, errors.New("unexpected HTTP 101 Switching Protocols")
		}
		// 1xx: an interim reply (100 Continue); the real one follows.
		if i == max1xx {
			return nil, fmt.Errorf("more than %d interim (1xx) replies", max1xx)
		}
	}
	if respTimeout > 0 {
		if cd, ok := ctx.Deadline(); ok {
			_ = h.nc.SetReadDeadline(cd)
		} else {
			_ = h.nc.SetReadDeadline(time.Time{})
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	respBody, keep, err := h.readBody(hdr, status, limit)
	if err != nil {
		return nil, err
	}
	if h.br.Buffered() != 0 {
		// More than the reply announced: its length lied, and what
		// follows must not pass for the reply to the next request.
		keep = false
	}
	h.exchanges++
	h.idleSince = time.Now()
	if !keep {
		h.close()
	}
	return &Response{StatusCode: status, Header: hdr, ContentType: hdr.Get("Content-Type"), Body: respBody}, nil
}

// readHead reads a status line and headers. connect says it answers a
// CONNECT (whose headers are read and dropped).
func (h *hconn) readHead(connect bool) (int, http.Header, error) {
	line, err := h.readLine()
	if err != nil {
		return 0, nil, err
	}
	proto, rest, ok := strings.Cut(line, " ")
	// HTTP-version is "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3); a 1.x
	// above 1.1 is read as 1.1.
	if !ok || len(proto) != len("HTTP/1.1") || !strings.HasPrefix(proto, "HTTP/1.") || proto[7] < '0' || proto[7] > '9' {
		return 0, nil, fmt.Errorf("malformed HTTP status line %q", truncate(line, 64))
	}
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || status < 100 {
		return 0, nil, fmt.Errorf("malformed HTTP status code in %q", truncate(line, 64))
	}
	hdr := make(http.Header, 6)
	lastKey := ""
	for i := 0; ; i++ {
		if i == maxHeaderLines {
			return status, nil, fmt.Errorf("reply has more than %d header lines", maxHeaderLines)
		}
		kv, err := h.readLineBytes()
		if err != nil {
			return status, nil, unexpected(err)
		}
		if len(kv) == 0 {
			break
		}
		if connect {
			continue
		}
		if bytes.ContainsAny(kv, "\x00\r") {
			// Invalid and dangerous (RFC 9110 5.5): a bare CR may end a
			// line for another parser on the way.
			return status, nil, fmt.Errorf("malformed HTTP header value in %q", truncate(string(kv), 64))
		}
		if (kv[0] == ' ' || kv[0] == '\t') && lastKey != "" {
			// obs-fold: a continuation of the previous line, to be
			// replaced with a space (RFC 9112 5.2).
			vs := hdr[lastKey]
			vs[len(vs)-1] += " " + string(bytes.Trim(kv, " \t"))
			continue
		}
		colon := bytes.IndexByte(kv, ':')
		if colon <= 0 || kv[0] == ' ' || kv[0] == '\t' {
			return status, nil, fmt.Errorf("malformed HTTP header line %q", truncate(string(kv), 64))
		}
		key := headerKey(kv[:colon])
		if key == "" {
			return status, nil, fmt.Errorf("malformed HTTP header name %q", truncate(string(kv[:colon]), 64))
		}
		hdr[key] = append(hdr[key], string(bytes.Trim(kv[colon+1:], " \t")))
		lastKey = key
	}
	if proto == "HTTP/1.0" && !connect && (!headerHasToken(hdr, "Connection", "keep-alive") || len(hdr["Transfer-Encoding"]) > 0) {
		// HTTP/1.0 closes unless kept alive; and Transfer-Encoding in an
		// HTTP/1.0 message is faulty framing (RFC 9112 6.1): close after.
		hdr["Connection"] = append(hdr["Connection"], "close")
	}
	return status, hdr, nil
}

// readLine reads one CRLF- (or LF-) terminated line without its end.
func (h *hconn) readLine() (string, error) {
	b, err := h.readLineBytes()
	return string(b), err
}

func (h *hconn) readLineBytes() ([]byte, error) {
	b, err := h.br.ReadSlice('\n')
	if len(b) > 0 {
		h.got = true
	}
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errReplyTooLong
		}
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// commonHeaders are the reply headers a WinRM host sends, so that their
// keys cost no allocation.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Connection", "Server", "Date",
		"Www-Authenticate", "Retry-After", "Transfer-Encoding", "Keep-Alive", "Proxy-Authenticate",
		"Persistent-Auth", "X-Content-Type-Options", "Cache-Control", "Location"} {
		m[k] = k
	}
	return m
}()

// headerKey canonicalises a header name ("content-type" becomes
// "Content-Type"), or returns "" for a name with invalid bytes.
func headerKey(b []byte) string {
	var buf [64]byte
	if len(b) > len(buf) {
		for _, c := range b {
			if c <= ' ' || c >= 0x7f || c == ':' {
				return ""
			}
		}
		return textproto.CanonicalMIMEHeaderKey(string(b))
	}
	k := buf[:len(b)]
	upper := true
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return ""
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		k[i] = c
		upper = c == '-'
	}
	if s, ok := commonHeaders[string(k)]; ok {
		return s
	}
	return string(k)
}

func headerHasToken(hdr http.Header, key, token string) bool {
	for _, v := range hdr[key] {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// readBody reads the reply body that hdr and status announce. keep says
// the connection may carry another request afterwards.
func (h *hconn) readBody(hdr http.Header, status int, limit int64) (body []byte, keep bool, err error) {
	keep = !headerHasToken(hdr, "Connection", "close")
	if status == http.StatusNoContent || status == http.StatusNotModified {
		return []byte{}, keep, nil
	}
	if te := hdr["Transfer-Encoding"]; len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return nil, false, fmt.Errorf("unsupported Transfer-Encoding %q", strings.Join(te, ", "))
		}
		if len(hdr["Content-Length"]) > 0 {
			// Chunked overrides the length, but the pair is a sign of
			// smuggling or splitting (RFC 9112 6.3): read the body,
			// trust nothing after it.
			keep = false
		}
		body, err = h.readChunked(limit)
		return body, keep, err
	}
	if cls := hdr["Content-Length"]; len(cls) > 0 {
		for _, v := range cls[1:] {
			if v != cls[0] {
				return nil, false, fmt.Errorf("conflicting Content-Length headers %q", cls)
			}
		}
		// 1*DIGIT (RFC 9110 8.6): ParseUint takes no sign.
		u, perr := strconv.ParseUint(cls[0], 10, 63)
		if perr != nil {
			return nil, false, fmt.Errorf("malformed Content-Length %q", cls[0])
		}
		n := int64(u)
		if n > limit {
			// Refuse before reading: the peer announced more than we accept.
			return nil, false, &SizeError{Limit: limit}
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(h.br, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		return body, keep, nil
	}
	// Neither: the body runs to the end of the connection.
	body, err = readBody(h.br, limit)
	return body, false, err
}

// readChunked reads a chunked body (RFC 9112 7.1) up to limit bytes,
// trailers dropped.
func (h *hconn) readChunked(limit int64) ([]byte, error) {
	body := []byte{}
	// overhead is the framing read beyond what the chunks so far allow.
	var overhead int64
	for {
		line, err := h.readLineBytes()
		if err != nil {
			return nil, unexpected(err)
		}
		overhead += int64(len(line)) + 2
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, perr := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 64)
		if perr != nil {
			return nil, fmt.Errorf("malformed chunk size %q", truncate(string(line), 32))
		}
		if size == 0 {
			for i := 0; ; i++ {
				if i == maxHeaderLines {
					return nil, fmt.Errorf("reply has more than %d trailer lines", maxHeaderLines)
				}
				t, err := h.readLineBytes()
				if err != nil {
					return nil, unexpected(err)
				}
				if len(t) == 0 {
					return body, nil
				}
			}
		}
		if size > uint64(limit-int64(len(body))) {
			return nil, &SizeError{Limit: limit}
		}
		// Each chunk may carry 16 bytes of framing and twice its size.
		overhead = max(overhead-16-2*int64(size), 0)
		if overhead > maxChunkOverhead {
			return nil, errors.New("chunked reply has too much framing for its data")
		}
		start := len(body)
		body = growTo(body, start+int(size), limit)
		if _, err := io.ReadFull(h.br, body[start:]); err != nil {
			return nil, unexpected(err)
		}
		crlf, err := h.readLineBytes()
		if err != nil {
			return nil, unexpected(err)
		}
		if len(crlf) != 0 {
			return nil, errors.New("malformed chunk: no CRLF after the data")
		}
	}
}

// growTo returns b extended to length n (n <= limit), its capacity
// doubling as append's would but never past limit.
func growTo(b []byte, n int, limit int64) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	c := int(min(max(int64(2*cap(b)), int64(n)), limit))
	nb := make([]byte, n, c)
	copy(nb, b)
	return nb
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
