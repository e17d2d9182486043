package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/wsman/internal/ntlmauth"
	"github.com/google/go-cmp/cmp"
)

// ntlmCounts is what an NTLM test server saw.
type ntlmCounts struct {
	negotiates int // NEGOTIATE messages: one per handshake
	conns      int // TCP connections accepted
	authHeader int // requests carrying any Authorization
	requests   int
}

type ntlmCounter struct {
	mu sync.Mutex
	ntlmCounts
}

func (c *ntlmCounter) get() ntlmCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ntlmCounts
}

// ntlmEcho answers with the authenticated user and whether the request
// came sealed.
var ntlmEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, _ := ntlmauth.UserFromContext(r.Context())
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	fmt.Fprintf(w, "user=%s encrypted=%v body=%s", user, ntlmauth.EncryptedFromContext(r.Context()), body)
})

// newNTLMServer starts a loopback host that accepts NTLM for alice (also
// as a UPN) and counts handshakes and connections.
func newNTLMServer(t *testing.T, tlsPKI *testPKI, opts ntlmauth.MiddlewareOptions) (*httptest.Server, *ntlmCounter) {
	t.Helper()
	acc := &ntlmauth.Server{Domain: "WORKGROUP", Computer: "WIN-BITS01", Users: map[string]string{
		"alice": "S3cret!pw", "alice@corp.example": "S3cret!pw",
	}}
	counts := &ntlmCounter{}
	inner := acc.Middleware(ntlmEcho, opts)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counts.mu.Lock()
		counts.requests++
		if h := r.Header.Get("Authorization"); h != "" {
			counts.authHeader++
			_, tok, _ := strings.Cut(h, " ")
			if msg, err := base64.StdEncoding.DecodeString(tok); err == nil && len(msg) > 8 && msg[8] == 1 {
				counts.negotiates++
			}
		}
		counts.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	srv.Config.ConnContext = acc.ConnContext
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			counts.mu.Lock()
			counts.conns++
			counts.mu.Unlock()
		}
	}
	if tlsPKI != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsPKI.ServerCert}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, counts
}

func TestNTLMOneHandshakeFor100Requests(t *testing.T) {
	srv, counts := newNTLMServer(t, nil, ntlmauth.MiddlewareOptions{})
	tr, err := NewNTLM(Config{Auth: AuthNTLM, User: `WORKGROUP\alice`, Password: "S3cret!pw", Encryption: EncryptionNever})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	for i := range 100 {
		body := fmt.Sprintf("<m n='%d'/>", i)
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(body)})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := "user=alice encrypted=false body=" + body; resp.StatusCode != 200 || string(resp.Body) != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, resp.Body, want)
		}
	}
	// The first request is a NEGOTIATE (empty body) and an AUTHENTICATE
	// carrying the body; the other 99 ride the authenticated connection.
	got := counts.get()
	want := ntlmCounts{negotiates: 1, conns: 1, authHeader: 2, requests: 101}
	if got != want {
		t.Errorf("server saw %+v, want %+v", got, want)
	}
}

