package wsmantest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
	"github.com/bitsremote/bitsremote/wsman/internal/krbap"
	"github.com/bitsremote/bitsremote/wsman/internal/krbseal"
)

// Why a Kerberos authentication was refused, as LogEntry.AuthError reports
// it. The client only ever sees a bare 401, as from Windows.
const (
	KrbErrMalformed     = "kerberos: not a Kerberos token"
	KrbErrMech          = "kerberos: SPNEGO offers no Kerberos token"
	KrbErrNoKey         = "kerberos: ticket not for a key in the keytab"
	KrbErrTicketTime    = "kerberos: ticket expired or not yet valid"
	KrbErrAuthenticator = "kerberos: authenticator rejected"
	KrbErrSkew          = "kerberos: clock skew too great"
	KrbErrReplay        = "kerberos: replayed authenticator"
	KrbErrPrincipal     = "kerberos: principal not allowed"
)

// krbMaxSkew is the Kerberos clock tolerance, Windows' default "Maximum
// tolerance for computer clock synchronization" (5 minutes). Replay
// records are kept as long.
const krbMaxSkew = 5 * time.Minute

// krbAcceptor verifies AP-REQs against the service keytab, as the host's
// Kerberos SSP does with the computer account's keys: any service
// principal in the keytab (HTTP/host, WSMAN/host...) is the host's.
type krbAcceptor struct {
	kt *keytab.Keytab
	// users, when non-empty, are the account names (lower case, without
	// a DOMAIN\ prefix) that may log in.
	users map[string]bool

	mu   sync.Mutex
	seen map[string]time.Time // replay cache: authenticator -> when to forget it
}

// loadKeytab reads the service keytab for New.
func loadKeytab(path string) (*keytab.Keytab, error) {
	if path == "" {
		return nil, errors.New("wsmantest: AuthKerberos needs Config.KerberosKeytab, the service's keytab file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsmantest: Kerberos keytab: %w", err)
	}
	kt := keytab.New()
	if err := kt.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("wsmantest: Kerberos keytab %s: %w", path, err)
	}
	if len(kt.Entries) == 0 {
		return nil, fmt.Errorf("wsmantest: Kerberos keytab %s holds no keys", path)
	}
	return kt, nil
}

func newKrbAcceptor(kt *keytab.Keytab, users map[string]string) *krbAcceptor {
	a := &krbAcceptor{kt: kt, seen: map[string]time.Time{}}
	if len(users) > 0 {
		a.users = map[string]bool{}
		for k := range users {
			if i := strings.LastIndexByte(k, '\\'); i >= 0 {
				k = k[i+1:]
			}
			a.users[strings.ToLower(k)] = true
		}
	}
	return a
}

// krbToken is a client's first (and only) Kerberos token, unwrapped.
type krbToken struct {
	apreq messages.APReq
	// spnego is the mechanism the client's NegTokenInit chose (krb5 or
	// Microsoft's legacy krb5 OID), nil for a raw GSS krb5 token.
	spnego asn1.ObjectIdentifier
}

// parseKrbToken unwraps the token of an Authorization header with scheme
// Negotiate (an SPNEGO NegTokenInit carrying a krb5 AP-REQ, or that
// AP-REQ's GSS token alone, as MIT GSSAPI through pykerberos sends it) or
// Kerberos (the GSS token alone). It returns one of the KrbErr reasons.
func parseKrbToken(scheme string, b []byte) (*krbToken, string) {
	if len(b) == 0 {
		return nil, KrbErrMalformed
	}
	tok := &krbToken{}
	mech := b
	if strings.EqualFold(scheme, "Negotiate") {
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(b); err == nil {
			if !st.Init || len(st.NegTokenInit.MechTypes) == 0 {
				return nil, KrbErrMech
			}
			// Only the client's preferred mechanism may carry the
			// optimistic token; a NegTokenInit that prefers NTLM or
			// NEGOEX would need another round, which this server does
			// not offer.
			m := st.NegTokenInit.MechTypes[0]
			if !m.Equal(gssapi.OIDKRB5.OID()) && !m.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
				return nil, KrbErrMech
			}
			if len(st.NegTokenInit.MechTokenBytes) == 0 {
				return nil, KrbErrMech
			}
			tok.spnego = m
			mech = st.NegTokenInit.MechTokenBytes
		}
	}
	var k5 spnego.KRB5Token
	if err := k5.Unmarshal(mech); err != nil || !k5.IsAPReq() {
		return nil, KrbErrMalformed
	}
	tok.apreq = k5.APReq
	return tok, ""
}

