// Package wsmantest runs a real WS-Management server on loopback for tests
// and demos, in the spirit of net/http/httptest: HTTP or HTTPS, Basic,
// NTLM (with or without MS-WSMV message encryption) and Kerberos
// authentication, and Windows-shaped replies and faults (same prefixes,
// Actions, subcodes, WSManFault codes and reason texts as the captures in
// shared/wire).
//
// Resource URIs are served by Providers. The server parses and validates
// every request as WinRM does, enforces OperationTimeout, keeps enumeration
// contexts, batches Enumerate/Pull replies, applies WQL and selector
// filters, and can inject failures (dropped connections, delays, truncated
// or garbled bodies, 5xx replies) for hardening tests.
package wsmantest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/internal/ntlmauth"
)

// AuthMethods is a set of authentication methods the server offers.
type AuthMethods int

// Authentication methods; combine them with |.
const (
	AuthBasic AuthMethods = 1 << iota
	AuthNTLM
	// AuthKerberos accepts Kerberos tickets for the service principals
	// of Config.KerberosKeytab, in the Negotiate scheme (SPNEGO or a raw
	// krb5 token) and the Kerberos scheme, as a domain-joined host does.
	// It cannot seal: over HTTP with RequireEncryption every body is
	// refused, so use it over HTTPS or without RequireEncryption.
	AuthKerberos
)

// Defaults that match a stock WinRM 3.0 listener.
const (
	DefaultMaxEnvelopeSizeKB  = 150
	DefaultMaxTimeout         = 60 * time.Second
	DefaultPullBatch          = 50
	DefaultOptimizedBatch     = 1
	DefaultEnumerationTimeout = 240 * time.Second
	// DefaultMaxOperationsPerUser is WinRM's MaxConcurrentOperationsPerUser
	// on current Windows (older hosts default to 15).
	DefaultMaxOperationsPerUser = 1500
	DefaultMachine              = "localhost"
	DefaultProductVersion       = "OS: 10.0.20348 SP: 0.0 Stack: 3.0"
)

// Config describes the simulated host.
type Config struct {
	// Auth is the set of methods offered; 0 means AuthBasic.
	Auth AuthMethods
	// Users maps user names ("admin" or "DOMAIN\\admin", matched without
	// regard to case) to passwords. For Kerberos only the names count:
	// when Users is not empty, a client principal may log in only if its
	// name (without realm) matches one without regard to case, as a
	// Windows account name; when it is empty, any principal with a valid
	// ticket from the keytab's realm may, as any domain user reaches a
	// host whose access list is not checked here.
	Users map[string]string
	// RequireEncryption refuses unsealed NTLM and Kerberos traffic over
	// HTTP as WinRM does with AllowUnencrypted=false, and refuses Basic
	// over plain HTTP.
	RequireEncryption bool
	// KerberosKeytab is the path of the keytab holding the host's service
	// keys (HTTP/host, as the computer account's), required with
	// AuthKerberos; New fails if it cannot be read.
	KerberosKeytab string
	// Machine is the host name in faults' Machine attribute and the NTLM
	// computer name (default "localhost").
	Machine string
	// Domain is the NTLM domain (default: Machine upper-cased).
	Domain string
	// Addr is the listen address (default "127.0.0.1:0").
	Addr string
	// MaxEnvelopeSizeKB bounds requests (HTTP 413 above it) and replies
	// (default 150, WinRM's MaxEnvelopeSizekb).
	MaxEnvelopeSizeKB int
	// MaxTimeout caps OperationTimeout (default 60s, WinRM's MaxTimeoutms).
	MaxTimeout time.Duration
	// PullBatch is the most items per PullResponse (default 50, as
	// Server 2012 returns for Win32_Service).
	PullBatch int
	// OptimizedBatch is the most items in an optimized EnumerateResponse
	// (default 1, as Server 2012 returns whatever MaxElements says).
	OptimizedBatch int
	// EnumerationTimeout is how long an idle enumeration context lives
	// (default 240s, WinRM's EnumerationTimeoutms).
	EnumerationTimeout time.Duration
	// ProductVersion is the authenticated Identify's ProductVersion.
	ProductVersion string
	// MaxOperationsPerUser is WinRM's MaxConcurrentOperationsPerUser
	// (default 1500; 15 on old Windows): how many enumeration contexts
	// (live or being opened) one user may hold before Enumerate answers
	// w:InternalError 0x803381A6. Expired and released contexts do not
	// count, so a client that never Releases what it abandons fails here
	// as it would against Windows.
	MaxOperationsPerUser int
}