func TestNTLMConcurrentRequestsShareOneHandshake(t *testing.T) {
	srv, counts := newNTLMServer(t, nil, ntlmauth.MiddlewareOptions{})
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	var wg sync.WaitGroup
	errs := make(chan error, 80)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				body := fmt.Sprintf("<g%d i='%d'/>", g, i)
				resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(body)})
				if err != nil {
					errs <- err
					return
				}
				if want := "user=alice encrypted=false body=" + body; string(resp.Body) != want {
					errs <- fmt.Errorf("got %d %q, want %q", resp.StatusCode, resp.Body, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := counts.get(); got.negotiates != 1 || got.conns != 1 {
		t.Errorf("server saw %+v, want one handshake on one connection", got)
	}
}

func TestNTLMUsers(t *testing.T) {
	srv, _ := newNTLMServer(t, nil, ntlmauth.MiddlewareOptions{})
	tests := []struct {
		user, pass string
		wantStatus int
		wantBody   string
	}{
		{`WORKGROUP\alice`, "S3cret!pw", 200, "user=alice encrypted=false body=<x/>"},
		{"alice@corp.example", "S3cret!pw", 200, "user=alice@corp.example encrypted=false body=<x/>"},
		{"alice", "S3cret!pw", 200, "user=alice encrypted=false body=<x/>"},
		{"alice", "wrong", 401, ""},
		{"mallory", "S3cret!pw", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.user+"/"+tc.pass, func(t *testing.T) {
			tr, err := NewNTLM(Config{User: tc.user, Password: tc.pass})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte("<x/>")})
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || string(resp.Body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestNTLMAnonymousSendsNoCredentials(t *testing.T) {
	srv, counts := newNTLMServer(t, nil, ntlmauth.MiddlewareOptions{})
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte("<identify/>"), Anonymous: true,
		Header: http.Header{"WSMANIDENTIFY": {"unauthenticated"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The acceptor requires NTLM for everything, so an unauthenticated
	// request on a fresh connection is refused; what matters is that no
	// handshake was attempted.
	if resp.StatusCode != 401 {
		t.Errorf("got %d, want 401", resp.StatusCode)
	}
	if got, want := counts.get(), (ntlmCounts{conns: 1, requests: 1}); got != want {
		t.Errorf("server saw %+v, want %+v", got, want)
	}
}

// A 401 that carries a body must not hold the only connection while the
// negotiator sends its next leg.
func TestNTLM401WithBodyDoesNotHang(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Negotiate")
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, strings.Repeat("<p>Access is denied.</p>", 100))
	}))
	defer srv.Close()
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := tr.RoundTrip(ctx, &Request{URL: srv.URL + "/wsman", Body: []byte("<x/>")})
	if err != nil {
		t.Fatalf("got %v, want the 401", err)
	}
	if resp.StatusCode != 401 || string(resp.Body) != strings.Repeat("<p>Access is denied.</p>", 100) {
		t.Errorf("got %d %q", resp.StatusCode, resp.Body)
	}
}

func TestNTLMOverHTTPSProxy(t *testing.T) {
	pki := newTestPKI(t)
	srv, counts := newNTLMServer(t, pki, ntlmauth.MiddlewareOptions{})
	proxy := newConnectProxy(t)
	proxyURL, _ := url.Parse(proxy.URL)
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw", CAFile: pki.CAFile, Proxy: http.ProxyURL(proxyURL)})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	for i := range 5 {
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte("<x/>")})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: %+v, %v", i, resp, err)
		}
	}
	if got := counts.get(); got.negotiates != 1 || got.conns != 1 {
		t.Errorf("server saw %+v, want one handshake on one tunnelled connection", got)
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.targets) != 1 {
		t.Errorf("proxy tunnels: %v, want one", proxy.targets)
	}
}

func TestNTLMContextDeadlineDuringHandshake(t *testing.T) {
	// A host that challenges and then never answers AUTHENTICATE: the
	// negotiator swallows leg errors, so the transport must report the
	// context's.
	acc := &ntlmauth.Server{Domain: "WORKGROUP", Computer: "WIN", Users: map[string]string{"alice": "S3cret!pw"}}
	inner := acc.Middleware(ntlmEcho, ntlmauth.MiddlewareOptions{})
	stop := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if msg, _ := base64.StdEncoding.DecodeString(tok); len(msg) > 8 && msg[8] == 3 {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		inner.ServeHTTP(w, r)
	}))
	srv.Config.ConnContext = acc.ConnContext
	srv.Start()
	defer srv.Close()
	defer close(stop)
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err := tr.RoundTrip(ctx, &Request{URL: srv.URL + "/wsman", Body: []byte("<x/>")})
	if !errorsIsDeadline(err) {
		t.Fatalf("got %+v, %v; want context.DeadlineExceeded", resp, err)
	}
}

