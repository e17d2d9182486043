package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/testnet"
)

// rawServer is a loopback TCP server whose handler writes exact bytes,
// so that replies net/http's server would never send can be tested. It
// stops, and closes every connection, when the test ends.
type rawServer struct {
	ln   net.Listener
	addr string
	wg   sync.WaitGroup

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

// newRawServer runs handle on each accepted connection (n counts them
// from 1); handle need not close c.
func newRawServer(t testing.TB, handle func(c net.Conn, n int)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			n := s.accepted
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c, n)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// url is the server's endpoint URL.
func (s *rawServer) url() string { return "http://" + s.addr + "/wsman" }

// readRequest reads one request from br with net/http's parser, an
// implementation independent of the one under test.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// replyServer answers every request on a connection with the next of
// replies, then keeps the connection open until the peer closes it.
func replyServer(t testing.TB, replies ...string) *rawServer {
	return newRawServer(t, func(c net.Conn, _ int) {
		br := bufio.NewReader(c)
		for _, r := range replies {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, r); err != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, br)
	})
}

func mustEndpoint(t testing.TB, raw string) endpoint {
	t.Helper()
	ep, err := newEndpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// dialRaw opens an hconn to addr without a proxy.
func dialRaw(t testing.TB, addr string) *hconn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := newHconn(nc)
	t.Cleanup(h.close)
	return h
}

// noProxy is a Config.Proxy that never proxies, whatever the
// environment says.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// xflags is what an exchangeError says of how far the exchange got.
type xflags struct{ Written, Answered, Reused, Reading bool }

func flagsOf(t *testing.T, err error) xflags {
	t.Helper()
	var xe *exchangeError
	if !errors.As(err, &xe) {
		t.Fatalf("error %v (%T) is not an *exchangeError", err, err)
	}
	return xflags{xe.written, xe.answered, xe.reused, xe.reading}
}

const soapType = "application/soap+xml;charset=UTF-8"