func (c *Config) setDefaults() {
	if c.Auth == 0 {
		c.Auth = AuthBasic
	}
	if c.Machine == "" {
		c.Machine = DefaultMachine
	}
	if c.Domain == "" {
		c.Domain = strings.ToUpper(c.Machine)
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.MaxEnvelopeSizeKB <= 0 {
		c.MaxEnvelopeSizeKB = DefaultMaxEnvelopeSizeKB
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.PullBatch <= 0 {
		c.PullBatch = DefaultPullBatch
	}
	if c.OptimizedBatch <= 0 {
		c.OptimizedBatch = DefaultOptimizedBatch
	}
	if c.EnumerationTimeout <= 0 {
		c.EnumerationTimeout = DefaultEnumerationTimeout
	}
	if c.ProductVersion == "" {
		c.ProductVersion = DefaultProductVersion
	}
	if c.MaxOperationsPerUser <= 0 {
		c.MaxOperationsPerUser = DefaultMaxOperationsPerUser
	}
}

// Server is a WS-Management server on a loopback (or given) address.
type Server struct {
	// URL is the endpoint, e.g. http://127.0.0.1:41234/wsman, set by Start
	// or StartTLS.
	URL string
	// Listener is the server's listener.
	Listener net.Listener
	// TLS is the server's TLS configuration after StartTLS.
	TLS *tls.Config

	cfg     Config
	srv     *http.Server
	ntlm    http.Handler // NTLM layer around the SOAP handler, if offered
	ntlmSrv *ntlmauth.Server
	krb     *krbAcceptor // Kerberos acceptor, if offered
	cert    *x509.Certificate
	certPEM []byte
	caFile  string

	mu        sync.Mutex
	routes    map[string]*route
	enums     map[string]*enumState
	opening   map[string]int // Enumerates in progress, by quotaUser
	log       []LogEntry
	conns     map[net.Conn]struct{}
	accepted  int
	inject    injector
	started   bool
	closed    bool
	wg        sync.WaitGroup
	handshk   atomic.Int64
	krbLogons atomic.Int64
}

type route struct {
	uri  string
	p    Provider
	keys []string // nil: unknown, not checked
}

// Keyed is an optional Provider interface that names the key properties of
// its class: the server then checks selectors (w:InvalidSelectors) and
// builds EPRs for EnumerateObjectAndEPR from them.
type Keyed interface {
	Keys() []string
}

// NewServer starts a server with cfg on cfg.Addr; it panics if it cannot
// listen, like httptest.NewServer. Callers must Close it.
func NewServer(cfg Config) *Server {
	s := NewUnstartedServer(cfg)
	s.Start()
	return s
}

// NewUnstartedServer returns a listening server that does not serve yet, so
// that providers can be registered and Start or StartTLS chosen. It panics
// if it cannot listen; use New for an error instead.
func NewUnstartedServer(cfg Config) *Server {
	s, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// New is NewUnstartedServer returning the listen error.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	var krb *krbAcceptor
	if cfg.Auth&AuthKerberos != 0 {
		kt, err := loadKeytab(cfg.KerberosKeytab)
		if err != nil {
			return nil, err
		}
		krb = newKrbAcceptor(kt, cfg.Users)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("wsmantest: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		Listener: l,
		cfg:      cfg,
		routes:   map[string]*route{},
		enums:    map[string]*enumState{},
		opening:  map[string]int{},
		conns:    map[net.Conn]struct{}{},
		krb:      krb,
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ConnState:         s.connState,
		ConnContext:       s.connContext,
	}
	if cfg.Auth&AuthNTLM != 0 {
		s.newNTLM()
	}
	return s, nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Handle serves resourceURI (a full URI, matched without regard to case as
// WMI class names are) with p. keys, when given, are the class's key
// properties; otherwise a provider implementing Keyed declares them; with
// neither, selectors are not checked by the server.
func (s *Server) Handle(resourceURI string, p Provider, keys ...string) {
	r := &route{uri: resourceURI, p: p, keys: keys}
	if len(keys) == 0 {
		r.keys = nil
		if k, ok := p.(Keyed); ok {
			r.keys = append([]string{}, k.Keys()...)
		}
	}
	s.mu.Lock()
	s.routes[strings.ToLower(resourceURI)] = r
	s.mu.Unlock()
}

func (s *Server) route(uri string) *route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes[strings.ToLower(uri)]
}

// Start serves plain HTTP.
func (s *Server) Start() {
	s.begin("http")
	go s.srv.Serve(s.Listener) //nolint:errcheck // ends with ErrServerClosed
}

// StartTLS serves HTTPS with a fresh self-signed certificate for the
// listen address, 127.0.0.1, ::1 and localhost; clients trust it through
// Certificate, CertPEM or CAFile.
func (s *Server) StartTLS() {
	cert, err := s.makeCert()
	if err != nil {
		panic(fmt.Sprintf("wsmantest: certificate: %v", err))
	}
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.begin("https")
	go s.srv.Serve(tls.NewListener(s.Listener, s.TLS)) //nolint:errcheck // ends with ErrServerClosed
}

func (s *Server) begin(scheme string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("wsmantest: server already started")
	}
	s.started = true
	s.URL = scheme + "://" + s.Listener.Addr().String() + "/wsman"
	if s.ntlmSrv != nil {
		s.ntlm = s.ntlmHandler(http.HandlerFunc(s.serveSOAP), scheme == "https")
	}
}

// Close stops the server, closes every connection and waits for provider
// calls still running (providers must honour their context).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if started {
		s.srv.Close()
	} else {
		s.Listener.Close()
	}
	s.wg.Wait()
	if s.caFile != "" {
		os.Remove(s.caFile)
	}
}

// Certificate returns the server's TLS certificate (nil before StartTLS).
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// CertPEM returns the server's certificate in PEM (nil before StartTLS).
func (s *Server) CertPEM() []byte { return s.certPEM }

// CAFile writes the certificate as PEM into a temporary file, removed by
// Close, and returns its path: what transport.Config.CAFile wants.
func (s *Server) CAFile() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certPEM == nil {
		return "", errors.New("wsmantest: CAFile: server not started with StartTLS")
	}
	if s.caFile != "" {
		return s.caFile, nil
	}
	f, err := os.CreateTemp("", "wsmantest-ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("wsmantest: CAFile: %w", err)
	}
	if _, err := f.Write(s.certPEM); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("wsmantest: CAFile: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("wsmantest: CAFile: %w", err)
	}
	s.caFile = filepath.Clean(f.Name())
	return s.caFile, nil
}