// krbLogon is an accepted AP-REQ.
type krbLogon struct {
	// user is the client principal's name without its realm.
	user string
	// reply is the WWW-Authenticate value for the successful reply, ""
	// when there is nothing to send.
	reply string
	// sess seals the connection's messages (MS-WSMV HTTP message
	// encryption with Kerberos): the context's acceptor side, from the
	// AP-REP's subkey and sequence number; nil without mutual
	// authentication, when there is no AP-REP.
	sess *krbseal.Session
}

// accept verifies the token of one Authorization header and returns the
// logon, or one of the KrbErr reasons.
func (a *krbAcceptor) accept(scheme, b64, remoteAddr string) (*krbLogon, string) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, KrbErrMalformed
	}
	tok, why := parseKrbToken(scheme, b)
	if tok == nil {
		return nil, why
	}
	apreq := &tok.apreq
	var addr types.HostAddress
	if h, err := types.GetHostAddress(remoteAddr); err == nil {
		addr = h
	}
	// Ticket (with the keytab), then authenticator (with the ticket's
	// session key), ticket times and clock skew, as the Kerberos SSP
	// checks an AP-REQ. The PAC is not read: gokrb5 insists on a
	// KERB_VALIDATION_INFO that only Active Directory puts there (MIT's
	// KDC issues a minimal PAC), and group membership plays no part here.
	if why := verifyAPReq(apreq, a.kt, addr); why != "" {
		return nil, why
	}
	if a.replayed(apreq) {
		return nil, KrbErrReplay
	}
	user := apreq.Authenticator.CName.PrincipalNameString()
	if a.users != nil && !a.users[strings.ToLower(user)] {
		return nil, KrbErrPrincipal
	}
	logon := &krbLogon{user: user}
	var resp []byte // the GSS krb5 AP-REP token, when mutual authentication is asked for
	if types.IsFlagSet(&apreq.APOptions, flags.APOptionMutualRequired) {
		var rep messages.EncAPRepPart
		if resp, rep, err = krbap.Token(apreq); err != nil {
			// Only a failing random source can get here.
			return nil, KrbErrAuthenticator
		}
		if logon.sess, err = krbseal.NewAcceptor(apreq.Ticket.DecryptedEncPart.Key, apreq.Authenticator, rep); err != nil {
			// A context whose keys krbseal cannot use (not AES) still
			// authenticates; its sealed messages get 400.
			logon.sess = nil
		}
	}
	switch {
	case tok.spnego != nil:
		// RFC 4178 §4.2.2: the final NegTokenResp says accept-completed
		// and names the mechanism chosen; it carries the AP-REP when
		// the client asked for mutual authentication.
		nt := spnego.NegTokenResp{NegState: asn1.Enumerated(spnego.NegStateAcceptCompleted), SupportedMech: tok.spnego, ResponseToken: resp}
		out, err := nt.Marshal()
		if err != nil {
			return nil, KrbErrAuthenticator
		}
		logon.reply = "Negotiate " + base64.StdEncoding.EncodeToString(out)
	case resp != nil:
		// A raw krb5 initiator (MIT's krb5 mechanism, as pykerberos
		// drives it) can only read a raw krb5 reply: a NegTokenResp is
		// GSS_S_DEFECTIVE_TOKEN to it, and requests-kerberos requires
		// the reply, so Windows must answer in kind for pywinrm's
		// Kerberos to work against it, which it does.
		name := "Negotiate"
		if strings.EqualFold(scheme, "Kerberos") {
			name = "Kerberos"
		}
		logon.reply = name + " " + base64.StdEncoding.EncodeToString(resp)
	}
	return logon, ""
}

// verifyAPReq runs gokrb5's AP-REQ checks and returns why they failed, ""
// when they pass. gokrb5 v8.4.4 panics on a ciphertext shorter than its
// checksum (crypto/rfc3962 and rfc8009 slice it off unchecked; open PR
// jcmturner/gokrb5#580), which anyone can send in a ticket or
// authenticator: that is a malformed token, not a crash.
func verifyAPReq(apreq *messages.APReq, kt *keytab.Keytab, addr types.HostAddress) (why string) {
	defer func() {
		if recover() != nil {
			why = KrbErrMalformed
		}
	}()
	if ok, err := apreq.Verify(kt, krbMaxSkew, addr, nil); err != nil || !ok {
		return verifyReason(err)
	}
	return ""
}