func TestNew(t *testing.T) {
	pki := newTestPKI(t)
	plain, _ := newNTLMServer(t, nil, ntlmauth.MiddlewareOptions{RequireEncryption: true})
	secure, _ := newNTLMServer(t, pki, ntlmauth.MiddlewareOptions{})
	tests := []struct {
		name     string
		cfg      Config
		url      string
		wantBody string
		wantErr  string
	}{
		{name: "ntlm auto over http seals", cfg: Config{Auth: AuthNTLM, Encryption: EncryptionAuto}, url: plain.URL, wantBody: "user=alice encrypted=true body=<x/>"},
		{name: "ntlm auto over https does not", cfg: Config{Auth: AuthNTLM, Encryption: EncryptionAuto}, url: secure.URL, wantBody: "user=alice encrypted=false body=<x/>"},
		{name: "ntlm always seals", cfg: Config{Auth: AuthNTLM, Encryption: EncryptionAlways}, url: plain.URL, wantBody: "user=alice encrypted=true body=<x/>"},
		{name: "ntlm always seals over https too", cfg: Config{Auth: AuthNTLM, Encryption: EncryptionAlways}, url: secure.URL, wantBody: "user=alice encrypted=true body=<x/>"},
		{name: "ntlm never over https", cfg: Config{Auth: AuthNTLM, Encryption: EncryptionNever}, url: secure.URL, wantBody: "user=alice encrypted=false body=<x/>"},
		{name: "basic always", cfg: Config{Auth: AuthBasic, Encryption: EncryptionAlways}, wantErr: "basic auth cannot encrypt messages: use --encryption never or auto with https, or NTLM"},
		{name: "certificate always", cfg: Config{Auth: AuthCertificate, Encryption: EncryptionAlways}, wantErr: "certificate auth cannot encrypt messages: it runs over https, which already does"},
		{name: "none always", cfg: Config{Auth: AuthNone, Encryption: EncryptionAlways}, wantErr: "unauthenticated requests cannot be encrypted"},
		{name: "unknown auth", cfg: Config{Auth: Auth(42)}, wantErr: "unknown auth method Auth(42)"},
		{name: "unknown encryption", cfg: Config{Auth: AuthNTLM, Encryption: Encryption(9)}, wantErr: "unknown encryption mode Encryption(9)"},
		{name: "ntlm auto without user", cfg: Config{Auth: AuthNTLM}, wantErr: "ntlm auth: a user name is required"},
		{name: "ntlm auto bad CA", cfg: Config{Auth: AuthNTLM, User: "alice", CAFile: "/nonexistent"}, wantErr: "ntlm auth: read CA file: open /nonexistent: no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.User == "" && tc.wantErr == "" {
				cfg.User, cfg.Password = "alice", "S3cret!pw"
			}
			if cfg.Auth == AuthBasic || cfg.Auth == AuthCertificate {
				cfg.User, cfg.CertFile, cfg.KeyFile = "u", pki.CertFile, pki.KeyFile
			}
			cfg.CAFile = cmpOr(cfg.CAFile, pki.CAFile)
			tr, err := New(cfg)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			for i := range 3 {
				resp, err := tr.RoundTrip(context.Background(), &Request{URL: tc.url + "/wsman", Body: []byte("<x/>")})
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if diff := cmp.Diff(tc.wantBody, string(resp.Body)); resp.StatusCode != 200 || diff != "" {
					t.Fatalf("request %d: status %d, body (-want +got):\n%s", i, resp.StatusCode, diff)
				}
			}
		})
	}
}

func TestNewAuthNone(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(basicHandler(rec, "u", "p"))
	defer srv.Close()
	tr, err := New(Config{Auth: AuthNone, User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("got %+v, %v; want the server's 401", resp, err)
	}
	if got := rec.all(); len(got) != 1 || got[0].Authorization != "" {
		t.Errorf("server saw %+v, want one request without Authorization", got)
	}
}

func BenchmarkNTLMRoundTrip(b *testing.B) {
	acc := &ntlmauth.Server{Domain: "WORKGROUP", Computer: "WIN", Users: map[string]string{"alice": "S3cret!pw"}}
	srv := httptest.NewUnstartedServer(acc.Middleware(ntlmEcho, ntlmauth.MiddlewareOptions{}))
	srv.Config.ConnContext = acc.ConnContext
	srv.Start()
	defer srv.Close()
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	req := &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(context.Background(), req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", resp, err)
		}
	}
}

