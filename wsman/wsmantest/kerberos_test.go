package wsmantest_test

import (
	"bufio"
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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// spn is the service the tests' tickets are for: the host part is what a
// client derives from https://localhost:PORT/wsman.
const spn = "HTTP/localhost"

// krbChallenge is the bare 401's challenge of a Kerberos-only host.
var krbChallenge = []string{"Negotiate", "Kerberos"}

// realm is a KDC with the HTTP/localhost service and a gokrb5 client
// logged on as krbtest.User.
type realm struct {
	*krbtest.Realm
	keytab string // HTTP/localhost's keys
	cl     *client.Client
}

func startRealm(t *testing.T) *realm {
	t.Helper()
	r := krbtest.Start(t)
	kt := r.AddService(t, spn)
	return &realm{Realm: r, keytab: kt, cl: r.Login(t)}
}

// spnegoHeader is what gokrb5's own SPNEGO client sends: a NegTokenInit
// (krb5 only) whose AP-REQ does not ask for mutual authentication.
func (r *realm) spnegoHeader(t *testing.T) string {
	t.Helper()
	tok, err := spnego.SPNEGOClient(r.cl, spn).InitSecContext()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b)
}

// apreq is an AP-REQ's GSS krb5 token with what the client knows of it.
type apreq struct {
	token   []byte
	key     types.EncryptionKey // the ticket's session key
	auth    types.Authenticator
	krb5Tok spnego.KRB5Token
}

// newAPReq builds a GSS krb5 AP-REQ token for spn, asking for mutual
// authentication when mutual is set (as MIT GSSAPI does for pykerberos).
func (r *realm) newAPReq(t *testing.T, mutual bool) apreq {
	t.Helper()
	tkt, key, err := r.cl.GetServiceTicket(spn)
	if err != nil {
		t.Fatal(err)
	}
	gssFlags := []int{gssapi.ContextFlagInteg, gssapi.ContextFlagConf}
	var apOpts []int
	if mutual {
		gssFlags = append(gssFlags, gssapi.ContextFlagMutual)
		apOpts = []int{flags.APOptionMutualRequired}
	}
	k5, err := spnego.NewKRB5TokenAPREQ(r.cl, tkt, key, gssFlags, apOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k5.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := k5.APReq.DecryptAuthenticator(key); err != nil {
		t.Fatal(err)
	}
	return apreq{token: b, key: key, auth: k5.APReq.Authenticator, krb5Tok: k5}
}

// negTokenInit wraps a mechanism token in SPNEGO with the given mechanism
// list.
func negTokenInit(t *testing.T, mechTok []byte, mechs ...asn1.ObjectIdentifier) string {
	t.Helper()
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{MechTypes: mechs, MechTokenBytes: mechTok}}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b)
}

// userSeen records who the provider was called as.
type userSeen struct {
	*widgets
	mu    sync.Mutex
	users []string
}

func (u *userSeen) Get(ctx context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	u.mu.Lock()
	u.users = append(u.users, r.User)
	u.mu.Unlock()
	return u.widgets.Get(ctx, r)
}

func (u *userSeen) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.users...)
}

// newKrbServer starts a server with cfg (Kerberos with r's keytab unless
// cfg says otherwise) over HTTPS, or HTTP when plain is set.
func newKrbServer(t *testing.T, r *realm, cfg wsmantest.Config, plain bool) (*wsmantest.Server, *userSeen) {
	t.Helper()
	if cfg.Auth == 0 {
		cfg.Auth = wsmantest.AuthKerberos
	}
	if cfg.KerberosKeytab == "" {
		cfg.KerberosKeytab = r.keytab
	}
	s, err := wsmantest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &userSeen{widgets: newWidgets(3)}
	s.Handle(widgetURI, p)
	if plain {
		s.Start()
	} else {
		s.StartTLS()
	}
	t.Cleanup(s.Close)
	return s, p
}

// conn is one client TCP connection to a server, so that tests decide
// which requests share a connection.
type conn struct {
	t   *testing.T
	c   net.Conn
	br  *bufio.Reader
	url string
}