// verifyReason names why gokrb5's AP-REQ verification failed.
func verifyReason(err error) string {
	var ke messages.KRBError
	if !errors.As(err, &ke) {
		// The ticket's encrypted part did not decrypt: no key in the
		// keytab for its service principal, enctype or kvno.
		return KrbErrNoKey
	}
	switch ke.ErrorCode {
	case errorcode.KRB_AP_ERR_TKT_EXPIRED, errorcode.KRB_AP_ERR_TKT_NYV:
		return KrbErrTicketTime
	case errorcode.KRB_AP_ERR_SKEW:
		return KrbErrSkew
	}
	return KrbErrAuthenticator
}

// replayed records the authenticator and reports whether it was seen
// before, as RFC 4120 §3.2.3 asks of a server: an AP-REQ is accepted once.
// gokrb5's own cache is a process-wide singleton with a goroutine that
// never ends; this one is the server's and pruned as it grows.
func (a *krbAcceptor) replayed(apreq *messages.APReq) bool {
	au := &apreq.Authenticator
	key := fmt.Sprintf("%s@%s %s %d.%06d", au.CName.PrincipalNameString(), au.CRealm,
		apreq.Ticket.SName.PrincipalNameString(), au.CTime.Unix(), au.Cusec)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, until := range a.seen {
		if now.After(until) {
			delete(a.seen, k)
		}
	}
	if _, ok := a.seen[key]; ok {
		return true
	}
	// Past ctime + skew the clock-skew check refuses it anyway.
	a.seen[key] = au.CTime.Add(krbMaxSkew + time.Second)
	return false
}

// isKerberosAuthz reports whether an Authorization header is for the
// Kerberos acceptor: scheme Kerberos, or Negotiate with anything but an
// NTLM message (which the NTLM layer takes).
func isKerberosAuthz(authz string) (scheme, token string, ok bool) {
	scheme, token, _ = strings.Cut(authz, " ")
	token = strings.TrimSpace(token)
	switch {
	case strings.EqualFold(scheme, "Kerberos"):
		return scheme, token, true
	case strings.EqualFold(scheme, "Negotiate"):
		// base64 of "NTLMSSP\x00"
		return scheme, token, !strings.HasPrefix(token, "TlRMTVNTUA")
	}
	return "", "", false
}

type krbConnKey struct{}

// krbConn is the Kerberos state of one TCP connection.
//
// HTTP.sys keeps a Kerberos logon for the connection it was made on, so
// later requests on it need no Authorization: that is our understanding,
// from MS-WSMV's message encryption (wsman-wire.md §4.2: after the
// handshake, sealed requests carry no Authorization and are unsealed with
// the connection's context, Kerberos as NTLM) and from HTTP.sys's
// HTTP_AUTH_EX_FLAG_ENABLE_KERBEROS_CREDENTIAL_CACHING ("Kerberos
// authentication credentials are persisted per connection and re-used for
// subsequent anonymous requests on the same connection").
type krbConn struct {
	mu sync.Mutex
	// user is who the connection's last Kerberos logon was for; "" when
	// it has none.
	user string
	// failed is set when the connection's last Kerberos attempt was
	// refused: it is then unauthenticated, whatever came before.
	failed bool
	// sess seals the connection's messages, from its last logon.
	sess *krbseal.Session
}

func (c *krbConn) state() (user string, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user, c.failed
}

func (c *krbConn) set(user string, failed bool) { c.setLogon(user, failed, nil) }

func (c *krbConn) setLogon(user string, failed bool, sess *krbseal.Session) {
	c.mu.Lock()
	c.user, c.failed, c.sess = user, failed, sess
	c.mu.Unlock()
}

func (c *krbConn) session() *krbseal.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (s *Server) krbConnContext(ctx context.Context) context.Context {
	if s.krb == nil {
		return ctx
	}
	return context.WithValue(ctx, krbConnKey{}, &krbConn{})
}

// krbConnOf returns the connection's Kerberos state, nil when Kerberos is
// not offered.
func (s *Server) krbConnOf(r *http.Request) *krbConn {
	kc, _ := r.Context().Value(krbConnKey{}).(*krbConn)
	return kc
}

