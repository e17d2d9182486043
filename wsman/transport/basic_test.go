package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testEnvelope = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/><s:Body/></s:Envelope>`
	testReply    = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>ok</s:Body></s:Envelope>`
)

// seenRequest is what a test server saw of one request.
type seenRequest struct {
	Method, Path, ContentType, Authorization, Identify string
	ContentLength                                      int64
	Body                                               string
}

// recorder remembers the requests a test server received.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (r *recorder) add(req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, seenRequest{
		Method:        req.Method,
		Path:          req.URL.Path,
		ContentType:   req.Header.Get("Content-Type"),
		Authorization: req.Header.Get("Authorization"),
		Identify:      req.Header.Get("WSMANIDENTIFY"),
		ContentLength: req.ContentLength,
		Body:          string(body),
	})
}

func (r *recorder) all() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.reqs...)
}

// basicHandler answers like a WinRM listener with Basic enabled for one
// local account: 401 without or with wrong credentials, else the reply.
func basicHandler(rec *recorder, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		u, p, ok := r.BasicAuth()
		if r.Header.Get("WSMANIDENTIFY") == "unauthenticated" && r.Header.Get("Authorization") == "" {
			ok, u, p = true, user, pass
		}
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="WSMAN"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
		_, _ = io.WriteString(w, testReply)
	})
}

// closeIdle drops a transport's kept-alive connections when the test ends,
// so that no connection goroutine outlives it.
func closeIdle(t *testing.T, tr Transport) {
	t.Helper()
	t.Cleanup(func() {
		if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	})
}