func dial(t *testing.T, s *wsmantest.Server) *conn {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	addr := "127.0.0.1:" + port
	var c net.Conn
	var err error
	scheme := "http"
	if s.Certificate() != nil {
		scheme = "https"
		pool := x509.NewCertPool()
		pool.AddCert(s.Certificate())
		c, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &conn{t: t, c: c, br: bufio.NewReader(c), url: scheme + "://localhost:" + port + "/wsman"}
}

// post sends body with the Authorization header authz (none when "") and
// the given Content-Type (SOAP when "").
func (c *conn) post(authz, ctype, body string) rawReply {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype == "" {
		ctype = "application/soap+xml;charset=UTF-8"
	}
	req.Header.Set("Content-Type", ctype)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if err := req.Write(c.c); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return rawReply{resp.StatusCode, resp.Header, string(b)}
}

var getW001 = fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "w001", "")

// widgetProps reads Caption, Name and State from a GetResponse.
func widgetProps(t *testing.T, body string) map[string]string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(body); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	el := doc.FindElement("/Envelope/Body/Widget")
	if el == nil {
		t.Fatalf("no Widget in %s", body)
	}
	in, err := wsman.ParseInstance(el)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range []string{"Caption", "Name", "State"} {
		out[n] = mustString(t, in, n)
	}
	return out
}

var wantW001 = map[string]string{"Caption": "Widget number 1", "Name": "w001", "State": "1"}