func (s *Server) makeCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cfg.Machine},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", s.cfg.Machine},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(s.Listener.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.Equal(net.IPv4(127, 0, 0, 1)) && !ip.Equal(net.IPv6loopback) {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	s.cert, err = x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	s.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: s.cert}, nil
}

type connKey struct{}

func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, connKey{}, c)
	return s.krbConnContext(s.ntlmConnContext(ctx, c))
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
		s.accepted++
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// ForgetSessions closes every client connection, as a host restart does:
// NTLM and Kerberos logons and sealing are bound to the connection, so
// clients must authenticate again.
func (s *Server) ForgetSessions() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Connections returns how many TCP connections the server has accepted,
// so tests can check that clients keep connections alive.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// NTLMHandshakes counts completed NTLM AUTHENTICATE messages the server
// accepted, i.e. handshakes.
func (s *Server) NTLMHandshakes() int { return int(s.handshk.Load()) }

// LogEntry is one request as the server saw it.
type LogEntry struct {
	// Action and ResourceURI as sent ("" for auth legs and unparsable bodies).
	Action      string
	ResourceURI string
	// Status is the HTTP status sent (0 when the connection was dropped).
	Status int
	// Fault is the fault subcode's local name (or SOAP code), if any.
	Fault string
	// User is the authenticated user.
	User string
	// Encrypted reports a sealed request.
	Encrypted bool
	// Injected names the injected failure applied, if any.
	Injected string
	// AuthError says why a Kerberos authentication was refused (one of
	// the KrbErr values); the client only sees a bare 401.
	AuthError string
}