func TestBasic(t *testing.T) {
	const user, pass = "operator", "s3cret!"
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	tests := []struct {
		name       string
		serverPass string
		req        Request
		wantStatus int
		wantBody   string
		wantSeen   seenRequest
	}{
		{
			name:       "right password",
			serverPass: pass,
			req:        Request{Body: []byte(testEnvelope)},
			wantStatus: 200,
			wantBody:   testReply,
			wantSeen:   seenRequest{Authorization: wantAuth},
		},
		{
			name:       "wrong password is a 401 response, not an error",
			serverPass: "the server expects another",
			req:        Request{Body: []byte(testEnvelope)},
			wantStatus: 401,
			wantSeen:   seenRequest{Authorization: wantAuth},
		},
		{
			name:       "anonymous identify carries no credentials",
			serverPass: pass,
			req:        Request{Body: []byte(testEnvelope), Anonymous: true, Header: http.Header{"Wsmanidentify": {"unauthenticated"}}},
			wantStatus: 200,
			wantBody:   testReply,
			wantSeen:   seenRequest{Identify: "unauthenticated"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(basicHandler(rec, user, tc.serverPass))
			defer srv.Close()
			tr, err := NewBasic(Config{User: user, Password: pass, Encryption: EncryptionNever})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			tc.req.URL = srv.URL + "/wsman"
			resp, err := tr.RoundTrip(context.Background(), &tc.req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || string(resp.Body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Body, tc.wantStatus, tc.wantBody)
			}
			want := tc.wantSeen
			want.Method, want.Path, want.ContentType = "POST", "/wsman", ContentTypeSOAP
			want.ContentLength, want.Body = int64(len(testEnvelope)), testEnvelope
			if diff := cmp.Diff([]seenRequest{want}, rec.all()); diff != "" {
				t.Errorf("server saw (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnyStatusIsAResponse(t *testing.T) {
	tests := []struct {
		status int
		ct     string
		body   string
	}{
		{500, "application/soap+xml;charset=UTF-8", `<s:Envelope><s:Body><s:Fault/></s:Body></s:Envelope>`},
		{500, "", ""},
		{502, "text/html", "<html>bad gateway</html>"},
		{413, "", ""},
		{415, "text/plain", "unsupported media type"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status, tc.ct), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				}
				w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			tr, err := NewBasic(Config{User: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			got := []any{resp.StatusCode, resp.ContentType, string(resp.Body), resp.Header.Get("Server"), resp.Encrypted}
			want := []any{tc.status, tc.ct, tc.body, "Microsoft-HTTPAPI/2.0", false}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func newTLSServer(t *testing.T, pki *testPKI, h http.Handler, clientAuth tls.ClientAuthType) *httptest.Server {
	t.Helper()
	return newTLSServerWith(t, pki, h, clientAuth, nil)
}

// newTLSServerWith is newTLSServer with a ConnContext (per-connection
// state, as connection-bound authentication needs).
func newTLSServerWith(t *testing.T, pki *testPKI, h http.Handler, clientAuth tls.ClientAuthType, connContext func(context.Context, net.Conn) context.Context) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnContext = connContext
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientAuth:   clientAuth,
		ClientCAs:    pki.CAPool,
	}
	// The server's own handshake errors ("bad certificate") are expected.
	srv.Config.ErrorLog = discardLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	rec := &recorder{}
	srv := newTLSServer(t, pki, basicHandler(rec, "u", "p"), tls.NoClientCert)
	tests := []struct {
		name    string
		cfg     Config
		wantErr func(error) bool // nil: success
	}{
		{name: "CA file", cfg: Config{CAFile: pki.CAFile}},
		{name: "CA file and server name", cfg: Config{CAFile: pki.CAFile, ServerName: "wsman.test"}},
		{
			name: "wrong server name",
			cfg:  Config{CAFile: pki.CAFile, ServerName: "other.test"},
			wantErr: func(err error) bool {
				var he x509.HostnameError
				return errors.As(err, &he)
			},
		},
		{
			name: "system pool does not know the CA",
			cfg:  Config{},
			wantErr: func(err error) bool {
				var ue x509.UnknownAuthorityError
				var ve *tls.CertificateVerificationError
				return errors.As(err, &ue) && errors.As(err, &ve)
			},
		},
		{name: "insecure", cfg: Config{InsecureSkipVerify: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.User, tc.cfg.Password = "u", "p"
			tr, err := NewBasic(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
			if tc.wantErr == nil {
				if err != nil || resp.StatusCode != 200 || string(resp.Body) != testReply {
					t.Fatalf("got %+v, %v; want 200 with the reply", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %d, want an error", resp.StatusCode)
			}
			if !tc.wantErr(err) {
				t.Errorf("error %q (%T) is not the expected kind", err, errors.Unwrap(err))
			}
			host := strings.TrimPrefix(srv.URL, "https://")
			if !strings.Contains(err.Error(), host) {
				t.Errorf("error %q does not name the host %s", err, host)
			}
		})
	}
}

func TestCertificate(t *testing.T) {
	pki := newTestPKI(t)
	var mu sync.Mutex
	var seen []string
	srv := newTLSServer(t, pki, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.TLS.PeerCertificates[0].Subject.CommonName+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, testReply)
	}), tls.RequireAndVerifyClientCert)

	tr, err := NewCertificate(Config{Auth: AuthCertificate, CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %+v, %v", resp, err)
	}
	mu.Lock()
	if diff := cmp.Diff([]string{"operator " + secprofileMutual}, seen); diff != "" {
		t.Errorf("server saw (-want +got):\n%s", diff)
	}
	mu.Unlock()

	_, err = tr.RoundTrip(context.Background(), &Request{URL: "http://127.0.0.1:1/wsman", Body: []byte(testEnvelope)})
	if want := "certificate auth to 127.0.0.1:1: needs an https:// endpoint"; err == nil || err.Error() != want {
		t.Errorf("http:// endpoint: got %v, want %q", err, want)
	}

	// Without a client certificate the server ends the handshake.
	plain, err := NewBasic(Config{User: "u", CAFile: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, plain)
	if resp, err := plain.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)}); err == nil {
		t.Errorf("without a client certificate: got %d, want an error", resp.StatusCode)
	}
}

func TestConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	notPEM := t.TempDir() + "/ca.pem"
	writePEMRaw(t, notPEM, "not a certificate")
	tests := []struct {
		name string
		new  func(Config) (Transport, error)
		cfg  Config
		want string
	}{
		{"basic without user", NewBasic, Config{}, "basic auth: a user name is required"},
		{"basic cannot seal", NewBasic, Config{User: "u", Encryption: EncryptionAlways}, "basic auth cannot encrypt messages: use --encryption never or auto with https, or NTLM"},
		{"certificate cannot seal", NewCertificate, Config{CertFile: pki.CertFile, KeyFile: pki.KeyFile, Encryption: EncryptionAlways}, "certificate auth cannot encrypt messages: it runs over https, which already does"},
		{"certificate without files", NewCertificate, Config{}, "certificate auth: a client certificate and key file are required"},
		{"cert without key", NewBasic, Config{User: "u", CertFile: pki.CertFile}, "basic auth: client certificate: both CertFile and KeyFile are required"},
		{"CA file not PEM", NewBasic, Config{User: "u", CAFile: notPEM}, "basic auth: CA file " + notPEM + ": no PEM certificates found"},
		{"cert and key mismatch", NewCertificate, Config{CertFile: pki.CertFile, KeyFile: pki.CAFile}, "certificate auth: load client certificate " + pki.CertFile + ": tls: found a certificate rather than a key in the PEM for the private key"},
		{"ntlm without user", NewNTLM, Config{}, "ntlm auth: a user name is required"},
		{"plain ntlm cannot seal", NewNTLM, Config{User: "u", Encryption: EncryptionAlways}, "ntlm auth: NewNTLM never seals; use NewNTLMEncrypted (or New) for encryption always"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := tc.new(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, %v; want error %q", tr, err, tc.want)
			}
		})
	}
	t.Run("missing CA file", func(t *testing.T) {
		_, err := NewBasic(Config{User: "u", CAFile: "/nonexistent/ca.pem"})
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want a wrapped fs.ErrNotExist", err)
		}
	})
}

func TestBadRequest(t *testing.T) {
	tr, err := NewBasic(Config{User: "u", Password: "hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"nil", nil, "nil request"},
		{"scheme", &Request{URL: "ftp://host/wsman"}, "endpoint ftp://host/wsman: scheme must be http or https"},
		{"unparsable", &Request{URL: "http://[::1"}, `endpoint http://[::1: missing ']' in host`},
		{"unparsable with credentials", &Request{URL: "http://u:hunter2@[::1"}, `endpoint (URL with credentials): missing ']' in host`},
		{"credentials", &Request{URL: "http://u:hunter2@host:5985/wsman"}, "endpoint http://u:xxxxx@host:5985/wsman: credentials in the URL are not accepted; set the user and password instead"},
		{"no host", &Request{URL: "http:///wsman"}, "endpoint http:///wsman: no host"},
		{"relative", &Request{URL: "wsman"}, "endpoint wsman: scheme must be http or https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.RoundTrip(context.Background(), tc.req)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// connectProxy is a minimal HTTPS proxy: it answers CONNECT and splices
// bytes, counting tunnels.
type connectProxy struct {
	*httptest.Server
	mu      sync.Mutex
	targets []string
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newConnectProxy(t *testing.T) *connectProxy { return newConnectProxyTLS(t, nil) }

// newConnectProxyTLS is newConnectProxy spoken to over TLS (an https://
// proxy) when pki is not nil.
func newConnectProxyTLS(t *testing.T, pki *testPKI) *connectProxy {
	p := &connectProxy{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		down, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.conns = append(p.conns, up, down)
		p.mu.Unlock()
		_, _ = io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n")
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, brw); up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(down, up); down.Close() }()
	}))
	if pki != nil {
		p.Server.TLS = &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}}
		p.Server.StartTLS()
	} else {
		p.Server.Start()
	}
	t.Cleanup(func() {
		p.Server.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func TestHTTPSProxy(t *testing.T) {
	pki := newTestPKI(t)
	rec := &recorder{}
	srv := newTLSServer(t, pki, basicHandler(rec, "u", "p"), tls.NoClientCert)
	proxy := newConnectProxy(t)
	proxyURL, _ := url.Parse(proxy.URL)
	var asked []string
	tr, err := NewBasic(Config{User: "u", Password: "p", CAFile: pki.CAFile, Proxy: func(r *http.Request) (*url.URL, error) {
		asked = append(asked, r.URL.String())
		return proxyURL, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	for i := 0; i < 3; i++ {
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
		if err != nil || resp.StatusCode != 200 || string(resp.Body) != testReply {
			t.Fatalf("request %d: got %+v, %v", i, resp, err)
		}
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	// One tunnel, kept alive for all three requests.
	if diff := cmp.Diff([]string{host}, proxy.targets); diff != "" {
		t.Errorf("CONNECT targets (-want +got):\n%s", diff)
	}
	// The proxy is chosen when a connection is made.
	u := srv.URL + "/wsman"
	if diff := cmp.Diff([]string{u}, asked); diff != "" {
		t.Errorf("Proxy func asked for (-want +got):\n%s", diff)
	}
	if n := len(rec.all()); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
}

func TestContextDeadline(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	tr, err := NewBasic(Config{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = tr.RoundTrip(ctx, &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestResponseTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	tr, err := NewBasic(Config{User: "u", Password: "p", ResponseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	_, err = tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout net.Error", err)
	}
}

func TestServerClosesMidResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 1000\r\n\r\n<s:Envelope")
		_ = brw.Flush()
	}))
	defer srv.Close()
	tr, err := NewBasic(Config{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	_, err = tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestResponseTooLarge(t *testing.T) {
	const limit = 4096
	tests := []struct {
		name     string
		announce bool // send a Content-Length above the limit
	}{
		{"streamed without end", false},
		{"announced length", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stopped := make(chan int64, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
				if tc.announce {
					w.Header().Set("Content-Length", "1073741824")
				}
				chunk := []byte(strings.Repeat("x", 4096))
				var n int64
				for {
					// Only a client that stopped reading ends this loop.
					if _, err := w.Write(chunk); err != nil {
						stopped <- n
						return
					}
					n += int64(len(chunk))
					if err := http.NewResponseController(w).Flush(); err != nil {
						stopped <- n
						return
					}
				}
			}))
			defer srv.Close()
			tr, err := NewBasic(Config{User: "u", Password: "p", MaxResponseBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			_, err = tr.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)})
			var se *SizeError
			if !errors.As(err, &se) || se.Limit != limit || !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("got %v, want *SizeError{Limit: %d}", err, limit)
			}
			host := strings.TrimPrefix(srv.URL, "http://")
			if want := "read reply from " + host + ": response body exceeds the limit of 4096 bytes"; err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
			select {
			case <-stopped:
			case <-time.After(20 * time.Second):
				t.Fatal("the server is still streaming: the client did not hang up")
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		in      string
		limit   int64
		want    string
		wantErr bool
	}{
		{"", 0, "", false},
		{"abc", 3, "abc", false},
		{"abcd", 3, "", true},
		{"a", 0, "", true},
		{"abc", 100, "abc", false},
		{"abc", -1, "", true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q/%d", tc.in, tc.limit), func(t *testing.T) {
			cr := &countingReader{r: strings.NewReader(tc.in)}
			got, err := readBody(cr, tc.limit)
			if tc.wantErr {
				var se *SizeError
				if !errors.As(err, &se) || se.Limit != max(tc.limit, 0) {
					t.Fatalf("got %q, %v; want *SizeError", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("buffer stays within limit+1 whatever the hint", func(t *testing.T) {
		body := strings.Repeat("x", 3000)
		for _, hint := range []int64{-1, 0, 10, 3000, 1 << 30} {
			got, err := readBodySized(strings.NewReader(body), 3000, hint)
			if err != nil || string(got) != body || cap(got) > 3001 {
				t.Errorf("hint %d: len %d cap %d, %v; want all 3000 bytes in at most 3001", hint, len(got), cap(got), err)
			}
		}
		if _, err := readBodySized(strings.NewReader(body+"y"), 3000, 3000); !errors.Is(err, ErrResponseTooLarge) {
			t.Errorf("a body longer than announced and than the limit: got %v", err)
		}
	})
	t.Run("stops at limit+1 of an endless stream", func(t *testing.T) {
		cr := &countingReader{r: endless{}}
		_, err := readBody(cr, 10000)
		if !errors.Is(err, ErrResponseTooLarge) || cr.n != 10001 {
			t.Errorf("got %v after %d bytes; want ErrResponseTooLarge after 10001", err, cr.n)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func BenchmarkBasicRoundTrip(b *testing.B) {
	srv := httptest.NewServer(basicHandler(&recorder{}, "u", "p"))
	defer srv.Close()
	tr, err := NewBasic(Config{User: "u", Password: "p"})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	req := &Request{URL: srv.URL + "/wsman", Body: []byte(testEnvelope)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(ctx, req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", resp, err)
		}
	}
}