// TestKerberosGet: gokrb5's SPNEGO client gets an instance over HTTPS;
// the logon then holds for the connection and only for it.
func TestKerberosGet(t *testing.T) {
	r := startRealm(t)
	s, p := newKrbServer(t, r, wsmantest.Config{}, false)
	c := dial(t, s)

	got := c.post(r.spnegoHeader(t), "", getW001)
	if got.status != http.StatusOK {
		t.Fatalf("status %d, body %q, log %+v", got.status, got.body, s.Log())
	}
	// No mutual authentication asked: accept-completed and the mechanism,
	// no response token (RFC 4178 §4.2.2).
	if diff := cmp.Diff([]string{"Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg=="}, got.header.Values("WWW-Authenticate")); diff != "" {
		t.Errorf("WWW-Authenticate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantW001, widgetProps(t, got.body)); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}

	// Same connection, no Authorization: served as the same user.
	again := c.post("", "", getW001)
	if again.status != http.StatusOK || again.header.Values("WWW-Authenticate") != nil {
		t.Fatalf("same connection without Authorization: status %d, WWW-Authenticate %q", again.status, again.header.Values("WWW-Authenticate"))
	}
	if diff := cmp.Diff(wantW001, widgetProps(t, again.body)); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{krbtest.User, krbtest.User}, p.seen()); diff != "" {
		t.Errorf("users the provider saw (-want +got):\n%s", diff)
	}
	want := []wsmantest.LogEntry{
		{Action: wsman.ActionGet, ResourceURI: widgetURI, Status: 200, User: krbtest.User},
		{Action: wsman.ActionGet, ResourceURI: widgetURI, Status: 200, User: krbtest.User},
	}
	if diff := cmp.Diff(want, s.Log()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}

	// Another connection has no logon.
	other := dial(t, s).post("", "", getW001)
	if other.status != http.StatusUnauthorized || other.body != "" || other.header.Get("Content-Length") != "0" {
		t.Errorf("new connection: status %d Content-Length %q body %q, want a bare 401", other.status, other.header.Get("Content-Length"), other.body)
	}
	if diff := cmp.Diff(krbChallenge, other.header.Values("WWW-Authenticate")); diff != "" {
		t.Errorf("challenge (-want +got):\n%s", diff)
	}
	if n := s.KerberosLogons(); n != 1 {
		t.Errorf("KerberosLogons = %d, want 1", n)
	}
}

// TestKerberosRefused: what Windows answers a ticket it refuses, a bare
// 401 with the challenge, never a 500; the log says why.
func TestKerberosRefused(t *testing.T) {
	r := startRealm(t)
	otherKeytab := r.AddService(t, "HTTP/otherhost")
	ntlmOID := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}
	garbage := base64.StdEncoding.EncodeToString([]byte("not a token at all"))
	tests := []struct {
		name  string
		cfg   wsmantest.Config
		authz func(t *testing.T) string
		why   string
	}{
		{"keytab of another service", wsmantest.Config{KerberosKeytab: otherKeytab}, r.spnegoHeader, wsmantest.KrbErrNoKey},
		{"principal not in Users", wsmantest.Config{Users: map[string]string{"someoneelse": "x"}}, r.spnegoHeader, wsmantest.KrbErrPrincipal},
		{"garbage Negotiate", wsmantest.Config{}, func(*testing.T) string { return "Negotiate " + garbage }, wsmantest.KrbErrMalformed},
		{"garbage Kerberos", wsmantest.Config{}, func(*testing.T) string { return "Kerberos " + garbage }, wsmantest.KrbErrMalformed},
		{"bad base64", wsmantest.Config{}, func(*testing.T) string { return "Negotiate !!!" }, wsmantest.KrbErrMalformed},
		{"SPNEGO under the Kerberos scheme", wsmantest.Config{}, func(t *testing.T) string {
			return "Kerberos " + strings.TrimPrefix(r.spnegoHeader(t), "Negotiate ")
		}, wsmantest.KrbErrMalformed},
		{"SPNEGO preferring NTLM", wsmantest.Config{}, func(t *testing.T) string {
			return negTokenInit(t, r.newAPReq(t, false).token, ntlmOID, gssapi.OIDKRB5.OID())
		}, wsmantest.KrbErrMech},
		{"SPNEGO without a token", wsmantest.Config{}, func(t *testing.T) string {
			return negTokenInit(t, nil, gssapi.OIDKRB5.OID())
		}, wsmantest.KrbErrMech},
		{"AP-REQ tampered", wsmantest.Config{}, func(t *testing.T) string {
			a := r.newAPReq(t, false)
			a.krb5Tok.APReq.EncryptedAuthenticator.Cipher[20] ^= 1
			b, err := a.krb5Tok.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return "Kerberos " + base64.StdEncoding.EncodeToString(b)
		}, wsmantest.KrbErrAuthenticator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, p := newKrbServer(t, r, tt.cfg, false)
			got := dial(t, s).post(tt.authz(t), "", getW001)
			checkBare401(t, got)
			wantLog := []wsmantest.LogEntry{{Status: 401, AuthError: tt.why}}
			if diff := cmp.Diff(wantLog, s.Log()); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			if len(p.seen()) != 0 {
				t.Errorf("the provider was called as %q", p.seen())
			}
		})
	}

	t.Run("replayed", func(t *testing.T) {
		s, _ := newKrbServer(t, r, wsmantest.Config{}, false)
		h := r.spnegoHeader(t)
		if got := dial(t, s).post(h, "", getW001); got.status != http.StatusOK {
			t.Fatalf("first use: status %d", got.status)
		}
		checkBare401(t, dial(t, s).post(h, "", getW001))
		if e := s.Log()[1]; e.AuthError != wsmantest.KrbErrReplay {
			t.Errorf("AuthError %q, want %q", e.AuthError, wsmantest.KrbErrReplay)
		}
	})

	t.Run("refused on a logged-on connection", func(t *testing.T) {
		// A refused ticket ends the connection's logon: the next request
		// without Authorization is not served as the earlier user.
		s, _ := newKrbServer(t, r, wsmantest.Config{}, false)
		c := dial(t, s)
		if got := c.post(r.spnegoHeader(t), "", getW001); got.status != http.StatusOK {
			t.Fatalf("logon: status %d", got.status)
		}
		checkBare401(t, c.post("Negotiate "+garbage, "", getW001))
		checkBare401(t, c.post("", "", getW001))
	})

	t.Run("Users allows the principal", func(t *testing.T) {
		// Matched on the account name, without regard to case or domain.
		s, p := newKrbServer(t, r, wsmantest.Config{Users: map[string]string{`BITSREMOTE\FleetAdmin`: ""}}, false)
		if got := dial(t, s).post(r.spnegoHeader(t), "", getW001); got.status != http.StatusOK {
			t.Fatalf("status %d, log %+v", got.status, s.Log())
		}
		if diff := cmp.Diff([]string{krbtest.User}, p.seen()); diff != "" {
			t.Errorf("users (-want +got):\n%s", diff)
		}
	})
}

func checkBare401(t *testing.T, got rawReply) {
	t.Helper()
	if got.status != http.StatusUnauthorized || got.body != "" || got.header.Get("Content-Length") != "0" {
		t.Errorf("status %d Content-Length %q body %q, want a bare 401", got.status, got.header.Get("Content-Length"), got.body)
	}
	if diff := cmp.Diff(krbChallenge, got.header.Values("WWW-Authenticate")); diff != "" {
		t.Errorf("challenge (-want +got):\n%s", diff)
	}
}