// Log returns a copy of the request log.
func (s *Server) Log() []LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogEntry(nil), s.log...)
}

// ResetLog empties the request log.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
}

// record travels in the request context from the outer handler to the SOAP
// handler and back.
type record struct {
	entry   LogEntry
	effect  *Injection // post-processing of the reply (drop, truncate, garble, replace)
	soapRun bool
}

type recordKey struct{}

// bufWriter buffers the reply so that injected failures can act on the
// bytes that would go on the wire (sealed or not).
type bufWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufWriter) Header() http.Header { return b.h }
func (b *bufWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}
func (b *bufWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// ServeHTTP is the HTTP.sys + WinRM front: path and method checks,
// authentication, then the SOAP handler; it applies injected failures to
// the finished reply.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
	if r.URL.Path != "/wsman" && r.URL.Path != "/wsman-anon" {
		w.Header().Set("Content-Type", "text/html; charset=us-ascii")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, notFoundHTML)
		s.appendLog(LogEntry{Status: http.StatusNotFound})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		s.appendLog(LogEntry{Status: http.StatusMethodNotAllowed})
		return
	}
	rec := &record{}
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec))
	bw := &bufWriter{h: w.Header()}
	authz := r.Header.Get("Authorization")
	isType3 := isNTLMAuthenticate(authz)
	kc := s.krbConnOf(r)
	krbScheme, krbToken, isKrb := isKerberosAuthz(authz)
	var krbUser string
	var krbFailed bool
	if kc != nil {
		if authz != "" && !isKrb {
			// Another method's credentials end the connection's Kerberos
			// logon: the connection is that method's now.
			kc.set("", false)
		}
		krbUser, krbFailed = kc.state()
	}

	switch {
	case strings.EqualFold(r.Header.Get("WSMANIDENTIFY"), "unauthenticated") && authz == "":
		s.serveAnonIdentify(bw, r)
	case r.URL.Path == "/wsman-anon":
		bw.WriteHeader(http.StatusUnauthorized)
	case s.cfg.Auth&AuthBasic != 0 && len(authz) > 6 && strings.EqualFold(authz[:6], "basic "):
		user, ok := s.checkBasic(r)
		switch {
		case !ok:
			s.challenge(bw)
		case s.cfg.RequireEncryption && r.TLS == nil:
			// AllowUnencrypted=false: Basic cannot seal, so it is refused over HTTP.
			s.challenge(bw)
		default:
			rec.entry.User = user
			s.serveSOAP(bw, r)
		}
	case kc != nil && isKrb:
		s.serveKerberos(bw, r, kc, krbScheme, krbToken)
	case authz == "" && krbUser != "":
		s.serveKerberosSOAP(bw, r, krbUser)
	case authz == "" && krbFailed:
		// A refused Kerberos attempt leaves the connection
		// unauthenticated, even if NTLM had logged it on before.
		s.challenge(bw)
	case s.ntlm != nil:
		s.ntlm.ServeHTTP(&challengeWriter{bufWriter: bw, s: s}, r)
	default:
		s.challenge(bw)
	}
	if isType3 && bw.status != http.StatusUnauthorized && bw.status != 0 {
		s.handshk.Add(1)
	}
	if bw.status == 0 {
		bw.status = http.StatusOK
	}
	rec.entry.Status = bw.status
	if eff := rec.effect; eff != nil {
		switch eff.Kind {
		case InjectDrop:
			rec.entry.Status = 0
		case InjectStatus:
			rec.entry.Status = eff.Status
		}
	}
	// Log before writing, so that a test reading the log right after its
	// client call returns (even on a dropped connection) sees the entry.
	if rec.soapRun || bw.status != http.StatusOK {
		s.appendLog(rec.entry)
	}
	s.finish(w, bw, rec)
}

