package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/internal/pywinrmtest"
	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
	"github.com/bitsremote/bitsremote/wsman/internal/krbap"
	"github.com/bitsremote/bitsremote/wsman/internal/krbseal"
)

// krbServer is a WinRM-like endpoint that accepts Kerberos with gokrb5's
// acceptor and the service keytab, and answers "user=<principal>
// body=<request body>". It records every Authorization header.
type krbServer struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
	users []string
	// reply, when set, makes the WWW-Authenticate value of a successful
	// reply from the mutual authentication token the server would send
	// ("" for no header); by default the token goes as Windows sends it.
	reply func(good string) string
	// status, when set, is the status of a successful reply (a SOAP
	// fault's 500, say) instead of 200.
	status int
	// bodies are the request bodies as they arrived, for tests that prove
	// nothing went in clear.
	bodies [][]byte
	// handshake, when set, answers a request whose AP-REQ was accepted
	// instead of the usual reply; good is the WWW-Authenticate value
	// with the AP-REP. It returns false to let the usual reply go.
	handshake func(w http.ResponseWriter, good string) bool
	// sealedReply, when set, may rewrite the reply to a sealed message:
	// it gets the framed (sealed) reply and writes what goes instead,
	// returning false to let the framed reply go.
	sealedReply func(w http.ResponseWriter, framed []byte) bool
	// wire records every byte the server read, headers included (http
	// only), for tests that prove nothing went in clear.
	wire wireLog
	// conns counts the connections accepted (http only).
	conns atomic.Int32
}

// wireLog records the bytes read from every connection of a listener.
type wireLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *wireLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

// recListener records into log what its connections read.
type recListener struct {
	net.Listener
	log *wireLog
}

func (l recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recConn{c, l.log}, nil
}

type recConn struct {
	net.Conn
	log *wireLog
}

func (c recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.log.mu.Lock()
	c.log.buf.Write(p[:n])
	c.log.mu.Unlock()
	return n, err
}

// krbConnKey keys a connection's Kerberos state in a request's context.
type krbConnKey struct{}

// krbConnState is what one connection of krbServer authenticated: as
// WinRM does over HTTP, a sealed message needs no Authorization on a
// connection whose AP-REQ the server accepted, and is unsealed with that
// context's acceptor session.
type krbConnState struct {
	user string
	sess *krbseal.Session
}

// gokrb5 puts the acceptor's result in the context under this key.
const gokrb5Credentials = "github.com/jcmturner/gokrb5/v8/ctxCredentials"

func newKrbServer(t *testing.T, pki *testPKI, keytabPath string, https bool) *krbServer {
	t.Helper()
	kt := krbtest.ReadKeytab(t, keytabPath)
	ks := &krbServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		authz := r.Header.Get("Authorization")
		ks.mu.Lock()
		ks.auths = append(ks.auths, authz)
		ks.bodies = append(ks.bodies, append([]byte(nil), body...))
		ks.mu.Unlock()
		cs := r.Context().Value(krbConnKey{}).(*krbConnState)
		if authz == "" && cs.sess != nil && encframe.IsEncrypted(r.Header.Get("Content-Type")) {
			plain, _, err := encframe.UnwrapInPlace(body, cs.sess.UnsealInPlace)
			if err != nil {
				t.Logf("unseal: %v", err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			reply := fmt.Appendf(nil, "user=%s body=%s", cs.user, plain)
			var sealErr error
			out := encframe.AppendSealed(nil, encframe.SOAPType, reply, cs.sess.SignatureLen(), func(msg, sig []byte) { sealErr = cs.sess.SealInPlace(msg, sig) })
			if sealErr != nil {
				t.Errorf("seal: %v", sealErr)
			}
			ks.mu.Lock()
			rewrite := ks.sealedReply
			ks.mu.Unlock()
			if rewrite != nil && rewrite(w, out) {
				return
			}
			w.Header().Set("Content-Type", encframe.ContentType)
			_, _ = w.Write(out)
			return
		}
		scheme, b64, _ := strings.Cut(authz, " ")
		tok, err := base64.StdEncoding.DecodeString(b64)
		var st spnego.SPNEGOToken
		if scheme != "Negotiate" || err != nil || st.Unmarshal(tok) != nil {
			w.Header().Set("WWW-Authenticate", "Negotiate")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ok, ctx, status := spnego.SPNEGOService(kt, service.DecodePAC(false)).AcceptSecContext(&st)
		if !ok {
			t.Logf("acceptor: %v", status)
			w.Header().Set("WWW-Authenticate", "Negotiate")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := ctx.Value(gokrb5Credentials).(*credentials.Credentials)
		user := id.UserName() + "@" + id.Domain()
		ks.mu.Lock()
		ks.users = append(ks.users, user)
		reply, code, handshake := ks.reply, ks.status, ks.handshake
		ks.mu.Unlock()
		tok, sess := apRepFor(t, kt, st.NegTokenInit.MechTokenBytes)
		cs.user, cs.sess = user, sess
		good := "Negotiate " + base64.StdEncoding.EncodeToString(tok)
		if handshake != nil && handshake(w, good) {
			return
		}
		if reply != nil {
			good = reply(good)
		}
		if good != "" {
			w.Header().Set("WWW-Authenticate", good)
		}
		if code != 0 {
			w.WriteHeader(code)
		}
		fmt.Fprintf(w, "user=%s body=%s", user, body)
	})
	connState := func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, krbConnKey{}, &krbConnState{})
	}
	if https {
		ks.Server = newTLSServerWith(t, pki, h, tls.NoClientCert, connState)
	} else {
		ks.Server = httptest.NewUnstartedServer(h)
		ks.Listener = recListener{ks.Listener, &ks.wire}
		ks.Config.ConnContext = connState
		ks.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				ks.conns.Add(1)
			}
		}
		ks.Start()
		t.Cleanup(ks.Close)
	}
	return ks
}