// TestKerberosMutual: an AP-REQ asking for mutual authentication gets an
// AP-REP that the client's session key decrypts, echoing its
// authenticator's time, framed as the client framed its token.
func TestKerberosMutual(t *testing.T) {
	r := startRealm(t)
	s, _ := newKrbServer(t, r, wsmantest.Config{}, false)
	msKRB5 := gssapi.OIDMSLegacyKRB5.OID()
	tests := []struct {
		name   string
		mutual bool
		header func(a apreq) string
		// wantScheme and wantMech describe the reply: scheme "" for no
		// WWW-Authenticate, mech nil for a raw krb5 token.
		wantScheme string
		wantMech   asn1.ObjectIdentifier
	}{
		{"SPNEGO", true, func(a apreq) string { return negTokenInit(t, a.token, gssapi.OIDKRB5.OID()) }, "Negotiate", gssapi.OIDKRB5.OID()},
		{"SPNEGO Microsoft OID first", true, func(a apreq) string { return negTokenInit(t, a.token, msKRB5, gssapi.OIDKRB5.OID()) }, "Negotiate", msKRB5},
		{"raw krb5 in Negotiate", true, func(a apreq) string { return "Negotiate " + base64.StdEncoding.EncodeToString(a.token) }, "Negotiate", nil},
		{"Kerberos scheme", true, func(a apreq) string { return "Kerberos " + base64.StdEncoding.EncodeToString(a.token) }, "Kerberos", nil},
		{"raw krb5 without mutual", false, func(a apreq) string { return "Negotiate " + base64.StdEncoding.EncodeToString(a.token) }, "", nil},
		{"Kerberos scheme without mutual", false, func(a apreq) string { return "Kerberos " + base64.StdEncoding.EncodeToString(a.token) }, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.newAPReq(t, tt.mutual)
			got := dial(t, s).post(tt.header(a), "", getW001)
			if got.status != http.StatusOK {
				t.Fatalf("status %d", got.status)
			}
			hdr := got.header.Values("WWW-Authenticate")
			if tt.wantScheme == "" {
				if hdr != nil {
					t.Errorf("WWW-Authenticate %q, want none", hdr)
				}
				return
			}
			if len(hdr) != 1 {
				t.Fatalf("WWW-Authenticate %q, want one", hdr)
			}
			scheme, b64, _ := strings.Cut(hdr[0], " ")
			if scheme != tt.wantScheme {
				t.Errorf("scheme %q, want %q", scheme, tt.wantScheme)
			}
			tok, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantMech != nil {
				var st spnego.SPNEGOToken
				if err := st.Unmarshal(tok); err != nil || !st.Resp {
					t.Fatalf("not a NegTokenResp (%v): %x", err, tok)
				}
				if st.NegTokenResp.State() != spnego.NegStateAcceptCompleted || !st.NegTokenResp.SupportedMech.Equal(tt.wantMech) || st.NegTokenResp.MechListMIC != nil {
					t.Errorf("NegTokenResp state %d mech %v MIC %x, want accept-completed, %v, none", st.NegTokenResp.State(), st.NegTokenResp.SupportedMech, st.NegTokenResp.MechListMIC, tt.wantMech)
				}
				tok = st.NegTokenResp.ResponseToken
			}
			checkAPRep(t, tok, a)
		})
	}
}