func (s *Server) appendLog(e LogEntry) {
	s.mu.Lock()
	s.log = append(s.log, e)
	s.mu.Unlock()
}

const notFoundHTML = `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">
<HTML><HEAD><TITLE>Not Found</TITLE>
<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>
<BODY><h2>Not Found</h2>
<hr><p>HTTP Error 404. The requested resource is not found.</p>
</BODY></HTML>
`

// challenge answers 401 with the methods offered, in the order a
// domain-joined WinRM host lists them (wsman-wire.md §2.1; Negotiate
// carries NTLM or Kerberos, Kerberos its raw tokens).
func (s *Server) challenge(w http.ResponseWriter) {
	if s.cfg.Auth&(AuthNTLM|AuthKerberos) != 0 {
		w.Header().Add("WWW-Authenticate", "Negotiate")
	}
	if s.cfg.Auth&AuthKerberos != 0 {
		w.Header().Add("WWW-Authenticate", "Kerberos")
	}
	if s.cfg.Auth&AuthBasic != 0 {
		w.Header().Add("WWW-Authenticate", `Basic realm="WSMAN"`)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusUnauthorized)
}

// challengeWriter adds the Kerberos and Basic challenges to the NTLM
// layer's 401s when those methods are offered too, as WinRM lists every
// enabled method.
type challengeWriter struct {
	*bufWriter
	s *Server
}

func (c *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		if c.s.cfg.Auth&AuthKerberos != 0 {
			c.addChallenge("kerberos", "Kerberos")
		}
		if c.s.cfg.Auth&AuthBasic != 0 {
			c.addChallenge("basic", `Basic realm="WSMAN"`)
		}
	}
	c.bufWriter.WriteHeader(code)
}

// addChallenge adds value unless a challenge of scheme is there already.
func (c *challengeWriter) addChallenge(scheme, value string) {
	for _, v := range c.h.Values("WWW-Authenticate") {
		if s, _, _ := strings.Cut(v, " "); strings.EqualFold(s, scheme) {
			return
		}
	}
	c.h.Add("WWW-Authenticate", value)
}

func (c *challengeWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	return c.bufWriter.Write(p)
}

func (s *Server) checkBasic(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	want, ok := s.lookupUser(user)
	return user, ok && want == pass
}

// lookupUser finds a user's password, matching "DOMAIN\user" against
// "user" too, without regard to case.
func (s *Server) lookupUser(user string) (string, bool) {
	short := user
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		short = user[i+1:]
	}
	for k, v := range s.cfg.Users {
		if strings.EqualFold(k, user) || strings.EqualFold(k, short) {
			return v, true
		}
	}
	return "", false
}

func isNTLMAuthenticate(authz string) bool {
	_, tok, ok := strings.Cut(authz, " ")
	// base64 of "NTLMSSP\x00\x03\x00\x00\x00"
	return ok && strings.HasPrefix(strings.TrimSpace(tok), "TlRMTVNTUAADAAAA")
}

func (s *Server) serveAnonIdentify(w http.ResponseWriter, r *http.Request) {
	rec := r.Context().Value(recordKey{}).(*record)
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxEnvelopeSizeKB)*1024))
	if err != nil {
		return
	}
	p, fault := parseEnvelope(body, s.cfg.MaxTimeout)
	if fault != nil || !p.identify {
		// Only Identify may go without credentials.
		s.challenge(w)
		return
	}
	rec.soapRun = true
	rec.entry.Action = "Identify"
	if s.applyPre(w, r, rec, "Identify", "") {
		return
	}
	out := identifyResponse("OS: 0.0.0 SP: 0.0 Stack: 3.0", nil)
	s.writeSOAP(w, r, rec, http.StatusOK, out)
}