// apRepFor is the SPNEGO NegTokenResp (accept-completed) with the
// AP-REP that answers the AP-REQ in mechToken, as Windows sends it to a
// client asking for mutual authentication, and the acceptor's sealing
// session of that context.
func apRepFor(t *testing.T, kt *keytab.Keytab, mechToken []byte) ([]byte, *krbseal.Session) {
	var k5 spnego.KRB5Token
	if err := k5.Unmarshal(mechToken); err != nil {
		t.Fatal(err)
	}
	apreq := k5.APReq
	if err := apreq.Ticket.DecryptEncPart(kt, nil); err != nil {
		t.Fatal(err)
	}
	if err := apreq.DecryptAuthenticator(apreq.Ticket.DecryptedEncPart.Key); err != nil {
		t.Fatal(err)
	}
	tok, rep, err := krbap.Token(&apreq)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := krbseal.NewAcceptor(apreq.Ticket.DecryptedEncPart.Key, apreq.Authenticator, rep)
	if err != nil {
		t.Fatal(err)
	}
	resp := spnego.SPNEGOToken{Resp: true, NegTokenResp: spnego.NegTokenResp{SupportedMech: gssapi.OIDKRB5.OID(), ResponseToken: tok}}
	b, err := resp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b, sess
}

func (ks *krbServer) seen() (auths, users []string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return append([]string(nil), ks.auths...), append([]string(nil), ks.users...)
}

// localURL is the server's URL with localhost for 127.0.0.1, so that the
// SPN is HTTP/localhost.
func localURL(ks *krbServer) string {
	return strings.Replace(ks.URL, "127.0.0.1", "localhost", 1) + "/wsman"
}

// kdcRequests counts the AS and TGS requests the KDC has logged. A
// password login is two AS requests: one refused for lack of
// pre-authentication (NEEDED_PREAUTH), then the one answered.
func kdcRequests(t *testing.T, r *krbtest.Realm) (as, tgs int) {
	t.Helper()
	b, err := os.ReadFile(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "AS_REQ"), strings.Count(string(b), "TGS_REQ")
}

func krbConfig(r *krbtest.Realm, pki *testPKI) Config {
	return Config{Auth: AuthKerberos, User: krbtest.User, Password: krbtest.Password, Krb5Conf: r.Krb5Conf, CAFile: pki.CAFile}
}

// getThree sends three requests through tr to krbServer's url and checks
// each reply: 200, the body echoed for krbtest.User, sealed or not.
func getThree(t *testing.T, tr Transport, url string, sealed bool) {
	t.Helper()
	for i := range 3 {
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: url, Body: fmt.Appendf(nil, "<get%d/>", i)})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := fmt.Sprintf("user=%s@%s body=<get%d/>", krbtest.User, krbtest.RealmName, i)
		if resp.StatusCode != 200 || string(resp.Body) != want || resp.Encrypted != sealed {
			t.Fatalf("request %d: HTTP %d %q encrypted=%v, want 200 %q encrypted=%v", i, resp.StatusCode, resp.Body, resp.Encrypted, want, sealed)
		}
	}
}

func TestKerberosPassword(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	as0, tgs0 := kdcRequests(t, r)

	tr, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	getThree(t, tr, localURL(ks), false)
	auths, _ := ks.seen()
	if len(auths) != 3 || auths[0] == auths[1] || auths[1] == auths[2] {
		t.Errorf("Authorization headers %d, want 3 distinct tokens (a new authenticator per request)", len(auths))
	}
	for _, a := range auths {
		if !strings.HasPrefix(a, "Negotiate ") {
			t.Errorf("Authorization %.20q..., want Negotiate", a)
		}
	}
	// A second transport with the same credentials (another host of a
	// fleet) logs in no more: one TGT, one service ticket for the SPN.
	tr2, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr2)
	if _, err := tr2.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")}); err != nil {
		t.Fatal(err)
	}
	as, tgs := kdcRequests(t, r)
	if as-as0 != 2 || tgs-tgs0 != 1 {
		t.Errorf("KDC saw %d AS and %d TGS requests for 4 requests with one password, want 2 (one login) and 1", as-as0, tgs-tgs0)
	}
}