// serveKerberos authenticates a request carrying a Kerberos token and, if
// that succeeds, serves it.
func (s *Server) serveKerberos(w *bufWriter, r *http.Request, kc *krbConn, scheme, token string) {
	rec := r.Context().Value(recordKey{}).(*record)
	logon, why := s.krb.accept(scheme, token, r.RemoteAddr)
	if logon == nil {
		// Windows answers a ticket it refuses (bad, expired, replayed,
		// for another service, for a user without access) with a bare
		// 401 and the usual challenge.
		kc.set("", true)
		rec.entry.AuthError = why
		s.challenge(w)
		return
	}
	kc.setLogon(logon.user, false, logon.sess)
	s.krbLogons.Add(1)
	s.serveKerberosSOAP(w, r, logon.user)
	// WinRM sends its final token with a success only: a fault's 500
	// goes out without WWW-Authenticate, even to a client that asked for
	// mutual authentication (requests-kerberos PR #72, made for WinRM's
	// w:TimedOut). The reply is buffered, so the header can wait for the
	// status.
	if logon.reply != "" && w.status < http.StatusBadRequest {
		w.Header().Set("WWW-Authenticate", logon.reply)
	}
}

// serveKerberosSOAP serves a request on a Kerberos-authenticated
// connection: a sealed one (multipart/encrypted, with the context's keys,
// as a default Windows host requires over HTTP) is unsealed, served and
// its reply sealed, as ntlmauth.Middleware does for NTLM.
func (s *Server) serveKerberosSOAP(w http.ResponseWriter, r *http.Request, user string) {
	rec := r.Context().Value(recordKey{}).(*record)
	rec.entry.User = user
	if encframe.IsEncrypted(r.Header.Get("Content-Type")) {
		s.serveKerberosSealed(w, r)
		return
	}
	limit := int64(s.cfg.MaxEnvelopeSizeKB) * 1024
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return
	}
	if s.cfg.RequireEncryption && r.TLS == nil && len(body) > 0 {
		// AllowUnencrypted=false and an unsealed body over HTTP: HTTP
		// 500, empty body, as ntlmauth.Middleware answers for NTLM
		// (pywinrm #129 was this very case with Kerberos).
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Del("Authorization")
	s.serveSOAP(w, r2)
}

// serveKerberosSealed unseals a request with the connection's Kerberos
// context, serves it and seals the reply, faults included.
func (s *Server) serveKerberosSealed(w http.ResponseWriter, r *http.Request) {
	rec := r.Context().Value(recordKey{}).(*record)
	kc := s.krbConnOf(r)
	sess := kc.session()
	if sess == nil {
		// As ntlmauth.Middleware answers sealed data on a connection
		// whose context has no confidentiality: nothing to unseal it
		// with, 400 and an empty body.
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// The framing adds a few hundred bytes to the envelope's limit.
	limit := int64(s.cfg.MaxEnvelopeSizeKB)*1024 + 1024
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return
	}
	if int64(len(body)) > limit {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	plain, ctype, err := encframe.UnwrapInPlace(body, sess.UnsealInPlace)
	if err != nil {
		// As for NTLM (ntlmauth.Middleware): a forged, replayed or
		// garbled sealed message gets 400, an empty body and the end of
		// the connection, whose sealed stream can no longer be trusted;
		// the client authenticates a new one.
		kc.set("", true)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(plain))
	r2.ContentLength = int64(len(plain))
	r2.Header.Set("Content-Type", ctype)
	r2.Header.Del("Authorization")
	inner := &bufWriter{h: http.Header{}}
	s.serveSOAP(inner, r2)
	rec.entry.Encrypted = true
	for k, v := range inner.h {
		w.Header()[k] = v
	}
	status := inner.status
	if status == 0 {
		status = http.StatusOK
	}
	if inner.buf.Len() == 0 {
		w.WriteHeader(status)
		return
	}
	otype := inner.h.Get("Content-Type")
	if otype == "" {
		otype = encframe.SOAPType
	}
	var sealErr error
	framed := encframe.AppendSealed(nil, otype, inner.buf.Bytes(), sess.SignatureLen(), func(msg, sig []byte) { sealErr = sess.SealInPlace(msg, sig) })
	if sealErr != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", encframe.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(framed)))
	w.WriteHeader(status)
	_, _ = w.Write(framed)
}

// KerberosLogons counts the Kerberos AP-REQs the server accepted, so
// tests can check that a client authenticates once per connection.
func (s *Server) KerberosLogons() int { return int(s.krbLogons.Load()) }