// identifyResponse renders wsmid:IdentifyResponse as Windows does: an empty
// s:Header, no xml:lang.
func identifyResponse(version string, profiles []string) []byte {
	var b strings.Builder
	b.WriteString(`<s:Envelope xmlns:s="` + wsman.NsSOAP + `"><s:Header/><s:Body><wsmid:IdentifyResponse xmlns:wsmid="` + wsman.NsIdentity + `">`)
	b.WriteString(`<wsmid:ProtocolVersion>` + wsman.NsWSMan + `</wsmid:ProtocolVersion>`)
	b.WriteString(`<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>`)
	b.WriteString(`<wsmid:ProductVersion>` + version + `</wsmid:ProductVersion>`)
	if len(profiles) > 0 {
		b.WriteString(`<wsmid:SecurityProfiles>`)
		for _, p := range profiles {
			b.WriteString(`<wsmid:SecurityProfileName>` + p + `</wsmid:SecurityProfileName>`)
		}
		b.WriteString(`</wsmid:SecurityProfiles>`)
	}
	b.WriteString(`</wsmid:IdentifyResponse></s:Body></s:Envelope>`)
	return []byte(b.String())
}

func (s *Server) securityProfiles() []string {
	var out []string
	if s.cfg.Auth&AuthBasic != 0 {
		out = append(out, "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/basic")
	}
	if s.cfg.Auth&(AuthNTLM|AuthKerberos) != 0 {
		out = append(out, "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos")
	}
	return out
}

// serveSOAP handles one authenticated (and, under NTLM sealing, already
// decrypted) request.
func (s *Server) serveSOAP(w http.ResponseWriter, r *http.Request) {
	rec, _ := r.Context().Value(recordKey{}).(*record)
	if rec == nil {
		rec = &record{}
	}
	if u := s.ntlmUser(r); u != "" {
		rec.entry.User = u
	}
	rec.entry.Encrypted = s.ntlmEncrypted(r)
	limit := int64(s.cfg.MaxEnvelopeSizeKB) * 1024
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return
	}
	if len(body) == 0 {
		// The empty-body POST clients send to finish authentication
		// before sealed traffic (pywinrm, masterzen) gets a 200.
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	rec.soapRun = true
	if int64(len(body)) > limit {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	body, ok := decodeBody(r.Header.Get("Content-Type"), body)
	if !ok {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	p, fault := parseEnvelope(body, s.cfg.MaxTimeout)
	rec.entry.Action, rec.entry.ResourceURI = p.action, p.resource
	if p.identify {
		rec.entry.Action = "Identify"
	}
	if s.applyPre(w, r, rec, rec.entry.Action, p.messageID) {
		return
	}
	if fault != nil {
		s.writeFault(w, r, rec, fault, p)
		return
	}
	if p.identify {
		s.writeSOAP(w, r, rec, http.StatusOK, identifyResponse(s.cfg.ProductVersion, s.securityProfiles()))
		return
	}
	out, err := s.dispatch(r.Context(), p, rec.entry.User)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.writeFault(w, r, rec, toFault(err), p)
		return
	}
	if limit := s.replyLimit(p); len(out) > limit {
		f := newFault("Sender", wsman.NsWSMan, "EncodingLimit", CodeMaxEnvelopeSizeExceeded, textEncodingLimit, textEnvelopeExceeded)
		f.Detail = wsman.FaultDetailBase + "MaxEnvelopeSize"
		s.writeFault(w, r, rec, f, p)
		return
	}
	s.writeSOAP(w, r, rec, http.StatusOK, out)
}

// replyLimit is the request's MaxEnvelopeSize clamped to the server's
// MaxEnvelopeSizekb, as WinRM does.
func (s *Server) replyLimit(p *parsed) int {
	limit := s.cfg.MaxEnvelopeSizeKB * 1024
	if p.maxEnv > 0 && p.maxEnv < limit {
		limit = p.maxEnv
	}
	return limit
}

// decodeBody checks the media type (415 otherwise) and turns UTF-16
// bodies, which WinRM accepts, into UTF-8.
func decodeBody(ct string, body []byte) ([]byte, bool) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/soap+xml" {
		return nil, false
	}
	switch cs := strings.ToLower(params["charset"]); cs {
	case "", "utf-8":
		return body, true
	case "utf-16", "utf-16le", "utf-16be":
		big := cs == "utf-16be"
		if len(body) >= 2 {
			switch {
			case body[0] == 0xFF && body[1] == 0xFE:
				big, body = false, body[2:]
			case body[0] == 0xFE && body[1] == 0xFF:
				big, body = true, body[2:]
			}
		}
		if len(body)%2 != 0 {
			return nil, false
		}
		u := make([]uint16, len(body)/2)
		for i := range u {
			if big {
				u[i] = uint16(body[2*i])<<8 | uint16(body[2*i+1])
			} else {
				u[i] = uint16(body[2*i+1])<<8 | uint16(body[2*i])
			}
		}
		s := string(utf16.Decode(u))
		s = strings.Replace(s, `encoding="utf-16"`, `encoding="utf-8"`, 1)
		s = strings.Replace(s, `encoding="UTF-16"`, `encoding="UTF-8"`, 1)
		return []byte(s), true
	}
	return nil, false
}