// newPlainLossyServer is a lossyServer for plain NTLM: the ntlmauth
// middleware without RequireEncryption (AllowUnencrypted=true, or https),
// answering with ntlmEcho. A request without Authorization is recorded as
// kindOther.
func newPlainLossyServer(t *testing.T, pass string, policy func(kind string, conn int, status int) closeAction) *lossyServer {
	t.Helper()
	srv := &ntlmauth.Server{Domain: "WORKGROUP", Computer: "SIM01", Users: map[string]string{"alice": pass}}
	ls := &lossyServer{policy: policy, byConn: map[net.Conn]int{}}
	mw := srv.Middleware(ntlmEcho, ntlmauth.MiddlewareOptions{})
	ls.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		kind := requestKind(r)
		n := r.Context().Value(lossyConnKey{}).(int)
		rec := httptest.NewRecorder()
		mw.ServeHTTP(rec, r)
		ls.mu.Lock()
		if rec.Code == http.StatusOK {
			// Only what the host acted on.
			ls.raw = append(ls.raw, body)
		}
		c := ls.conns[n-1]
		c.exchanges = append(c.exchanges, exchange{kind, rec.Code})
		action := keepOpen
		if ls.policy != nil {
			action = ls.policy(kind, n, rec.Code)
		}
		c.closeSilently = action == closeSilently
		ls.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if action == closeHeader {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	ls.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		ls.mu.Lock()
		ls.conns = append(ls.conns, &lossyConn{})
		n := len(ls.conns)
		ls.byConn[c] = n
		ls.mu.Unlock()
		return context.WithValue(srv.ConnContext(ctx, c), lossyConnKey{}, n)
	}
	ls.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			ls.mu.Lock()
			drop := ls.conns[ls.byConn[c]-1].closeSilently
			ls.mu.Unlock()
			if drop {
				c.Close()
			}
		}
	}
	ls.Start()
	t.Cleanup(ls.Close)
	return ls
}

// executed returns the bodies the host acted on (answered 200), in order.
func (ls *lossyServer) executed() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []string
	for _, b := range ls.raw {
		out = append(out, string(b))
	}
	return out
}

var anonOK = exchange{kindOther, http.StatusOK}