// checkAPRep decrypts the AP-REP in a GSS krb5 token with the session key
// and compares it with the authenticator it answers.
func checkAPRep(t *testing.T, tok []byte, a apreq) {
	t.Helper()
	var k5 spnego.KRB5Token
	if err := k5.Unmarshal(tok); err != nil || !k5.IsAPRep() {
		t.Fatalf("not a GSS krb5 AP-REP token (%v): %x", err, tok)
	}
	plain, err := crypto.DecryptEncPart(k5.APRep.EncPart, a.key, keyusage.AP_REP_ENCPART)
	if err != nil {
		t.Fatalf("decrypt the AP-REP with the session key: %v", err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	if !part.CTime.Equal(a.auth.CTime.Truncate(time.Second)) || part.Cusec != a.auth.Cusec {
		t.Errorf("AP-REP ctime %v cusec %d, want the authenticator's %v %d", part.CTime, part.Cusec, a.auth.CTime, a.auth.Cusec)
	}
	if part.Subkey.KeyType != a.key.KeyType || len(part.Subkey.KeyValue) != len(a.key.KeyValue) {
		t.Errorf("acceptor subkey type %d length %d, want %d %d", part.Subkey.KeyType, len(part.Subkey.KeyValue), a.key.KeyType, len(a.key.KeyValue))
	}
	if part.SequenceNumber < 0 || part.SequenceNumber > 0x3fffffff {
		t.Errorf("sequence number %d out of range", part.SequenceNumber)
	}
}

// TestKerberosOverHTTP: Kerberos cannot seal here, so with
// RequireEncryption over HTTP it logs on but every body gets what an
// unsealed NTLM body gets; NTLM in Negotiate still goes to NTLM.
func TestKerberosOverHTTP(t *testing.T) {
	r := startRealm(t)
	s, p := newKrbServer(t, r, wsmantest.Config{
		Auth:              wsmantest.AuthKerberos | wsmantest.AuthNTLM | wsmantest.AuthBasic,
		RequireEncryption: true,
		Users:             map[string]string{testUser: testPass, krbtest.User: ""},
	}, true)

	bare := dial(t, s).post("", "", getW001)
	if diff := cmp.Diff([]string{"Negotiate", "Kerberos", `Basic realm="WSMAN"`}, bare.header.Values("WWW-Authenticate")); bare.status != 401 || diff != "" {
		t.Errorf("status %d, challenge (-want +got):\n%s", bare.status, diff)
	}

	c := dial(t, s)
	// Logon with the body: refused as unsealed, as NTLM's would be.
	got := c.post(r.spnegoHeader(t), "", getW001)
	if got.status != http.StatusInternalServerError || got.body != "" {
		t.Errorf("unsealed body with the logon: status %d body %q, want 500 and no body", got.status, got.body)
	}
	// The empty priming POST is fine.
	if got := c.post("", "", ""); got.status != http.StatusOK || got.body != "" {
		t.Errorf("empty POST: status %d body %q", got.status, got.body)
	}
	if got := c.post("", "", getW001); got.status != http.StatusInternalServerError || got.body != "" {
		t.Errorf("unsealed body after the logon: status %d body %q", got.status, got.body)
	}
	// Sealed data on a context that cannot seal: nothing to unseal it with.
	sealed := c.post("", `multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"`, "--Encrypted Boundary\r\n")
	if sealed.status != http.StatusBadRequest || sealed.body != "" {
		t.Errorf("sealed body: status %d body %q, want 400 and no body", sealed.status, sealed.body)
	}
	if len(p.seen()) != 0 {
		t.Errorf("the provider was called as %q", p.seen())
	}
	wantLog := []wsmantest.LogEntry{
		{Status: 401},
		{Status: 500, User: krbtest.User},
		{Status: 500, User: krbtest.User},
		{Status: 400, User: krbtest.User},
	}
	if diff := cmp.Diff(wantLog, s.Log()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}

	// NTLM in the Negotiate scheme still reaches the NTLM layer, sealed.
	in, err := newClient(t, s, "ntlm-enc", testPass, nil).Get(context.Background(), widgetURI, sel("Name", "w001"))
	if err != nil {
		t.Fatalf("sealed NTLM on a Kerberos host: %v", err)
	}
	if got := mustString(t, in, "Caption"); got != "Widget number 1" {
		t.Errorf("Caption %q", got)
	}
	if diff := cmp.Diff([]string{testUser}, p.seen()); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
}

// TestKerberosConfig: New refuses a Kerberos server without a usable
// keytab, naming what is wrong.
func TestKerberosConfig(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.keytab")
	if err := os.WriteFile(junk, []byte("not a keytab"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.keytab")
	if err := os.WriteFile(empty, []byte{5, 2, 0, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.keytab")
	tests := []struct {
		name, keytab, want string
		is                 error
	}{
		{"no keytab", "", "wsmantest: AuthKerberos needs Config.KerberosKeytab, the service's keytab file", nil},
		{"missing", missing, "wsmantest: Kerberos keytab: open " + missing + ": no such file or directory", fs.ErrNotExist},
		{"not a keytab", junk, "wsmantest: Kerberos keytab " + junk + ": ", nil},
		{"no keys", empty, "wsmantest: Kerberos keytab " + empty + " holds no keys", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := wsmantest.New(wsmantest.Config{Auth: wsmantest.AuthKerberos, KerberosKeytab: tt.keytab})
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if strings.HasSuffix(tt.want, ": ") {
				if !strings.HasPrefix(err.Error(), tt.want) {
					t.Errorf("error %q, want it to start with %q", err, tt.want)
				}
			} else if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestKerberosMutualFault: a fault's HTTP 500 goes out without
// WWW-Authenticate, even to a client that asked for mutual
// authentication, as WinRM sends it (requests-kerberos PR #72: "returned
// as a 500 without a WWW-Authenticate header"); a success on the same
// connection, with a new token, carries its AP-REP again.
func TestKerberosMutualFault(t *testing.T) {
	r := startRealm(t)
	s, _ := newKrbServer(t, r, wsmantest.Config{}, false)
	c := dial(t, s)
	a := r.newAPReq(t, true)
	got := c.post(negTokenInit(t, a.token, gssapi.OIDKRB5.OID()), "", fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "boom", ""))
	if got.status != http.StatusInternalServerError || !strings.Contains(got.body, "Fault") {
		t.Fatalf("status %d body %q, want a fault", got.status, got.body)
	}
	if hdr := got.header.Values("WWW-Authenticate"); hdr != nil {
		t.Errorf("fault: WWW-Authenticate %q, want none", hdr)
	}
	b := r.newAPReq(t, true)
	ok := c.post(negTokenInit(t, b.token, gssapi.OIDKRB5.OID()), "", getW001)
	hdr := ok.header.Values("WWW-Authenticate")
	if ok.status != http.StatusOK || len(hdr) != 1 {
		t.Fatalf("status %d WWW-Authenticate %q, want 200 and one", ok.status, hdr)
	}
	tok, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(hdr[0], "Negotiate "))
	if err != nil {
		t.Fatal(err)
	}
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(tok); err != nil || !st.Resp {
		t.Fatalf("not a NegTokenResp (%v): %x", err, tok)
	}
	checkAPRep(t, st.NegTokenResp.ResponseToken, b)
}

// TestKerberosSealed: a default Windows host (HTTP, AllowUnencrypted
// false) served to our Kerberos client, which seals every message with the
// context's keys (transport.NewKerberosEncrypted): the server unseals
// each request, the provider sees the user, faults come back sealed too,
// one logon serves the connection, and NTLM still seals on the same host.
func TestKerberosSealed(t *testing.T) {
	r := startRealm(t)
	s, p := newKrbServer(t, r, wsmantest.Config{
		Auth:              wsmantest.AuthKerberos | wsmantest.AuthNTLM,
		RequireEncryption: true,
		Users:             map[string]string{testUser: testPass, krbtest.User: ""},
	}, true)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	url := "http://localhost:" + port + "/wsman"
	tr, err := transport.New(transport.Config{Auth: transport.AuthKerberos, User: krbtest.User, Password: krbtest.Password, Krb5Conf: r.Krb5Conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	c := wsman.NewClient(url, tr)
	ctx := context.Background()
	for range 3 {
		in, err := c.Get(ctx, widgetURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "w001"}}})
		if err != nil {
			t.Fatalf("Get: %v (log %+v)", err, s.Log())
		}
		if name, _ := in.String("Name"); name != "w001" {
			t.Fatalf("Get returned %q", name)
		}
	}
	_, err = c.Get(ctx, widgetURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "nope"}}})
	var f *wsman.Fault
	if !errors.As(err, &f) || !wsman.IsNotFound(err) {
		t.Fatalf("Get of a missing widget: %v, want the not-found fault (sealed)", err)
	}
	if diff := cmp.Diff([]string{krbtest.User, krbtest.User, krbtest.User, krbtest.User}, p.seen()); diff != "" {
		t.Errorf("users the provider saw (-want +got):\n%s", diff)
	}
	// The log has the messages (the empty logon POST runs no SOAP).
	log := s.Log()
	if len(log) != 4 || log[3].Status != 500 || log[3].Fault != "DestinationUnreachable" {
		t.Fatalf("log %+v, want four messages, the last one faulted", log)
	}
	for i, e := range log {
		if !e.Encrypted || e.User != krbtest.User || e.Action != wsman.ActionGet {
			t.Errorf("message %d: %+v, want sealed Get as %s", i, e, krbtest.User)
		}
	}
	if n := s.KerberosLogons(); n != 1 {
		t.Errorf("KerberosLogons = %d, want 1 (one per connection)", n)
	}

	ntlm, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: testUser, Password: testPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ntlm.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	if _, err := wsman.NewClient(url, ntlm).Get(ctx, widgetURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "w002"}}}); err != nil {
		t.Errorf("NTLM on the same host: %v", err)
	}
}