func toFault(err error) *wsman.Fault {
	var f *wsman.Fault
	if errors.As(err, &f) {
		return f
	}
	// Any other provider error: w:InternalError, E_FAIL, its text as the
	// provider fault.
	return FaultInternalError(err.Error(), 0x80004005)
}

func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, rec *record, f *wsman.Fault, p *parsed) {
	rec.entry.Fault = f.Subcode
	if f.Subcode == "" {
		rec.entry.Fault = f.Code
	}
	e := newEnvelope(faultAction(f), p.messageID, nsFault)
	if p.notUnderstood[1] != "" {
		nu := e.header.CreateElement("s:NotUnderstood")
		nu.CreateAttr("xmlns:q", p.notUnderstood[0])
		nu.CreateAttr("qname", "q:"+p.notUnderstood[1])
	}
	renderFault(e.body, f, s.cfg.Machine)
	s.writeSOAP(w, r, rec, http.StatusInternalServerError, e.bytes())
}

func (s *Server) writeSOAP(w http.ResponseWriter, r *http.Request, rec *record, status int, body []byte) {
	if rec.effect != nil && rec.effect.Rewrite != nil {
		body = rec.effect.Rewrite(body)
	}
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body)
}

// finish writes the buffered reply to the connection, applying an injected
// effect on the wire bytes.
func (s *Server) finish(w http.ResponseWriter, bw *bufWriter, rec *record) {
	eff := rec.effect
	body := bw.buf.Bytes()
	if eff != nil {
		switch eff.Kind {
		case InjectDrop:
			s.hijackWrite(w, nil)
			return
		case InjectTruncate:
			head := fmt.Sprintf("HTTP/1.1 %d %s\r\n", bw.status, http.StatusText(bw.status))
			hdr := bw.h.Clone()
			hdr.Set("Content-Length", fmt.Sprint(len(body)))
			var hb bytes.Buffer
			hdr.Write(&hb)
			cut := len(body) / 2
			if eff.TruncateAt > 0 && eff.TruncateAt < len(body) {
				cut = eff.TruncateAt
			}
			s.hijackWrite(w, append(append([]byte(head), append(hb.Bytes(), "\r\n"...)...), body[:cut]...))
			return
		case InjectGarble:
			body = garble(body)
		case InjectStatus:
			h := w.Header()
			for k := range h {
				if k != "Server" {
					h.Del(k)
				}
			}
			if eff.ContentType != "" {
				h.Set("Content-Type", eff.ContentType)
			}
			if eff.RetryAfter != "" {
				h.Set("Retry-After", eff.RetryAfter)
			}
			bw.status, body = eff.Status, []byte(eff.Body)
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(bw.status)
	w.Write(body)
}

// hijackWrite takes the connection over, writes raw bytes and closes it.
func (s *Server) hijackWrite(w http.ResponseWriter, raw []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if len(raw) > 0 {
		buf.Write(raw)
		buf.Flush()
	}
	conn.Close()
}

// garble flips bytes in the middle of the body so it is no longer XML
// (or no longer verifies under sealing) but keeps its length.
func garble(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := len(out) / 3; i < len(out)/3+16 && i < len(out); i++ {
		out[i] ^= 0x5A
	}
	if len(out) > 0 {
		out[0] = '#'
	}
	return out
}