func TestKerberosTicketCache(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	cc := r.Kinit(t, krbtest.User, krbtest.Password)

	for _, tc := range []struct {
		name   string
		user   string
		ccache string
		env    string
	}{
		{name: "KrbCCache", ccache: cc},
		{name: "FILE: prefix", ccache: "FILE:" + cc},
		{name: "KRB5CCNAME", env: "FILE:" + cc},
		{name: "user matches the cache", user: krbtest.User + "@" + strings.ToLower(r.Name), ccache: cc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("KRB5CCNAME", tc.env)
			}
			tr, err := New(Config{Auth: AuthKerberos, User: tc.user, Krb5Conf: r.Krb5Conf, KrbCCache: tc.ccache, CAFile: pki.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
			if err != nil {
				t.Fatal(err)
			}
			if want := "user=" + krbtest.User + "@" + r.Name + " body=<x/>"; string(resp.Body) != want {
				t.Errorf("got %q, want %q", resp.Body, want)
			}
		})
	}

	t.Run("another user's cache", func(t *testing.T) {
		tr, err := New(Config{Auth: AuthKerberos, User: "someoneelse", Krb5Conf: r.Krb5Conf, KrbCCache: cc, CAFile: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		_, err = tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
		want := fmt.Sprintf("kerberos login (ticket cache %s): the ticket cache %s holds %s@%s, not the user asked for", cc, cc, krbtest.User, r.Name)
		if err == nil || err.Error() != want || !errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("got %v, want %q (ErrAuthentication, ErrNotSent)", err, want)
		}
	})
}

// TestKerberosRefused: what the KDC refuses fails before anything is
// sent, as an authentication error, without the password; a refused
// password is not tried again by another transport (account lockout).
func TestKerberosRefused(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	const wrong = "Wr0ng-Passw0rd!"

	cfg := krbConfig(r, pki)
	cfg.Password = wrong
	as0, _ := kdcRequests(t, r)
	for i := range 2 {
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		_, err = tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
		if err == nil || !errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("transport %d: got %v, want ErrAuthentication and ErrNotSent", i, err)
		}
		// The KDC refused, not the host, which was not reached.
		if !strings.Contains(err.Error(), "KDC_ERR_PREAUTH_FAILED") || !strings.HasPrefix(err.Error(), "kerberos login ("+krbtest.User+"@"+r.Name+" with a password): the KDC refused the credentials: ") ||
			strings.Contains(err.Error(), ErrAuthentication.Error()) {
			t.Errorf("error %q does not say who was refused, by whom and why", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error contains the password: %q", err)
		}
	}
	if as, _ := kdcRequests(t, r); as-as0 > 2 {
		t.Errorf("KDC saw %d AS requests for one wrong password used by two transports, want one login", as-as0)
	}

	t.Run("unknown SPN", func(t *testing.T) {
		tr, err := New(krbConfig(r, pki))
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		// By address, the SPN is HTTP/127.0.0.1, which the realm lacks.
		_, err = tr.RoundTrip(context.Background(), &Request{URL: ks.URL + "/wsman", Body: []byte("<x/>")})
		if err == nil || !errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) ||
			!strings.HasPrefix(err.Error(), "kerberos service ticket for HTTP/127.0.0.1 (host "+strings.TrimPrefix(ks.URL, "https://")+"): the KDC does not know the service principal HTTP/127.0.0.1 (use the host's DNS name") ||
			strings.Contains(err.Error(), ErrAuthentication.Error()) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("SPN set", func(t *testing.T) {
		cfg := krbConfig(r, pki)
		cfg.SPN = "HTTP/localhost"
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		// The URL is by address; the configured SPN is used.
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: ks.URL + "/wsman", Body: []byte("<x/>")})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v %v", resp, err)
		}
	})
	if auths, _ := ks.seen(); len(auths) != 1 {
		t.Errorf("the server saw %d requests, want only the SPN-set one", len(auths))
	}
}

// TestKerberosHTTP: over http://, Auto seals (one empty-body POST carries
// the AP-REQ, then every message goes sealed without Authorization on
// that connection, and no body is ever in clear), Always seals over
// https:// too, and Never sends a token with each plain request.
func TestKerberosHTTP(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	kt := r.AddService(t, "HTTP/localhost")
	for _, tc := range []struct {
		name  string
		enc   Encryption
		https bool
		seal  bool
	}{
		{"auto over http", EncryptionAuto, false, true},
		{"always over https", EncryptionAlways, true, true},
		{"never over http", EncryptionNever, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKrbServer(t, pki, kt, tc.https)
			cfg := krbConfig(r, pki)
			cfg.Encryption = tc.enc
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			getThree(t, tr, localURL(ks), tc.seal)
			auths, _ := ks.seen()
			ks.mu.Lock()
			bodies := ks.bodies
			ks.mu.Unlock()
			if !tc.seal {
				if len(auths) != 3 || auths[0] == "" || auths[2] == "" {
					t.Errorf("never: %d requests, want 3 each with a token", len(auths))
				}
				return
			}
			if len(auths) != 4 || auths[0] == "" || len(bodies[0]) != 0 {
				t.Fatalf("%d requests, want the handshake (empty, with a token) and 3 messages", len(auths))
			}
			for i, b := range bodies[1:] {
				if auths[i+1] != "" || bytes.Contains(b, []byte("<get")) || !bytes.HasPrefix(b, []byte("--Encrypted Boundary\r\n")) {
					t.Errorf("message %d went with Authorization %q or not sealed: %q", i, auths[i+1], b)
				}
			}
		})
	}
}

func TestKerberosConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"DOMAIN\\user", Config{User: `CORP\admin`, Password: "p"}, `kerberos auth: user "CORP\\admin": give a Kerberos principal, user or user@REALM, not DOMAIN\user (a NetBIOS domain is not always the realm)`},
		{"empty realm", Config{User: "admin@", Password: "p"}, `kerberos auth: user "admin@": want user or user@REALM`},
		{"password without user", Config{Password: "p"}, "kerberos auth: a user name is required with a password"},
		{"keyring cache", Config{KrbCCache: "KEYRING:persistent:0"}, `kerberos auth: ticket cache "KEYRING:persistent:0": only FILE: caches can be read (run kinit -c FILE:/path and set KRB5CCNAME to it, or give a password)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Auth = AuthKerberos
			_, err := New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("no cache", func(t *testing.T) {
		r := krbtest.Start(t)
		pki := newTestPKI(t)
		missing := t.TempDir() + "/none"
		tr, err := New(Config{Auth: AuthKerberos, Krb5Conf: r.Krb5Conf, KrbCCache: missing, CAFile: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://localhost:1/wsman", Body: []byte("<x/>")})
		// No credentials at all: an authentication failure (exit 3),
		// not a failed job.
		want := "kerberos login (ticket cache " + missing + "): no password was given and the ticket cache " + missing + " cannot be read (run kinit first): open " + missing + ": no such file or directory"
		if err == nil || err.Error() != want || !errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("got %v, want %q (ErrAuthentication, ErrNotSent)", err, want)
		}
	})
	t.Run("cache without a TGT", func(t *testing.T) {
		r := krbtest.Start(t)
		pki := newTestPKI(t)
		// A cache holding a service ticket and no TGT (kinit -S):
		// gokrb5 needs the TGT.
		r.AddService(t, "HTTP/localhost")
		only := t.TempDir() + "/only-service"
		kinit(t, r, only, "-S", "HTTP/localhost")
		tr, err := New(Config{Auth: AuthKerberos, Krb5Conf: r.Krb5Conf, KrbCCache: only, CAFile: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://localhost:1/wsman", Body: []byte("<x/>")})
		want := "kerberos login (ticket cache " + only + "): ticket cache " + only + ": TGT not found in CCache"
		if err == nil || err.Error() != want || !errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("got %v, want %q (ErrAuthentication, ErrNotSent)", err, want)
		}
	})
}

// TestKerberosMITAcceptor hands the transport's tokens to MIT's GSSAPI
// acceptor (python3-gssapi, libgssapi-krb5), independent of gokrb5:
// Windows must accept what we send, and MIT is the other widely deployed
// Kerberos.
func TestKerberosMITAcceptor(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	kt := r.AddService(t, "HTTP/localhost")
	check := exec.Command(pywinrmtest.Python, "-c", "import gssapi")
	if out, err := check.CombinedOutput(); err != nil {
		if os.Getenv(pywinrmtest.RequireEnv) == "1" {
			t.Fatalf("python3-gssapi: %v: %s", err, out)
		}
		t.Skipf("python3-gssapi: %v", err)
	}
	// A server that records the token and refuses it: the token is then
	// checked by MIT below.
	var token string
	srv := newTLSServer(t, pki, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token = strings.TrimPrefix(req.Header.Get("Authorization"), "Negotiate ")
		w.Header().Set("WWW-Authenticate", "Negotiate")
		w.WriteHeader(http.StatusUnauthorized)
	}), tls.NoClientCert)
	tr, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/wsman"
	if resp, err := tr.RoundTrip(context.Background(), &Request{URL: url, Body: []byte("<x/>")}); err != nil || resp.StatusCode != 401 {
		t.Fatalf("got %v %v", resp, err)
	}
	const accept = `
import base64, sys, gssapi
ctx = gssapi.SecurityContext(usage="accept")
out = ctx.step(base64.b64decode(sys.stdin.read()))
F = gssapi.RequirementFlag
print(ctx.complete, ctx.initiator_name, ctx.target_name, ctx.mech, *[f.name for f in (F.mutual_authentication, F.replay_detection, F.out_of_sequence_detection, F.confidentiality, F.integrity) if f in ctx.actual_flags])
print(base64.b64encode(out or b"").decode())
`
	cmd := exec.Command(pywinrmtest.Python, "-c", accept)
	cmd.Env = append(r.Env(), "KRB5_KTNAME=FILE:"+kt)
	cmd.Stdin = strings.NewReader(token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("MIT refused the token: %v: %s", err, out)
	}
	// SPNEGO negotiated the Kerberos 5 mechanism (1.2.840.113554.1.2.2).
	accepted, reply, _ := strings.Cut(string(out), "\n")
	// With the flags SSPI and pyspnego ask for: mutual authentication,
	// replay and sequence detection, confidentiality, integrity.
	want := fmt.Sprintf("True %s@%s HTTP/localhost@%s <OID 1.2.840.113554.1.2.2> mutual_authentication replay_detection out_of_sequence_detection confidentiality integrity", krbtest.User, r.Name, r.Name)
	if accepted != want {
		t.Errorf("MIT accepted %q, want %q", accepted, want)
	}
	// We asked for mutual authentication, so MIT answered with an AP-REP
	// (in a NegTokenResp, as Windows does). The check the transport made
	// of it is the one a reply from this acceptor would pass; replay it
	// here, where the request's token state is at hand.
	reply = strings.TrimSpace(reply)
	if reply == "" {
		t.Fatal("MIT sent no mutual authentication token")
	}
	cl, err := kerberosLogin(mustCreds(t, krbConfig(r, pki)))
	if err != nil {
		t.Fatal(err)
	}
	tkt, key, err := cl.GetServiceTicket("HTTP/localhost")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := newAPReqToken(cl, tkt, key)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(pywinrmtest.Python, "-c", accept)
	cmd.Env = append(r.Env(), "KRB5_KTNAME=FILE:"+kt)
	cmd.Stdin = strings.NewReader(base64.StdEncoding.EncodeToString(tok.spnego))
	if out, err = cmd.CombinedOutput(); err != nil {
		t.Fatalf("MIT refused the token: %v: %s", err, out)
	}
	_, reply, _ = strings.Cut(string(out), "\n")
	resp := &Response{StatusCode: 200, Header: http.Header{"Www-Authenticate": {"Negotiate " + strings.TrimSpace(reply)}}}
	if _, err := tok.checkReply(resp); err != nil {
		t.Errorf("MIT's AP-REP fails our check: %v", err)
	}
	// And an AP-REP MIT made for another request does not pass.
	other, err := newAPReqToken(cl, tkt, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.checkReply(resp); err == nil || !strings.Contains(err.Error(), "AP-REP answers an authenticator of") {
		t.Errorf("another request's AP-REP: %v", err)
	}
}

func mustCreds(t *testing.T, cfg Config) kerberosCreds {
	t.Helper()
	c, err := kerberosCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKerberosKDCUnreachable: no KDC answering is a connection failure,
// not a refusal of the credentials, and is not remembered: the next
// request tries again.
func TestKerberosKDCUnreachable(t *testing.T) {
	pki := newTestPKI(t)
	conf := t.TempDir() + "/krb5.conf"
	if err := os.WriteFile(conf, []byte("[libdefaults]\n default_realm = NOWHERE.TEST\n udp_preference_limit = 1\n[realms]\n NOWHERE.TEST = {\n  kdc = 127.0.0.1:1\n }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := New(Config{Auth: AuthKerberos, User: "u", Password: "p", Krb5Conf: conf, CAFile: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://localhost:1/wsman", Body: []byte("<x/>")})
		if err == nil || !errors.Is(err, ErrKDCUnreachable) || errors.Is(err, ErrAuthentication) || !errors.Is(err, ErrNotSent) ||
			!strings.HasPrefix(err.Error(), "kerberos login (u@NOWHERE.TEST with a password): no KDC of the realm could be reached: ") {
			t.Fatalf("attempt %d: got %v, want ErrKDCUnreachable", i, err)
		}
	}
	loginMu.Lock()
	n := len(logins)
	_, kept := logins[kerberosCreds{conf: conf, user: "u", realm: "NOWHERE.TEST", password: "p"}.key()]
	loginMu.Unlock()
	if kept {
		t.Errorf("the failed login is cached (%d entries)", n)
	}
}

// fakeKDC answers every AS-REQ on a TCP port of loopback with what
// answer makes of it, until t ends, and returns a krb5.conf naming it the
// KDC of realm.
func fakeKDC(t *testing.T, realm string, answer func(messages.ASReq) ([]byte, error)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var n uint32
			if binary.Read(c, binary.BigEndian, &n) == nil && n < 1<<16 {
				req := make([]byte, n)
				if _, err := io.ReadFull(c, req); err == nil {
					var asreq messages.ASReq
					_ = asreq.Unmarshal(req)
					if b, err := answer(asreq); err == nil {
						_ = binary.Write(c, binary.BigEndian, uint32(len(b)))
						_, _ = c.Write(b)
					}
				}
			}
			c.Close()
		}
	}()
	conf := t.TempDir() + "/krb5.conf"
	if err := os.WriteFile(conf, fmt.Appendf(nil, "[libdefaults]\n default_realm = %s\n udp_preference_limit = 1\n[realms]\n %s = {\n  kdc = %s\n }\n", realm, realm, ln.Addr()), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestKerberosMalformedKDCReply: a KDC (or whatever answers on its port)
// replying with an AS-REP whose encrypted part is shorter than its
// checksum makes gokrb5 v8.4.4 panic (jcmturner/gokrb5#580); the login
// must fail with an error instead, and fail again the next time rather
// than leave a half-made client behind.
func TestKerberosMalformedKDCReply(t *testing.T) {
	conf := fakeKDC(t, "EVIL.TEST", func(asreq messages.ASReq) ([]byte, error) {
		rep := messages.ASRep{KDCRepFields: messages.KDCRepFields{
			PVNO: 5, MsgType: 11, CRealm: asreq.ReqBody.Realm, CName: asreq.ReqBody.CName,
			Ticket: messages.Ticket{TktVNO: 5, Realm: asreq.ReqBody.Realm, SName: asreq.ReqBody.SName,
				EncPart: types.EncryptedData{EType: 18, KVNO: 1, Cipher: []byte{1, 2, 3}}},
			EncPart: types.EncryptedData{EType: 18, Cipher: []byte{1, 2, 3}},
		}}
		return rep.Marshal()
	})
	tr, err := New(Config{Auth: AuthKerberos, User: "u", Password: "p", Krb5Conf: conf})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://localhost:1/wsman", Body: []byte("<x/>")})
		if err == nil || !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), "kerberos library failed on a malformed message") {
			t.Fatalf("attempt %d: got %v", i, err)
		}
	}
}

// TestKerberosMutualAuthentication: the host must prove it holds the
// SPN's key with an AP-REP answering this request's authenticator; a
// reply without one, with garbage, or with the AP-REP of an earlier
// request (a replayed reply) fails the request as an authentication
// error after it was sent, whatever TLS said.
func TestKerberosMutualAuthentication(t *testing.T) {
	ks, tr, earlier, host := mutualSetup(t)
	prefix := "reply from " + host + " (HTTP 200): the host did not prove it is HTTP/localhost (Kerberos mutual authentication): "
	for _, tc := range []struct {
		name  string
		reply func(good string) string
		want  string
	}{
		{"no token", func(string) string { return "" }, "0 Kerberos tokens in WWW-Authenticate, want the one with its AP-REP"},
		{"bare challenge", func(string) string { return "Negotiate" }, "0 Kerberos tokens in WWW-Authenticate, want the one with its AP-REP"},
		{"not base64", func(string) string { return "Negotiate %%%" }, "mutual authentication token: illegal base64 data at input byte 0"},
		{"an earlier request's AP-REP", func(string) string { return earlier }, "AP-REP answers an authenticator of "},
		{"rejected", func(string) string { return "Negotiate oQcwBaADCgEC" }, "SPNEGO state 2, want accept-completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks.mu.Lock()
			ks.reply = tc.reply
			ks.mu.Unlock()
			_, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
			if err == nil || !strings.HasPrefix(err.Error(), prefix+tc.want) || !errors.Is(err, ErrAuthentication) || errors.Is(err, ErrNotSent) {
				t.Fatalf("got %v, want %q (ErrAuthentication, sent)", err, prefix+tc.want)
			}
		})
	}
}

// mutualSetup starts an HTTPS host and a Kerberos transport that has made
// one request, and returns the mutual authentication token the host sent
// for it (a test may send it again) and the host's name in errors.
func mutualSetup(t *testing.T) (ks *krbServer, tr Transport, earlier, host string) {
	t.Helper()
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks = newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	tr, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	ks.reply = func(good string) string { earlier = good; return good }
	if _, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")}); err != nil {
		t.Fatal(err)
	}
	ks.reply = nil
	return ks, tr, earlier, strings.TrimSuffix(strings.TrimPrefix(localURL(ks), "https://"), "/wsman")
}

// TestKerberosErrorReplyWithoutToken: Windows sends some error replies
// without the mutual authentication token (a SOAP fault's HTTP 500, such
// as the w:TimedOut of an operation that ran out of time: requests-kerberos
// PR #72 was made for it; HTTP.sys's 400 for a header too long; 503). They
// go up as the host's answer for package wsman to classify (a fault, a
// retry), as pywinrm takes them, not as a host that failed to prove
// itself. An error reply that does carry a token must still prove the host,
// and a success without one is refused.
func TestKerberosErrorReplyWithoutToken(t *testing.T) {
	ks, tr, earlier, host := mutualSetup(t)
	prefix := "reply from " + host + " (HTTP %d): the host did not prove it is HTTP/localhost (Kerberos mutual authentication): "
	for _, tc := range []struct {
		name   string
		status int
		reply  func(good string) string
		want   string // "" for the reply to go up
	}{
		{"fault without a token", 500, func(string) string { return "" }, ""},
		{"bare 400 without a token", 400, func(string) string { return "" }, ""},
		{"503 without a token", 503, func(string) string { return "" }, ""},
		{"fault with its token", 500, func(good string) string { return good }, ""},
		{"fault with another request's token", 500, func(string) string { return earlier }, "AP-REP answers an authenticator of "},
		{"fault with garbage", 500, func(string) string { return "Negotiate %%%" }, "mutual authentication token: illegal base64 data at input byte 0"},
		{"success without a token", 200, func(string) string { return "" }, "0 Kerberos tokens in WWW-Authenticate, want the one with its AP-REP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks.mu.Lock()
			ks.reply, ks.status = tc.reply, tc.status
			ks.mu.Unlock()
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
			if tc.want != "" {
				want := fmt.Sprintf(prefix, tc.status) + tc.want
				if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrAuthentication) {
					t.Fatalf("got %v, want %q (ErrAuthentication)", err, want)
				}
				return
			}
			wantBody := "user=" + krbtest.User + "@" + krbtest.RealmName + " body=<x/>"
			if err != nil || resp.StatusCode != tc.status || string(resp.Body) != wantBody {
				t.Fatalf("got %v %v, want HTTP %d %q", resp, err, tc.status, wantBody)
			}
		})
	}
}

// kinit runs MIT's kinit for krbtest.User into the cache file cc with
// extra options (a lifetime, say), as an admin, k5start or sssd does.
func kinit(t *testing.T, r *krbtest.Realm, cc string, args ...string) {
	t.Helper()
	cmd := exec.Command(krbtest.Tools["kinit"], append(args, krbtest.User+"@"+r.Name)...)
	cmd.Env = append(r.Env(), "KRB5CCNAME=FILE:"+cc)
	cmd.Stdin = strings.NewReader(krbtest.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinit %v: %v: %s", args, err, out)
	}
}

// TestKerberosTicketCacheRefreshed: gokrb5 reads a ticket cache once and
// cannot renew its TGT, so when the TGT has expired the transport reads
// the cache again, which kinit, k5start or sssd may have refreshed since
// (MIT's library reads it for every context, so pywinrm goes on); a
// cache nobody refreshed says to run kinit.
func TestKerberosTicketCacheRefreshed(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	for _, tc := range []struct {
		name string
		// then changes the cache once the first request is made.
		then func(t *testing.T, cc string)
		// want is the error once the TGT expired, "" for success.
		want func(cc string, end time.Time) string
	}{
		{"refreshed", func(t *testing.T, cc string) { kinit(t, r, cc) }, nil},
		{"not refreshed", func(*testing.T, string) {}, func(cc string, end time.Time) string {
			return fmt.Sprintf("kerberos login (ticket cache %s): the ticket-granting ticket in %s expired at %s: run kinit again", cc, cc, end.Local().Format(time.RFC3339))
		}},
		// kinit rewrites a FILE cache in place: a reader can find it
		// empty, which makes gokrb5 v8.4.4 panic (index out of range).
		{"caught being rewritten", func(t *testing.T, cc string) {
			if err := os.WriteFile(cc, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(cc string, _ time.Time) string {
			return fmt.Sprintf("kerberos login (ticket cache %s): %v (runtime error: index out of range [0] with length 0)", cc, errMalformed)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := t.TempDir() + "/ccache"
			kinit(t, r, cc, "-l", "3s")
			tgt, err := credentials.LoadCCache(cc)
			if err != nil {
				t.Fatal(err)
			}
			var end time.Time
			for _, c := range tgt.GetEntries() {
				end = c.EndTime
			}
			tr, err := New(Config{Auth: AuthKerberos, Krb5Conf: r.Krb5Conf, KrbCCache: cc, CAFile: pki.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			if _, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")}); err != nil {
				t.Fatal(err)
			}
			tc.then(t, cc)
			// Kerberos times are whole seconds.
			time.Sleep(time.Until(end.Add(1100 * time.Millisecond)))
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<y/>")})
			if tc.want == nil {
				if want := "user=" + krbtest.User + "@" + r.Name + " body=<y/>"; err != nil || string(resp.Body) != want {
					t.Fatalf("after the TGT expired: %v %v, want %q", resp, err, want)
				}
				return
			}
			if want := tc.want(cc, end); err == nil || err.Error() != want || !errors.Is(err, ErrNotSent) {
				t.Fatalf("got %v, want %q (ErrNotSent)", err, want)
			}
		})
	}
}

// fakeSRV answers DNS SRV queries for name with localhost and the port of
// hostport (an address on loopback), and every
// other query with NXDOMAIN, for the rest of t: net.DefaultResolver,
// which gokrb5 looks KDCs up with, asks it instead of the system's
// servers.
func fakeSRV(t *testing.T, name, hostport string) {
	t.Helper()
	_, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	// Go takes no address for a target, as DNS wants a name.
	const host = "localhost"
	var port uint16
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError}
			match := q.Type == dnsmessage.TypeSRV && strings.EqualFold(q.Name.String(), name)
			if match {
				rh.RCode = dnsmessage.RCodeSuccess
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if match {
				_ = b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
					dnsmessage.SRVResource{Priority: 0, Weight: 100, Port: port, Target: dnsmessage.MustNewName(host + ".")})
			}
			if out, err := b.Finish(); err == nil {
				_, _ = pc.WriteTo(out, addr)
			}
		}
	}()
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	t.Cleanup(func() {
		net.DefaultResolver = old
		pc.Close()
		<-done
	})
}

// TestKerberosKDCFromDNS: a krb5.conf that names the realm but no KDC, as
// realmd writes one for an Active Directory domain, finds the KDC in DNS
// (_kerberos._tcp SRV records, which domain controllers publish), as
// MIT's library does unless dns_lookup_kdc says not to; gokrb5 on its own
// does not look.
func TestKerberosKDCFromDNS(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	fakeSRV(t, "_kerberos._tcp."+r.Name+".", r.KDC)
	for _, tc := range []struct {
		name, libdefaults string
		want              string // "" for success
	}{
		{"MIT's default", "", ""},
		{"dns_lookup_kdc = true", " dns_lookup_kdc = true\n", ""},
		{"dns_fallback = true", " dns_fallback = true\n", ""},
		{"dns_fallback = false", " dns_fallback = false\n", "client krb5 config does not have any defined KDCs for the default realm"},
		{"dns_lookup_kdc says yes, dns_fallback no", " dns_lookup_kdc = yes\n dns_fallback = false\n", ""},
		{"dns_lookup_kdc = false", " dns_lookup_kdc = false\n", "client krb5 config does not have any defined KDCs for the default realm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := t.TempDir() + "/krb5.conf"
			text := fmt.Sprintf("[libdefaults]\n default_realm = %s\n udp_preference_limit = 1\n%s\n[realms]\n %s = {\n }\n", r.Name, tc.libdefaults, r.Name)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			tr, err := New(Config{Auth: AuthKerberos, User: krbtest.User, Password: krbtest.Password, Krb5Conf: conf, CAFile: pki.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
				return
			}
			if want := "user=" + krbtest.User + "@" + r.Name + " body=<x/>"; err != nil || string(resp.Body) != want {
				t.Fatalf("got %v %v, want %q", resp, err, want)
			}
		})
	}
}

// TestKerberosKDCErrors: what the KDC answers a login with decides the
// exit code: a refusal of the account or of this machine's clock is an
// authentication failure (exit 3) that says what to mend; a KDC that
// cannot serve now is one not reached (exit 4), tried again by the next
// request.
func TestKerberosKDCErrors(t *testing.T) {
	for _, tc := range []struct {
		code        int32
		auth, unrch bool
		want        string
	}{
		{errorcode.KRB_AP_ERR_SKEW, true, false, "kerberos login (u@ERR.TEST with a password): this machine's clock differs from the KDC's by more than Kerberos allows (5 minutes by default): set it right: "},
		{errorcode.KDC_ERR_KEY_EXPIRED, true, false, "kerberos login (u@ERR.TEST with a password): the KDC refused the credentials: "},
		{errorcode.KDC_ERR_CLIENT_REVOKED, true, false, "kerberos login (u@ERR.TEST with a password): the KDC refused the credentials: "},
		{errorcode.KDC_ERR_SVC_UNAVAILABLE, false, true, "kerberos login (u@ERR.TEST with a password): no KDC of the realm could be reached: "},
	} {
		name := errorcode.Lookup(tc.code)
		t.Run(strings.Fields(name)[1], func(t *testing.T) {
			conf := fakeKDC(t, "ERR.TEST", func(asreq messages.ASReq) ([]byte, error) {
				e := messages.NewKRBError(asreq.ReqBody.SName, asreq.ReqBody.Realm, tc.code, "")
				return e.Marshal()
			})
			tr, err := New(Config{Auth: AuthKerberos, User: "u", Password: "p", Krb5Conf: conf})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.RoundTrip(context.Background(), &Request{URL: "https://localhost:1/wsman", Body: []byte("<x/>")})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), name) ||
				errors.Is(err, ErrAuthentication) != tc.auth || errors.Is(err, ErrKDCUnreachable) != tc.unrch || !errors.Is(err, ErrNotSent) {
				t.Fatalf("got %v, want %q... with %q (ErrAuthentication %v, ErrKDCUnreachable %v)", err, tc.want, name, tc.auth, tc.unrch)
			}
		})
	}
}

// TestKerberosSPN: the service principal is HTTP/ and the host's name as
// the URL gives it, in lower case and without the trailing dot of a fully
// qualified name (MIT's krb5_sname_to_principal drops it too); never the
// port. The tokens made for each URL are taken to the server by its
// address, as "localhost." does not resolve everywhere.
func TestKerberosSPN(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ks.URL, "https://"))
	k := &kerberosTransport{creds: mustCreds(t, krbConfig(r, pki))}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.CAPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, host := range []string{"localhost", "LocalHost", "localhost."} {
		t.Run(host, func(t *testing.T) {
			ep, err := newEndpoint("https://" + net.JoinHostPort(host, port) + "/wsman")
			if err != nil {
				t.Fatal(err)
			}
			authz, check, err := k.authorize(ep)
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPost, ks.URL+"/wsman", strings.NewReader("<x/>"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", authz)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "user=" + krbtest.User + "@" + r.Name + " body=<x/>"; err != nil || resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("HTTP %d %q %v, want 200 %q", resp.StatusCode, body, err, want)
			}
			if err := check(&Response{StatusCode: resp.StatusCode, Header: resp.Header}); err != nil {
				t.Errorf("mutual authentication: %v", err)
			}
		})
	}
}

// TestKerberosDefaultCCacheName: without KrbCCache or $KRB5CCNAME the
// ticket cache is krb5.conf's default_ccache_name, as kinit and klist
// take it (%{uid} expanded), then /tmp/krb5cc_<uid>; a default that is
// not a file (Fedora's and RHEL's KEYRING:, sssd's KCM:) is refused
// saying where it came from and what to do.
func TestKerberosDefaultCCacheName(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), true)
	base, err := os.ReadFile(r.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRB5CCNAME", "")
	withDefault := func(t *testing.T, name string) string {
		conf := t.TempDir() + "/krb5.conf"
		text := strings.Replace(string(base), "[libdefaults]\n", "[libdefaults]\n default_ccache_name = "+name+"\n", 1)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return conf
	}
	t.Run("FILE with the uid", func(t *testing.T) {
		dir := t.TempDir()
		conf := withDefault(t, "FILE:"+dir+"/cc_%{uid}")
		kinit(t, r, fmt.Sprintf("%s/cc_%d", dir, os.Getuid()))
		tr, err := New(Config{Auth: AuthKerberos, Krb5Conf: conf, CAFile: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<x/>")})
		if want := "user=" + krbtest.User + "@" + r.Name + " body=<x/>"; err != nil || string(resp.Body) != want {
			t.Fatalf("got %v %v, want %q", resp, err, want)
		}
	})
	t.Run("KEYRING", func(t *testing.T) {
		conf := withDefault(t, "KEYRING:persistent:%{uid}")
		_, err := New(Config{Auth: AuthKerberos, Krb5Conf: conf, CAFile: pki.CAFile})
		want := fmt.Sprintf(`kerberos auth: ticket cache "KEYRING:persistent:%d" (default_ccache_name in %s): only FILE: caches can be read (run kinit -c FILE:/path and set KRB5CCNAME to it, or give a password)`, os.Getuid(), conf)
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
}

// TestKerberosConcurrent: the transports of a fleet's hosts share one
// login and make their tokens at once: every request is accepted (no two
// authenticators alike, which the acceptors' replay caches would refuse),
// the KDC sees one login, and -race sees the shared client used safely.
func TestKerberosConcurrent(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	spns := []string{"HTTP/host1.bitsremote.test", "HTTP/host2.bitsremote.test"}
	var servers []*krbServer
	for _, spn := range spns {
		servers = append(servers, newKrbServer(t, pki, r.AddService(t, spn), true))
	}
	as0, _ := kdcRequests(t, r)
	const perHost, each = 4, 3
	errs := make(chan error, len(spns)*perHost*each)
	var wg sync.WaitGroup
	for i, ks := range servers {
		cfg := krbConfig(r, pki)
		cfg.SPN = spns[i]
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, tr)
		for g := range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range each {
					body := fmt.Sprintf("<r%d-%d/>", g, n)
					resp, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte(body)})
					if err != nil {
						errs <- err
						continue
					}
					if want := "user=" + krbtest.User + "@" + r.Name + " body=" + body; string(resp.Body) != want {
						errs <- fmt.Errorf("got %q, want %q", resp.Body, want)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, ks := range servers {
		if _, users := ks.seen(); len(users) != perHost*each {
			t.Errorf("%s accepted %d requests, want %d", spns[i], len(users), perHost*each)
		}
	}
	if as, _ := kdcRequests(t, r); as-as0 != 2 {
		t.Errorf("KDC saw %d AS requests, want 2 (one login)", as-as0)
	}
}