func TestRoundTripReplies(t *testing.T) {
	long := strings.Repeat("a", readBufSize)
	manyHeaders := strings.Repeat("X-A: b\r\n", maxHeaderLines)
	tests := []struct {
		name  string
		reply string
		limit int64 // 0: 1 MiB
		// On success:
		status int
		header http.Header
		body   string
		kept   bool
		// On failure:
		err   string
		flags xflags
	}{
		{
			name:   "content-length",
			reply:  "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nServer: Microsoft-HTTPAPI/2.0\r\nContent-Length: 5\r\n\r\nhello",
			status: 200,
			header: http.Header{"Content-Type": {soapType}, "Server": {"Microsoft-HTTPAPI/2.0"}, "Content-Length": {"5"}},
			body:   "hello", kept: true,
		},
		{
			name:   "names canonicalised, values trimmed",
			reply:  "HTTP/1.1 200 OK\r\ncontent-LENGTH:   2  \r\nx-weird-name:\tv\t\r\n\r\nhi",
			status: 200,
			header: http.Header{"Content-Length": {"2"}, "X-Weird-Name": {"v"}},
			body:   "hi", kept: true,
		},
		{
			name:   "chunked with extensions and trailers",
			reply:  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world\r\n0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n",
			status: 200,
			header: http.Header{"Transfer-Encoding": {"chunked"}},
			body:   "hello world", kept: true,
		},
		{
			name:   "chunked, upper-case hex size",
			reply:  "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
			status: 200,
			header: http.Header{"Transfer-Encoding": {"Chunked"}},
			body:   "0123456789", kept: true,
		},
		{
			name:   "bare LF line ends",
			reply:  "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
			status: 200,
			header: http.Header{"Content-Length": {"3"}},
			body:   "abc", kept: true,
		},
		{
			name:   "chunked with bare LF",
			reply:  "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
			status: 200,
			header: http.Header{"Transfer-Encoding": {"chunked"}},
			body:   "abc", kept: true,
		},
		{
			name:   "status line without reason phrase",
			reply:  "HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n",
			status: 500,
			header: http.Header{"Content-Length": {"0"}},
			kept:   true,
		},
		{
			name:   "status line with an empty reason phrase",
			reply:  "HTTP/1.1 401 \r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: Basic realm=\"WSMAN\"\r\nContent-Length: 0\r\n\r\n",
			status: 401,
			header: http.Header{"Www-Authenticate": {"Negotiate", `Basic realm="WSMAN"`}, "Content-Length": {"0"}},
			kept:   true,
		},
		{
			name:   "HTTP/1.2 is read as 1.1",
			reply:  "HTTP/1.2 200 OK\r\nContent-Length: 1\r\n\r\nx",
			status: 200,
			header: http.Header{"Content-Length": {"1"}},
			body:   "x", kept: true,
		},
		{
			name:   "100 Continue, then the reply",
			reply:  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			status: 200,
			header: http.Header{"Content-Length": {"2"}},
			body:   "ok", kept: true,
		},
		{
			name:   "five interim replies are accepted",
			reply:  strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", 5) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			status: 200,
			header: http.Header{"Content-Length": {"0"}},
			kept:   true,
		},
		{
			name:  "a sixth interim reply is refused",
			reply: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			err:   "more than 5 interim (1xx) replies",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "101 Switching Protocols was not asked for",
			reply: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
			err:   "unexpected HTTP 101 Switching Protocols",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:   "204 has no body, whatever it says",
			reply:  "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
			status: 204,
			header: http.Header{"Content-Length": {"10"}},
			kept:   true,
		},
		{
			name:   "304 has no body",
			reply:  "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
			status: 304,
			header: http.Header{"Transfer-Encoding": {"chunked"}},
			kept:   true,
		},
		{
			name:   "HTTP/1.0 without length: body to EOF, then closed",
			reply:  "HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>proxy error</html>",
			status: 502,
			header: http.Header{"Content-Type": {"text/html"}, "Connection": {"close"}},
			body:   "<html>proxy error</html>",
		},
		{
			name:   "HTTP/1.0 keep-alive with a length stays open",
			reply:  "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
			status: 200,
			header: http.Header{"Connection": {"Keep-Alive"}, "Content-Length": {"2"}},
			body:   "ok", kept: true,
		},
		{
			name:   "HTTP/1.0 keep-alive with chunked framing is closed after",
			reply:  "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			status: 200,
			header: http.Header{"Connection": {"keep-alive", "close"}, "Transfer-Encoding": {"chunked"}},
			body:   "ok",
		},
		{
			name:   "HTTP/1.1 without length: body to EOF",
			reply:  "HTTP/1.1 200 OK\r\n\r\nall of it",
			status: 200,
			header: http.Header{},
			body:   "all of it",
		},
		{
			name:   "Connection: close",
			reply:  "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nok",
			status: 200,
			header: http.Header{"Connection": {"Keep-Alive, Close"}, "Content-Length": {"2"}},
			body:   "ok",
		},
		{
			name:   "identical duplicate Content-Length",
			reply:  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
			status: 200,
			header: http.Header{"Content-Length": {"2", "2"}},
			body:   "ok", kept: true,
		},
		{
			name:   "chunked wins over Content-Length, and the connection is not reused",
			reply:  "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			status: 200,
			header: http.Header{"Content-Length": {"100"}, "Transfer-Encoding": {"chunked"}},
			body:   "ok",
		},
		{
			name:   "bytes after the announced length: not reused",
			reply:  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged",
			status: 200,
			header: http.Header{"Content-Length": {"2"}},
			body:   "ok",
		},
		{
			name:   "obs-fold is joined with a space",
			reply:  "HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\nContent-Length: 0\r\n\r\n",
			status: 200,
			header: http.Header{"X-Folded": {"a b c"}, "Content-Length": {"0"}},
			kept:   true,
		},
		{
			name:  "conflicting Content-Length",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
			err:   `conflicting Content-Length headers ["2" "3"]`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "Content-Length with a sign",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
			err:   `malformed Content-Length "+2"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "Content-Length list",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
			err:   `malformed Content-Length "2, 2"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "negative Content-Length",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
			err:   `malformed Content-Length "-1"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "Content-Length beyond int64",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok",
			err:   `malformed Content-Length "99999999999999999999"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "unsupported Transfer-Encoding",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
			err:   `unsupported Transfer-Encoding "gzip, chunked"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "two Transfer-Encoding headers",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
			err:   `unsupported Transfer-Encoding "chunked, chunked"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "a chunk size beyond int64",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n",
			err:   "response body exceeds the limit of 1048576 bytes",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "a chunk size beyond uint64",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
			err:   `malformed chunk size "1ffffffffffffffff"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "malformed chunk size",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
			err:   `malformed chunk size "0x5"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "chunk without CRLF after its data",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
			err:   "malformed chunk: no CRLF after the data",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "chunked body cut short",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
			err:   "unexpected EOF",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "trailers without end",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("T: x\r\n", maxHeaderLines+1),
			err:   fmt.Sprintf("reply has more than %d trailer lines", maxHeaderLines),
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "chunk extensions without data",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 4000)+"\r\nx\r\n", 8),
			err:   "chunked reply has too much framing for its data",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "Content-Length body cut short",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
			err:   "unexpected EOF",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "no reply at all",
			reply: "",
			err:   "EOF",
			flags: xflags{Written: true, Reading: true},
		},
		{
			name:  "status line cut short",
			reply: "HTTP/1.1 20",
			err:   "unexpected EOF",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "header block cut short",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
			err:   "unexpected EOF",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "HTTP/2 status line",
			reply: "HTTP/2 200\r\n\r\n",
			err:   `malformed HTTP status line "HTTP/2 200"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "HTTP/1.1x version",
			reply: "HTTP/1.1x 200 OK\r\n\r\n",
			err:   `malformed HTTP status line "HTTP/1.1x 200 OK"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "not HTTP",
			reply: "SSH-2.0-OpenSSH_9.6\r\n",
			err:   `malformed HTTP status line "SSH-2.0-OpenSSH_9.6"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "four-digit status",
			reply: "HTTP/1.1 2000 OK\r\n\r\n",
			err:   `malformed HTTP status code in "HTTP/1.1 2000 OK"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "status below 100",
			reply: "HTTP/1.1 099 Odd\r\n\r\n",
			err:   `malformed HTTP status code in "HTTP/1.1 099 Odd"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "space before the colon",
			reply: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
			err:   `malformed HTTP header name "Content-Length "`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "header line without colon",
			reply: "HTTP/1.1 200 OK\r\nnot a header\r\n\r\n",
			err:   `malformed HTTP header line "not a header"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "fold before any header",
			reply: "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
			err:   `malformed HTTP header line " folded: x"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "NUL in a header value",
			reply: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
			err:   `malformed HTTP header value in "X-A: a\x00b"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "bare CR in a header value",
			reply: "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
			err:   `malformed HTTP header value in "X-A: a\rContent-Length: 5"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "non-ASCII header name",
			reply: "HTTP/1.1 200 OK\r\nX-\xffA: 1\r\n\r\n",
			err:   `malformed HTTP header name "X-\xffA"`,
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "long header name with a control byte",
			reply: "HTTP/1.1 200 OK\r\nX-" + strings.Repeat("n", 70) + "\x01: 1\r\n\r\n",
			err:   fmt.Sprintf("malformed HTTP header name %q", truncate("X-"+strings.Repeat("n", 70)+"\x01", 64)),
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "status line too long",
			reply: "HTTP/1.1 200 " + long + "\r\n\r\n",
			err:   "reply header line too long",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "header block without end",
			reply: "HTTP/1.1 200 OK\r\n" + manyHeaders,
			err:   fmt.Sprintf("reply has more than %d header lines", maxHeaderLines),
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "announced body over the limit",
			reply: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
			limit: 10,
			err:   "response body exceeds the limit of 10 bytes",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:   "announced body at the limit",
			reply:  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
			limit:  10,
			status: 200,
			header: http.Header{"Content-Length": {"10"}},
			body:   "0123456789", kept: true,
		},
		{
			name:  "chunked body over the limit",
			reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n",
			limit: 10,
			err:   "response body exceeds the limit of 10 bytes",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
		{
			name:  "streamed body over the limit",
			reply: "HTTP/1.1 200 OK\r\n\r\n01234567890",
			limit: 10,
			err:   "response body exceeds the limit of 10 bytes",
			flags: xflags{Written: true, Answered: true, Reading: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, func(c net.Conn, _ int) {
				defer c.Close()
				if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
					return
				}
				_, _ = io.WriteString(c, tt.reply)
			})
			limit := tt.limit
			if limit == 0 {
				limit = 1 << 20
			}
			h := dialRaw(t, srv.addr)
			resp, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, []byte("<e/>"), limit, 0)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("got %d %q, want error %q", resp.StatusCode, resp.Body, tt.err)
				}
				if err.Error() != tt.err {
					t.Errorf("error %q, want %q", err, tt.err)
				}
				if diff := cmp.Diff(tt.flags, flagsOf(t, err)); diff != "" {
					t.Errorf("flags (-want +got):\n%s", diff)
				}
				if !h.broken {
					t.Error("connection not marked broken after a failure")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &Response{StatusCode: tt.status, Header: tt.header, ContentType: tt.header.Get("Content-Type"), Body: []byte(tt.body)}
			if diff := cmp.Diff(want, resp); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if h.broken == tt.kept {
				t.Errorf("connection broken = %v, want %v", h.broken, !tt.kept)
			}
		})
	}
}

// fakeConn is an in-memory net.Conn: a write makes the next of replies
// readable (once what was readable is read), as a host answers each
// request; writes go to w. It keeps the deadlines set on it and honours
// a read deadline in the past, as a real connection does after ctx's
// AfterFunc.
type fakeConn struct {
	replies []string
	r       *strings.Reader
	w       bytes.Buffer
	// onWrite and onRead, when set, run at the start of each call.
	onWrite, onRead func()

	mu     sync.Mutex
	rd, wd time.Time
	// past receives a value each time a deadline in the past is set.
	past chan struct{}
}

func newFakeConn(replies ...string) *fakeConn {
	return &fakeConn{replies: replies, r: strings.NewReader(""), past: make(chan struct{}, 16)}
}

func (c *fakeConn) Read(b []byte) (int, error) {
	if c.onRead != nil {
		c.onRead()
	}
	c.mu.Lock()
	rd := c.rd
	c.mu.Unlock()
	if !rd.IsZero() && !time.Now().Before(rd) {
		return 0, os.ErrDeadlineExceeded
	}
	return c.r.Read(b)
}

func (c *fakeConn) Write(b []byte) (int, error) {
	if c.onWrite != nil {
		c.onWrite()
	}
	if c.r.Len() == 0 && len(c.replies) > 0 {
		c.r.Reset(c.replies[0])
		c.replies = c.replies[1:]
	}
	return c.w.Write(b)
}

func (c *fakeConn) Close() error                       { return nil }
func (c *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(t time.Time) error      { c.set(&c.rd, t); c.set(&c.wd, t); return nil }
func (c *fakeConn) SetReadDeadline(t time.Time) error  { c.set(&c.rd, t); return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { c.set(&c.wd, t); return nil }

func (c *fakeConn) set(d *time.Time, t time.Time) {
	c.mu.Lock()
	*d = t
	c.mu.Unlock()
	if !t.IsZero() && t.Before(time.Now()) {
		select {
		case c.past <- struct{}{}:
		default:
		}
	}
}

func (c *fakeConn) deadlines() (rd, wd time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rd, c.wd
}

const okReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestRoundTripRequestBytes(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		viaProxy bool
		auth     string
		hdrs     []header
		body     string
		want     string
	}{
		{
			name: "origin form",
			url:  "http://host.example:5985/wsman",
			hdrs: []header{{"Authorization", "Basic dTpw"}, {"Wsmanidentify", "unauthenticated"}},
			body: "<e/>",
			want: "POST /wsman HTTP/1.1\r\nHost: host.example:5985\r\nUser-Agent: bitsremote\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 4\r\nAuthorization: Basic dTpw\r\nWsmanidentify: unauthenticated\r\n\r\n<e/>",
		},
		{
			name: "empty path and a query",
			url:  "http://[::1]?PSVersion=5.1",
			want: "POST /?PSVersion=5.1 HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: bitsremote\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "a space in the query is escaped",
			url:  "http://h/wsman?a b",
			want: "POST /wsman?a%20b HTTP/1.1\r\nHost: h\r\nUser-Agent: bitsremote\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name:     "absolute form to a forwarding proxy",
			url:      "http://host.example:5985/wsman",
			viaProxy: true,
			auth:     "Basic dXNlcjpwQHNz",
			body:     "x",
			want:     "POST http://host.example:5985/wsman HTTP/1.1\r\nHost: host.example:5985\r\nUser-Agent: bitsremote\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 1\r\nProxy-Authorization: Basic dXNlcjpwQHNz\r\n\r\nx",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeConn(okReply)
			h := newHconn(fc)
			h.viaProxy, h.proxyAuth = tt.viaProxy, tt.auth
			resp, err := h.roundTrip(context.Background(), mustEndpoint(t, tt.url), tt.hdrs, soapType, []byte(tt.body), 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.Body) != "ok" {
				t.Errorf("body %q", resp.Body)
			}
			if diff := cmp.Diff(tt.want, fc.w.String()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// A body over the inline size goes out in two buffers; the bytes on the
// wire are the same.
func TestRoundTripLargeBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	got := make(chan []byte, 1)
	srv := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		_, b, err := readRequest(bufio.NewReader(c))
		if err != nil {
			got <- nil
			return
		}
		got <- b
		_, _ = io.WriteString(c, okReply)
	})
	h := dialRaw(t, srv.addr)
	if _, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, body, 100, 0); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, body) {
		t.Errorf("server read %d bytes, want the %d sent", len(b), len(body))
	}
}

// A reply on a kept-alive connection says it is reused; one the host
// closed under the next request fails as a closed connection, written
// but not answered.
func TestExchangeErrorFlags(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, okReply)
	})
	ep := mustEndpoint(t, srv.url())
	h := dialRaw(t, srv.addr)
	if _, err := h.roundTrip(context.Background(), ep, nil, soapType, []byte("1"), 100, 0); err != nil {
		t.Fatal(err)
	}
	_, err := h.roundTrip(context.Background(), ep, nil, soapType, []byte("2"), 100, 0)
	if err == nil {
		t.Fatal("second request on a connection the host closed: no error")
	}
	if diff := cmp.Diff(xflags{Written: true, Reused: true, Reading: true}, flagsOf(t, err)); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	if !IsConnectionClosed(err) {
		t.Errorf("IsConnectionClosed(%v) = false", err)
	}
	err = exchangeFailed(context.Background(), "host", err)
	if errors.Is(err, ErrNotSent) || !strings.HasPrefix(err.Error(), "read reply from host: ") {
		t.Errorf("exchangeFailed: %v (ErrNotSent %v)", err, errors.Is(err, ErrNotSent))
	}

	// On the broken connection nothing is written.
	_, err = h.roundTrip(context.Background(), ep, nil, soapType, []byte("3"), 100, 0)
	if diff := cmp.Diff(xflags{Reused: true}, flagsOf(t, err)); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	err = exchangeFailed(context.Background(), "host", err)
	if want := "post to host: connection is closed"; err.Error() != want || !errors.Is(err, ErrNotSent) {
		t.Errorf("got %q (ErrNotSent %v), want %q marked ErrNotSent", err, errors.Is(err, ErrNotSent), want)
	}
}

func TestWriteFailsBeforeAnyByte(t *testing.T) {
	srv := replyServer(t, okReply)
	h := dialRaw(t, srv.addr)
	h.nc.Close() // the write fails at once
	_, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, []byte("x"), 100, 0)
	if diff := cmp.Diff(xflags{}, flagsOf(t, err)); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	err = exchangeFailed(context.Background(), "host", err)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "post to host: write tcp ") {
		t.Errorf("got %v, want a write error marked ErrNotSent", err)
	}
}

func TestRoundTripResponseTimeout(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		_, _ = io.Copy(io.Discard, c) // reads, never answers
	})
	h := dialRaw(t, srv.addr)
	_, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, []byte("x"), 100, 20*time.Millisecond)
	if diff := cmp.Diff(xflags{Written: true, Reading: true}, flagsOf(t, err)); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	err = exchangeFailed(context.Background(), "host", err)
	if want := "read reply from host: timeout awaiting response headers (20ms)"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotSent) {
		t.Errorf("%v: matches DeadlineExceeded %v, ErrNotSent %v", err, errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrNotSent))
	}
}

func TestContextEnds(t *testing.T) {
	// got says the server has the request (or its first byte).
	got := make(chan struct{}, 1)
	silent := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		got <- struct{}{}
		<-t.Context().Done() // neither reads on nor answers
	})
	ep := mustEndpoint(t, silent.url())
	t.Run("deadline while waiting for the reply", func(t *testing.T) {
		h := dialRaw(t, silent.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := h.roundTrip(ctx, ep, nil, soapType, []byte("x"), 100, time.Hour)
		<-got
		if diff := cmp.Diff(xflags{Written: true, Reading: true}, flagsOf(t, err)); diff != "" {
			t.Errorf("flags (-want +got):\n%s", diff)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
	})
	t.Run("cancelled while waiting for the reply", func(t *testing.T) {
		h := dialRaw(t, silent.addr)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-got; cancel() }()
		_, err := h.roundTrip(ctx, ep, nil, soapType, []byte("x"), 100, 0)
		if diff := cmp.Diff(xflags{Written: true, Reading: true}, flagsOf(t, err)); diff != "" {
			t.Errorf("flags (-want +got):\n%s", diff)
		}
		err = exchangeFailed(ctx, "host", err)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) || !strings.HasPrefix(err.Error(), "read reply from host: context canceled") {
			t.Errorf("got %v, want a cancellation while reading", err)
		}
	})
	t.Run("cancelled mid-write", func(t *testing.T) {
		// More than the socket buffers of both ends hold, to a server
		// that stops reading after one byte.
		body := make([]byte, 64<<20)
		h := dialRaw(t, silent.addr)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-got; cancel() }()
		_, err := h.roundTrip(ctx, ep, nil, soapType, body, 100, 0)
		if diff := cmp.Diff(xflags{Written: true}, flagsOf(t, err)); diff != "" {
			t.Errorf("flags (-want +got):\n%s", diff)
		}
		err = exchangeFailed(ctx, "host", err)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) || !strings.HasPrefix(err.Error(), "post to host: context canceled") {
			t.Errorf("got %v, want a cancellation while writing", err)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		fc := newFakeConn(okReply)
		h := newHconn(fc)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := h.roundTrip(ctx, ep, nil, soapType, []byte("x"), 100, 0)
		if diff := cmp.Diff(xflags{}, flagsOf(t, err)); diff != "" {
			t.Errorf("flags (-want +got):\n%s", diff)
		}
		if fc.w.Len() != 0 || !errors.Is(exchangeFailed(ctx, "host", err), ErrNotSent) {
			t.Errorf("wrote %q; error %v", fc.w.String(), err)
		}
	})
}

// A successful exchange leaves no deadline on the connection, whatever
// set one, so that an idle pooled connection does not time out later.
func TestDeadlinesCleared(t *testing.T) {
	ep := mustEndpoint(t, "http://h/wsman")
	tests := []struct {
		name        string
		ctx         func() (context.Context, context.CancelFunc)
		respTimeout time.Duration
	}{
		{"background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, 0},
		{"response timeout", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, time.Hour},
		{"cancelable", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 0},
		{"ctx deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		}, 0},
		{"ctx deadline and response timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		}, time.Minute},
		{"response timeout beyond ctx deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Minute)
		}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeConn(okReply, okReply)
			h := newHconn(fc)
			for i := range 2 {
				ctx, cancel := tt.ctx()
				_, err := h.roundTrip(ctx, ep, nil, soapType, nil, 100, tt.respTimeout)
				cancel()
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if rd, wd := fc.deadlines(); !rd.IsZero() || !wd.IsZero() {
					t.Errorf("request %d: deadlines left: read %v, write %v", i, rd, wd)
				}
			}
			if h.broken {
				t.Error("connection broken")
			}
		})
	}
}

// ctx ending just as the reply is read whole: the reply is the answer,
// but ctx's AfterFunc may set a past deadline on the connection after
// the exchange, so it is not kept.
func TestContextEndsAsReplyCompletes(t *testing.T) {
	fc := newFakeConn(okReply)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc.onRead = cancel
	h := newHconn(fc)
	resp, err := h.roundTrip(ctx, mustEndpoint(t, "http://h/wsman"), nil, soapType, nil, 100, 0)
	if err != nil || string(resp.Body) != "ok" {
		t.Fatalf("got %v, %v", resp, err)
	}
	if !h.broken {
		t.Error("connection kept although ctx's AfterFunc may still fire on it")
	}
}

// ctx cancelled just after the request is written, its AfterFunc done
// before the response timeout's deadline is set: that deadline must not
// undo the cancellation.
func TestCancelNotUndoneByResponseTimeout(t *testing.T) {
	fc := newFakeConn(okReply)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc.onWrite = func() {
		cancel()
		<-fc.past // the AfterFunc's deadline in the past
	}
	h := newHconn(fc)
	_, err := h.roundTrip(ctx, mustEndpoint(t, "http://h/wsman"), nil, soapType, nil, 100, time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(xflags{Written: true, Reading: true}, flagsOf(t, err)); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}

// A host that answers (413) and closes while a large body is still
// going out: the answer is returned, not the write's error.
func TestEarlyReplyWhileWriting(t *testing.T) {
	const reply = "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	srv := newRawServer(t, func(c net.Conn, _ int) {
		tp := bufio.NewReader(c)
		for { // the header block, not the body
			line, err := tp.ReadString('\n')
			if err != nil {
				c.Close()
				return
			}
			if line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(c, reply)
		c.Close() // unread body: the kernel resets the connection
	})
	h := dialRaw(t, srv.addr)
	resp, err := h.roundTrip(context.Background(), mustEndpoint(t, srv.url()), nil, soapType, make([]byte, 64<<20), 100, 0)
	if err != nil {
		t.Fatalf("got %v, want the 413", err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !h.broken {
		t.Errorf("got %d, broken %v; want 413 on a closed connection", resp.StatusCode, h.broken)
	}
}

// rawProxy is a forwarding proxy that records what it is sent and
// answers with reply.
func rawProxy(t *testing.T, reply string) (*rawServer, <-chan string) {
	reqs := make(chan string, 4)
	srv := newRawServer(t, func(c net.Conn, _ int) {
		defer c.Close()
		var raw bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &raw))
		if _, _, err := readRequest(br); err != nil {
			return
		}
		reqs <- raw.String()
		_, _ = io.WriteString(c, reply)
	})
	return srv, reqs
}

func proxyTo(addr string) func(*http.Request) (*url.URL, error) {
	return func(*http.Request) (*url.URL, error) {
		return &url.URL{Scheme: "http", Host: addr, User: url.UserPassword("proxyuser", "pr0xy@pass")}, nil
	}
}

// secretFree fails t when s shows the proxy's credentials.
func secretFree(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{"proxyuser", "pr0xy", base64.StdEncoding.EncodeToString([]byte("proxyuser:pr0xy@pass"))} {
		if strings.Contains(s, secret) {
			t.Errorf("%q shows %q", s, secret)
		}
	}
}

func TestForwardingProxy(t *testing.T) {
	proxyAuth := "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("proxyuser:pr0xy@pass")) + "\r\n"
	t.Run("request and its answer", func(t *testing.T) {
		proxy, reqs := rawProxy(t, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n<h1>502</h1>")
		tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: proxyTo(proxy.addr)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: "http://winhost.example:5985/wsman", Body: []byte("<e/>")})
		if err != nil {
			t.Fatal(err)
		}
		want := &Response{StatusCode: 502, ContentType: "text/html", Body: []byte("<h1>502</h1>"),
			Header: http.Header{"Content-Type": {"text/html"}, "Content-Length": {"12"}}}
		if diff := cmp.Diff(want, resp); diff != "" {
			t.Errorf("reply (-want +got):\n%s", diff)
		}
		wantReq := "POST http://winhost.example:5985/wsman HTTP/1.1\r\nHost: winhost.example:5985\r\nUser-Agent: bitsremote\r\n" +
			"Content-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 4\r\n" + proxyAuth +
			"Authorization: Basic dTpw\r\n\r\n<e/>"
		if diff := cmp.Diff(wantReq, <-reqs); diff != "" {
			t.Errorf("request (-want +got):\n%s", diff)
		}
	})
	t.Run("errors never show the proxy's credentials", func(t *testing.T) {
		proxy, _ := rawProxy(t, "garbage from the proxy\r\n")
		tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: proxyTo(proxy.addr)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "http://winhost.example:5985/wsman"})
		if want := `read reply from winhost.example:5985: malformed HTTP status line "garbage from the proxy"`; err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
		secretFree(t, err.Error())
	})
	t.Run("CONNECT refused", func(t *testing.T) {
		reqs := make(chan string, 1)
		proxy := newRawServer(t, func(c net.Conn, _ int) {
			defer c.Close()
			var raw bytes.Buffer
			if _, err := http.ReadRequest(bufio.NewReader(io.TeeReader(c, &raw))); err != nil {
				return
			}
			reqs <- raw.String()
			_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n")
		})
		tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: proxyTo(proxy.addr)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://winhost.example:5986/wsman"})
		want := "post to winhost.example:5986: proxy " + proxy.addr + " refused CONNECT winhost.example:5986: HTTP 407"
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrProxyAuthentication) || errors.Is(err, ErrProxyRefused) {
			t.Errorf("got %v, want %q marked ErrNotSent and ErrProxyAuthentication", err, want)
		}
		secretFree(t, err.Error())
		wantReq := "CONNECT winhost.example:5986 HTTP/1.1\r\nHost: winhost.example:5986\r\n" + proxyAuth + "\r\n"
		if diff := cmp.Diff(wantReq, <-reqs); diff != "" {
			t.Errorf("CONNECT (-want +got):\n%s", diff)
		}
	})
	t.Run("any 2xx to CONNECT opens the tunnel", func(t *testing.T) {
		proxy := newRawServer(t, func(c net.Conn, _ int) {
			defer c.Close()
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			// A tunnel that ends at once: the TLS handshake fails.
			_, _ = io.WriteString(c, "HTTP/1.1 204 Tunnel open\r\n\r\n")
		})
		tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: proxyTo(proxy.addr)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://winhost.example:5986/wsman"})
		if want := "post to winhost.example:5986: tls handshake with winhost.example:5986: EOF"; err == nil || err.Error() != want || !errors.Is(err, ErrNotSent) {
			t.Errorf("got %v, want %q marked ErrNotSent", err, want)
		}
	})
	t.Run("proxy unreachable", func(t *testing.T) {
		addr := testnet.RefusedAddr(t)
		tr, err := NewBasic(Config{User: "u", Password: "p", Proxy: proxyTo(addr)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "http://winhost.example:5985/wsman"})
		if err == nil || !errors.Is(err, ErrNotSent) {
			t.Fatalf("got %v, want ErrNotSent", err)
		}
		secretFree(t, err.Error())
	})
}

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want []header
		err  string
	}{
		{
			name: "engine and auth headers are left out",
			in: http.Header{"Host": {"evil"}, "Content-Length": {"1"}, "Transfer-Encoding": {"chunked"}, "Authorization": {"x"},
				"Proxy-Authorization": {"x"}, "Connection": {"close"}, "User-Agent": {"x"}, "Content-Type": {"x"},
				"wsmanidentify": {"unauthenticated"}},
			want: []header{{"Wsmanidentify", "unauthenticated"}},
		},
		{name: "CRLF in a value", in: http.Header{"X-A": {"a\r\nX-Injected: 1"}}, err: "request header X-A: value contains a line break"},
		{name: "LF in a value", in: http.Header{"X-A": {"a\nb"}}, err: "request header X-A: value contains a line break"},
		{name: "NUL in a value", in: http.Header{"X-A": {"a\x00b"}}, err: "request header X-A: value contains a NUL byte"},
		{name: "CRLF in a name", in: http.Header{"X-A\r\nX-B": {"1"}}, err: `invalid request header name "X-A\r\nX-B"`},
		{name: "colon in a name", in: http.Header{"X-A:b": {"1"}}, err: `invalid request header name "X-A:b"`},
		{name: "separator in a name", in: http.Header{"X(A)": {"1"}}, err: `invalid request header name "X(A)"`},
		{name: "non-ASCII name", in: http.Header{"X-\xe9": {"1"}}, err: `invalid request header name "X-\xe9"`},
		{name: "empty name", in: http.Header{"": {"1"}}, err: `invalid request header name ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestHeaders(nil, tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Errorf("got %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(header{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzReadReply feeds arbitrary bytes to hconn.roundTrip as the reply to
// a request, with a body limit: it must not panic or hang, a reply it
// accepts must be within the limit (its buffer at most one byte over,
// which reading to EOF needs to see the end), a connection kept must
// hold nothing beyond the reply, and a failure must be an
// *exchangeError that leaves the connection broken.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte(okReply), uint16(4096))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n"), uint16(4096))
	ep, err := newEndpoint("http://host.example:5985/wsman")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, reply []byte, limit uint16) {
		fc := newFakeConn(string(reply))
		h := newHconn(fc)
		resp, err := h.roundTrip(context.Background(), ep, nil, soapType, []byte("<e/>"), int64(limit), 0)
		if err != nil {
			var xe *exchangeError
			if !errors.As(err, &xe) || !xe.written || !xe.reading {
				t.Fatalf("error %v (%T): not an *exchangeError after the request was written", err, err)
			}
			if !h.broken {
				t.Fatal("failed exchange left the connection usable")
			}
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Errorf("status %d accepted", resp.StatusCode)
		}
		if int64(len(resp.Body)) > int64(limit) || int64(cap(resp.Body)) > int64(limit)+1 {
			t.Errorf("body of %d bytes (capacity %d) over the limit of %d", len(resp.Body), cap(resp.Body), limit)
		}
		if resp.Header == nil {
			t.Error("nil header")
		}
		if !h.broken && h.br.Buffered() != 0 {
			t.Errorf("connection kept with %d bytes beyond the reply", h.br.Buffered())
		}
	})
}