// TestNTLMConnectionLostBetweenLegs: the host's NTLM state is per
// connection; when the NEGOTIATE's connection is gone, the transport must
// start the exchange over on a new connection rather than send the
// AUTHENTICATE where it can only get a 401 (reported as wrong
// credentials), and must never have the host act on a body twice.
func TestNTLMConnectionLostBetweenLegs(t *testing.T) {
	first := closeFirst
	for _, tc := range []struct {
		name   string
		policy func(string, int, int) closeAction
		// idempotent marks both requests (the first is a warm-up).
		idempotent bool
		// mayLose allows the second request to fail once as a lost
		// connection.
		mayLose bool
		want    [][]exchange
	}{{
		// The transport sees the close and starts over on a new
		// connection before anything of the body is written.
		name:   "Connection: close on the CHALLENGE",
		policy: first(closeHeader, kindNegotiate),
		want:   [][]exchange{{negotiateOK}, {negotiateOK, authOK, anonOK}},
	}, {
		// The AUTHENTICATE may meet the closed connection when written
		// (only an Idempotent body may then go again: the host might
		// have read it) or before (found closed by the peek before
		// writing).
		name:       "host closes the connection after the CHALLENGE",
		policy:     first(closeSilently, kindNegotiate),
		idempotent: true,
		want:       [][]exchange{{negotiateOK}, {negotiateOK, authOK, anonOK}},
	}, {
		name:   "Connection: close on the AUTHENTICATE's 200",
		policy: first(closeHeader, kindAuthenticate),
		want:   [][]exchange{fullHandshake, fullHandshake},
	}, {
		// The client may notice the close before the next request (which
		// then authenticates a new connection) or only when it is written:
		// a lost connection that may have reached the host, which goes up
		// as one (as with Basic, for package wsman's retry policy), never
		// as a 401; sent once more, it authenticates a new connection.
		name:    "host closes the connection after the AUTHENTICATE's 200",
		policy:  first(closeSilently, kindAuthenticate),
		mayLose: true,
		want:    [][]exchange{fullHandshake, fullHandshake},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ls := newPlainLossyServer(t, "S3cret!pw", tc.policy)
			tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw", Encryption: EncryptionNever})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			for i := range 2 {
				body := fmt.Sprintf("<m n='%d'/>", i)
				r := &Request{URL: ls.URL + "/wsman", Body: []byte(body), Idempotent: tc.idempotent}
				resp, err := tr.RoundTrip(context.Background(), r)
				if err != nil && i == 1 && tc.mayLose && IsConnectionClosed(err) && !errors.Is(err, ErrAuthentication) {
					t.Logf("request %d lost its connection: %v", i, err)
					resp, err = tr.RoundTrip(context.Background(), r)
				}
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if want := "user=alice encrypted=false body=" + body; resp.StatusCode != 200 || string(resp.Body) != want {
					t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, resp.Body, want)
				}
			}
			if diff := cmp.Diff(tc.want, ls.connLog()); diff != "" {
				t.Errorf("connections (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"<m n='0'/>", "<m n='1'/>"}, ls.executed()); diff != "" {
				t.Errorf("bodies the host acted on (-want +got):\n%s", diff)
			}
		})
	}
}

// A host that always closes the connection after the CHALLENGE gets three
// exchanges, then an error that says nothing was acted on; a wrong
// password met after a lost connection is still the host's real 401.
func TestNTLMConnectionAlwaysLostOrRejected(t *testing.T) {
	t.Run("always lost", func(t *testing.T) {
		ls := newPlainLossyServer(t, "S3cret!pw", func(k string, _, _ int) closeAction {
			if k == kindNegotiate {
				return closeHeader
			}
			return keepOpen
		})
		tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: ls.URL + "/wsman", Body: []byte("<x/>")})
		host := strings.TrimPrefix(ls.URL, "http://")
		want := "post to " + host + ": NTLM: the host closed the connection after its CHALLENGE (the connection was lost during each of 3 NTLM exchanges)"
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotSent) || errors.Is(err, ErrAuthentication) {
			t.Fatalf("got %+v, %v; want error %q matching ErrNotSent", resp, err, want)
		}
		lost := []exchange{negotiateOK}
		if diff := cmp.Diff([][]exchange{lost, lost, lost}, ls.connLog()); diff != "" {
			t.Errorf("connections (-want +got):\n%s", diff)
		}
		if got := ls.executed(); len(got) != 0 {
			t.Errorf("host acted on %q", got)
		}
	})
	t.Run("wrong password after a lost connection", func(t *testing.T) {
		ls := newPlainLossyServer(t, "other", func(k string, conn, _ int) closeAction {
			if conn == 1 && k == kindNegotiate {
				return closeHeader
			}
			return keepOpen
		})
		tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: ls.URL + "/wsman", Body: []byte("<x/>")})
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %+v, %v; want the host's 401", resp, err)
		}
		want := [][]exchange{{negotiateOK}, {negotiateOK, {kindAuthenticate, http.StatusUnauthorized}}}
		if diff := cmp.Diff(want, ls.connLog()); diff != "" {
			t.Errorf("connections (-want +got):\n%s", diff)
		}
	})
}

// A non-idempotent body whose AUTHENTICATE met a connection the host had
// silently closed either goes on a new exchange (nothing reached the
// host) or fails as a lost connection; never as rejected credentials, and
// the host never acts on it twice.
func TestNTLMNonIdempotentBodyOnLostConnection(t *testing.T) {
	for i := range 10 {
		ls := newPlainLossyServer(t, "S3cret!pw", func(k string, conn, _ int) closeAction {
			if conn == 1 && k == kindNegotiate {
				return closeSilently
			}
			return keepOpen
		})
		tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: ls.URL + "/wsman", Body: []byte("<create/>")})
		tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		executed := ls.executed()
		switch {
		case err == nil:
			if want := "user=alice encrypted=false body=<create/>"; resp.StatusCode != 200 || string(resp.Body) != want {
				t.Errorf("run %d: %d %q, want 200 %q", i, resp.StatusCode, resp.Body, want)
			}
			if diff := cmp.Diff([]string{"<create/>"}, executed); diff != "" {
				t.Errorf("run %d: bodies the host acted on (-want +got):\n%s", i, diff)
			}
		case errors.Is(err, ErrAuthentication) || errors.Is(err, ErrNotSent) || !IsConnectionClosed(err) ||
			!strings.HasPrefix(err.Error(), "read reply from "+strings.TrimPrefix(ls.URL, "http://")+": NTLM AUTHENTICATE: "):
			t.Errorf("run %d: got %v, want a lost connection during the AUTHENTICATE", i, err)
		case len(executed) != 0:
			t.Errorf("run %d: host acted on %q", i, executed)
		}
	}
}

// The exchange is redone under the caller's context: cancelled while the
// connection keeps being lost, RoundTrip returns the context's error.
func TestNTLMConnectionLostContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ls := newPlainLossyServer(t, "S3cret!pw", func(k string, _, _ int) closeAction {
		if k == kindNegotiate {
			cancel()
			return closeHeader
		}
		return keepOpen
	})
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	resp, err := tr.RoundTrip(ctx, &Request{URL: ls.URL + "/wsman", Body: []byte("<x/>")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v, %v; want context.Canceled", resp, err)
	}
	if got := len(ls.connLog()); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// A host that keeps closing connections, by header after every 7th reply
// and silently after every 5th CHALLENGE, serves Idempotent requests from 8
// goroutines: every request succeeds, the host acts on each body exactly
// once, and no connection carries an AUTHENTICATE answered 401 or a
// second NEGOTIATE.
func TestNTLMFlakyHost(t *testing.T) {
	replies, challenges := 0, 0
	ls := newPlainLossyServer(t, "S3cret!pw", func(kind string, _, _ int) closeAction {
		replies++
		if kind == kindNegotiate {
			challenges++
			if challenges%5 == 0 {
				return closeSilently
			}
		}
		if replies%7 == 0 {
			return closeHeader
		}
		return keepOpen
	})
	tr, err := NewNTLM(Config{User: "alice", Password: "S3cret!pw"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var want []string
	for g := range 8 {
		for i := range 25 {
			want = append(want, fmt.Sprintf("<g%d i='%02d'/>", g, i))
		}
		wg.Go(func() {
			for i := range 25 {
				body := fmt.Sprintf("<g%d i='%02d'/>", g, i)
				resp, err := tr.RoundTrip(context.Background(), &Request{URL: ls.URL + "/wsman", Body: []byte(body), Idempotent: true})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", body, err)
					return
				}
				if w := "user=alice encrypted=false body=" + body; resp.StatusCode != 200 || string(resp.Body) != w {
					errs <- fmt.Errorf("%s: got %d %q", body, resp.StatusCode, resp.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := ls.executed()
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bodies the host acted on (-want +got):\n%s", diff)
	}
	conns := ls.connLog()
	for i, c := range conns {
		negotiates := 0
		for _, e := range c {
			if e.Kind == kindNegotiate {
				negotiates++
			}
			if e.Kind == kindAuthenticate && e.Status != http.StatusOK {
				t.Errorf("connection %d carried %v", i+1, c)
			}
		}
		if negotiates > 1 {
			t.Errorf("connection %d carried %d NEGOTIATEs: %v", i+1, negotiates, c)
		}
	}
	if len(conns) < 20 {
		t.Errorf("only %d connections: the host closed too few to test anything", len(conns))
	}
}
