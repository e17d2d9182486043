package transport

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bodgit/ntlmssp"

	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
	"github.com/bitsremote/bitsremote/wsman/internal/ntlmauth"
)

// ErrAuthentication is returned when authentication fails: the host
// refuses the credentials (HTTP 401), the KDC refuses them, or a Kerberos
// host does not prove it holds the SPN's key. The sealed transports fail
// so only in their handshake, when nothing but empty bodies was sent; a
// transport that authenticates each request (Basic, plain NTLM, Kerberos
// over https) may have sent the body, and a reply that fails Kerberos
// mutual authentication came from a host that may have acted on it.
var ErrAuthentication = errors.New("the host rejected the credentials")

// ErrUnsealedReply is returned when a reply to a sealed request comes back
// unencrypted or fails its signature check: its content cannot be trusted.
var ErrUnsealedReply = errors.New("reply to a sealed request is not correctly sealed")

// maxAttempts bounds the handshakes of one RoundTrip and the attempts at
// authenticating one connection: a host (or a middlebox) that closes every
// connection between the legs must not hold a caller forever.
const maxAttempts = 3

// ntlmSignatureLen is the size of an NTLM message signature (MS-NLMP
// 2.2.2.9.1).
const ntlmSignatureLen = 16

// NewNTLMEncrypted returns a Transport that authenticates with NTLMv2 and
// seals every message with the NTLM session (MS-WSMV 2.2.9.1 HTTP message
// encryption), which is what a default Windows host (AllowUnencrypted=false)
// requires over http://. bodgit/ntlmssp's client builds the handshake;
// the messages are sealed in place by ntlmauth.ClientSession, derived
// from the same AUTHENTICATE (bodgit keeps its session key to itself),
// with our own framing. bodgit's http helper and masterzen/winrm's
// Encryption are avoided for their bugs (go-deps.md §1.6, §5).
//
// One handshake runs per connection (an empty-body POST carrying NEGOTIATE
// and then AUTHENTICATE); later messages go sealed, without Authorization,
// on that connection. The RC4 streams and sequence numbers of a session are
// shared by every message, so the transport keeps one connection per host,
// holds it itself, and lets one request at a time through.
//
// When the connection goes away (the host closes it, an idle timeout), a
// handshake that loses it between legs starts over from NEGOTIATE on a
// new connection; a message that could not go out authenticates a new
// connection and goes then, whatever its Idempotent flag (at most
// maxAttempts times).
//
// A 401 to a sealed message (the host forgot the session) drops the
// session, runs the handshake again and retries once (a 401 means the host
// did not act on the message); so does a kept-alive connection found dead
// before any reply, but only for an Idempotent request (see deadConnError).
//
// A body is never sent unsealed by accident: a failed handshake or a wrong
// password returns an error (ErrAuthentication, ErrEncryptionRequired) and
// nothing else is sent. Encryption=Auto seals over http:// and sends plain
// bodies on the authenticated connection over https:// (TLS protects them);
// Always seals over https:// too; Never authenticates and never seals.
func NewNTLMEncrypted(cfg Config) (Transport, error) {
	if cfg.User == "" {
		return nil, errors.New("ntlm encrypted: a user name is required")
	}
	t, err := newSealedTransport(cfg)
	if err != nil {
		return nil, fmt.Errorf("ntlm encrypted: %w", err)
	}
	t.user, t.password = cfg.User, cfg.Password
	if d, u, ok := strings.Cut(cfg.User, `\`); ok {
		t.domain, t.user = d, u
	}
	return t, nil
}

// newSealedTransport is the part of a sealed transport every mechanism
// shares; the caller adds the mechanism's credentials.
func newSealedTransport(cfg Config) (*sealedTransport, error) {
	d, err := cfg.newDialer()
	if err != nil {
		return nil, err
	}
	t := &sealedTransport{
		d:           d,
		anon:        newConnPool(d, Config{MaxIdleConnsPerHost: 1}),
		limit:       cfg.maxResponseBytes(),
		respTimeout: cfg.ResponseTimeout,
		mode:        cfg.Encryption,
		serial:      make(chan struct{}, 1),
	}
	t.sealFn = func(msg, sig []byte) { t.sealErr = t.sess.SealInPlace(msg, sig) }
	t.unsealFn = func(msg, sig []byte) error { return t.sess.UnsealInPlace(msg, sig) }
	return t, nil
}

// sealedTransport is MS-WSMV HTTP message encryption over one
// connection-bound security context per host: NTLM (ntlmHandshake) or
// Kerberos (kerberosHandshake). The handshake authenticates a connection
// and yields its sealer; everything else (the one connection, the order
// of the sealed stream, the retries, the framing) is the same for both.
type sealedTransport struct {
	// krb, when set, makes the handshake Kerberos's; else it is NTLM's.
	krb       *kerberosTransport
	endpoints endpointCache
	d         *dialer
	// anon carries Anonymous requests on connections of their own, so they
	// never ride on (or disturb) the authenticated one.
	anon                   *connPool
	limit                  int64
	respTimeout            time.Duration
	user, domain, password string
	mode                   Encryption

	// serial is a context-aware mutex: it guards the fields below and
	// keeps the sealed stream in order.
	serial chan struct{}
	// conn is the authenticated connection (nil: none), to endpoint key;
	// sess is its security session, nil when none was negotiated
	// (possible only when not sealing).
	conn *hconn
	key  string
	sess sealer
	// sealBuf is reused to frame sealed requests (one at a time).
	sealBuf []byte
	// sealFn seals with sess for encframe, leaving its error in sealErr:
	// made once, so that sealing a message allocates no closure.
	sealFn   func(msg, sig []byte)
	sealErr  error
	unsealFn func(msg, sig []byte) error

	// testHookBetweenLegs, when set, runs after the CHALLENGE is read and
	// before the AUTHENTICATE is sent on h.
	testHookBetweenLegs func(h *hconn)
}

// RoundTrip sends req.Body, sealed when the mode and scheme call for it, and
// returns the reply (unsealed) whatever its status.
func (t *sealedTransport) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	var buf [4]header
	ep, hdrs, err := t.endpoints.prepare(req, buf[:0])
	if err != nil {
		return nil, err
	}
	if req.Anonymous {
		return t.anon.exchange(ctx, ep, hdrs, ContentTypeSOAP, req.Body, t.limit, t.respTimeout)
	}
	seal := t.mode == EncryptionAlways || (t.mode == EncryptionAuto && !ep.https)

	if !take(ctx, t.serial) {
		return nil, &notSentError{fmt.Errorf("post to %s: waiting for the connection: %w", ep.hostHeader, ctx.Err())}
	}
	defer func() { <-t.serial }()

	// retried is spent by the retry that may follow a 401 to a message
	// the host saw: once. A message that never left costs only an
	// attempt; so does an Idempotent one lost with a dead connection.
	retried := false
	for attempt := 1; ; attempt++ {
		if t.conn != nil && (t.key != ep.key || !t.conn.reusable(idleTimeout)) {
			// Found closed (or idle too long) before anything was written.
			t.reset()
		}
		if t.conn == nil {
			if err := t.authenticate(ctx, ep, hdrs, seal); err != nil {
				t.reset()
				// Only empty-body handshake legs went out.
				return nil, &notSentError{err}
			}
		}
		resp, err := t.send(ctx, ep, hdrs, req, seal)
		if err != nil {
			// The peer may or may not have consumed a sequence number; the
			// session can no longer be trusted to be in step.
			t.reset()
			if attempt < maxAttempts && ctx.Err() == nil && errors.Is(err, ErrNotSent) {
				// Nothing of the message was written: it may go on a new
				// connection whatever it is.
				continue
			}
			// An Idempotent message may be sent again after every dead
			// connection, within maxAttempts: a host that closes kept-alive
			// connections right after a handshake reply can cost two in
			// one call, and repeating it is harmless by definition.
			var dead *deadConnError
			if attempt < maxAttempts && req.Idempotent && errors.As(err, &dead) {
				continue
			}
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && !resp.Encrypted {
			t.reset()
			if !retried && attempt < maxAttempts {
				retried = true
				continue
			}
			return nil, fmt.Errorf("post to %s: HTTP 401 right after a successful handshake: %w", ep.hostHeader, ErrAuthentication)
		}
		return resp, nil
	}
}

// Confidential reports whether bodies to endpoint are sealed or go over
// TLS.
func (t *sealedTransport) Confidential(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	https := strings.EqualFold(u.Scheme, "https")
	return https || t.mode == EncryptionAlways || t.mode == EncryptionAuto
}

// reset forgets the session and closes its connection, so the next
// request starts over with a new connection and a new handshake.
func (t *sealedTransport) reset() {
	if t.conn != nil {
		t.conn.close()
	}
	t.conn, t.key, t.sess = nil, "", nil
}

// CloseIdleConnections closes kept-alive connections, ending the NTLM or
// Kerberos session; the next request authenticates again.
func (t *sealedTransport) CloseIdleConnections() {
	select {
	case t.serial <- struct{}{}:
		t.reset()
		<-t.serial
	default:
		// A request is in flight on the connection; it stays.
	}
	t.anon.closeIdle()
}

// authenticate runs the handshake, starting over from NEGOTIATE on a new
// connection when the one carrying it is lost between legs (at most
// maxAttempts times): the host's NTLM state is bound to that connection,
// so an AUTHENTICATE on another could only get a 401.
func (t *sealedTransport) authenticate(ctx context.Context, ep endpoint, hdrs []header, seal bool) error {
	var err error
	for range maxAttempts {
		t.reset()
		err = t.handshake(ctx, ep, hdrs, seal)
		var lost *connLostError
		if err == nil || !errors.As(err, &lost) || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("%w (the connection was lost during each of %d handshakes)", err, maxAttempts)
}

// connLostError is a handshake leg that could not stay on the connection
// that carried the NEGOTIATE: it was closed between legs (or found closed
// when the leg was written on it), before any reply.
type connLostError struct{ err error }

func (e *connLostError) Error() string { return e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }

// handshake authenticates a new connection with empty-body POSTs and on
// success sets conn, key and sess. (A method, not a func field: hdrs
// would escape through an indirect call, costing an allocation per
// message.)
func (t *sealedTransport) handshake(ctx context.Context, ep endpoint, hdrs []header, seal bool) error {
	if t.krb != nil {
		return t.kerberosHandshake(ctx, ep, hdrs, seal)
	}
	return t.ntlmHandshake(ctx, ep, hdrs, seal)
}

// ntlmHandshake authenticates a new connection with empty-body POSTs (so
// that no body needs replaying): NEGOTIATE, CHALLENGE, AUTHENTICATE, then
// 2xx. On success the connection and its session are t's.
func (t *sealedTransport) ntlmHandshake(ctx context.Context, ep endpoint, hdrs []header, seal bool) error {
	host := ep.hostHeader
	nc, err := ntlmssp.NewClient(
		ntlmssp.SetUserInfo(t.user, t.password),
		ntlmssp.SetDomain(t.domain),
		ntlmssp.SetVersion(ntlmssp.DefaultVersion()),
	)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: %w", host, err)
	}
	negotiate, err := nc.Authenticate(nil, nil)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: build NEGOTIATE: %w", host, err)
	}
	h, err := t.d.connect(ctx, ep)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: %w", host, ctxErr(ctx, err))
	}
	ok := false
	defer func() {
		if !ok {
			h.close()
		}
	}()
	resp, err := t.leg(ctx, h, ep, hdrs, negotiate)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: NEGOTIATE: %w", host, err)
	}
	challenge, err := challengeToken(resp)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: %w", host, err)
	}
	authenticate, err := nc.Authenticate(challenge, nil)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: process CHALLENGE: %w", host, err)
	}
	if t.testHookBetweenLegs != nil {
		t.testHookBetweenLegs(h)
	}
	resp, err = t.leg(ctx, h, ep, hdrs, authenticate)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: AUTHENTICATE: %w", host, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("ntlm handshake with %s as %q: HTTP 401: %w", host, t.user, ErrAuthentication)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("ntlm handshake with %s: AUTHENTICATE answered with HTTP %d, want 2xx", host, resp.StatusCode)
	}
	if seal && (nc.SecuritySession() == nil || !sealing128(authenticate)) {
		// A sign-only session would not encrypt, and a host offering 40-
		// or 56-bit keys is not one to trust with a password-bearing BITS
		// job.
		return fmt.Errorf("ntlm handshake with %s: the host did not agree to 128-bit sealing: %w", host, ErrEncryptionRequired)
	}
	// bodgit keeps its session key to itself; the same session, derived
	// from our AUTHENTICATE, seals in place (ntlmauth.ClientSession).
	sess, err := ntlmauth.ClientSession(authenticate, t.password)
	if err != nil && seal {
		return fmt.Errorf("ntlm handshake with %s: derive the sealing session: %w: %w", host, ErrEncryptionRequired, err)
	}
	// A Connection: close on the 200 leaves h broken; the first message
	// then finds no connection and authenticates a new one.
	ok = true
	t.conn, t.key, t.sess = h, ep.key, nil
	if sess != nil {
		t.sess = ntlmSealer{sess}
	}
	return nil
}

// sealer is a security context's per-message protection, as the
// multipart/encrypted framing carries it: a signature (header) of
// SignatureLen bytes and the message sealed where it lies.
type sealer interface {
	SealInPlace(msg, sig []byte) error
	UnsealInPlace(msg, sig []byte) error
	SignatureLen() int
}

// ntlmSealer is an NTLM session as a sealer.
type ntlmSealer struct{ *ntlmauth.Session }

func (s ntlmSealer) SealInPlace(msg, sig []byte) error { s.Session.SealInPlace(msg, sig); return nil }
func (s ntlmSealer) SignatureLen() int                 { return ntlmSignatureLen }

// sealing128 reports whether an AUTHENTICATE message (whose flags are the
// negotiated ones) carries NTLMSSP_NEGOTIATE_SEAL and _128.
func sealing128(authenticate []byte) bool {
	const seal, bits128 = 0x00000020, 0x20000000
	if len(authenticate) < 64 {
		return false
	}
	f := binary.LittleEndian.Uint32(authenticate[60:])
	return f&seal != 0 && f&bits128 != 0
}

// leg posts one handshake message with an empty body on h, the
// connection that carries the whole handshake.
func (t *sealedTransport) leg(ctx context.Context, h *hconn, ep endpoint, hdrs []header, token []byte) (*Response, error) {
	leg := append(hdrs[:len(hdrs):len(hdrs)], header{"Authorization", "Negotiate " + base64.StdEncoding.EncodeToString(token)})
	resp, err := h.roundTrip(ctx, ep, leg, ContentTypeSOAP, nil, max401Body, t.respTimeout)
	if err != nil {
		var xe *exchangeError
		// Lost between legs: the connection carried the NEGOTIATE and
		// was closed before this leg got an answer. A new connection
		// dropped at once is the host refusing, not a loss to ride out.
		if ctx.Err() == nil && errors.As(err, &xe) && xe.reused && !xe.answered && (!xe.written || connDead(err)) {
			return nil, &connLostError{err}
		}
		return nil, err
	}
	return resp, nil
}

// challengeToken takes the NTLM CHALLENGE from a 401's WWW-Authenticate.
func challengeToken(resp *Response) ([]byte, error) {
	if resp.StatusCode != http.StatusUnauthorized {
		return nil, fmt.Errorf("NEGOTIATE answered with HTTP %d, want 401 with a challenge", resp.StatusCode)
	}
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(scheme, "Negotiate") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok))
		if err != nil {
			return nil, fmt.Errorf("challenge is not base64: %w", err)
		}
		return b, nil
	}
	return nil, errors.New("401 to NEGOTIATE carries no Negotiate challenge (does the host offer Negotiate auth?)")
}

// send posts one message on the authenticated connection and unseals the
// reply.
func (t *sealedTransport) send(ctx context.Context, ep endpoint, hdrs []header, req *Request, seal bool) (*Response, error) {
	host := ep.hostHeader
	body, ctype := req.Body, ContentTypeSOAP
	if seal {
		t.sealErr = nil
		body = encframe.AppendSealed(t.sealBuf[:0], encframe.SOAPType, req.Body, t.sess.SignatureLen(), t.sealFn)
		if t.sealErr != nil {
			return nil, &notSentError{fmt.Errorf("post to %s: seal the message: %w", host, t.sealErr)}
		}
		if cap(body) <= 256<<10 {
			t.sealBuf = body
		}
		ctype = encframe.ContentType
	}
	// The connection is authenticated; credentials must not ride along.
	resp, err := t.conn.roundTrip(ctx, ep, hdrs, ctype, body, t.limit, t.respTimeout)
	if err != nil {
		var xe *exchangeError
		errors.As(err, &xe)
		err = exchangeFailed(ctx, host, err)
		if xe.written && xe.reused && !xe.answered && ctx.Err() == nil && connDead(err) {
			return nil, &deadConnError{err}
		}
		return nil, err
	}
	if !encframe.IsEncrypted(resp.ContentType) {
		if !seal || resp.StatusCode == http.StatusUnauthorized {
			return resp, nil
		}
		// The host did not take our sealed message (Windows answers one it
		// cannot use with a bare status, such as 500 or 400), so its
		// sequence numbers may no longer match ours: start over next time.
		t.reset()
		if len(resp.Body) != 0 && resp.StatusCode < 300 {
			// Content that should have been sealed and is not cannot be
			// trusted, whatever it says.
			return nil, fmt.Errorf("reply from %s: HTTP %d with Content-Type %q: %w", host, resp.StatusCode, resp.ContentType, ErrUnsealedReply)
		}
		// The status is never sealed, even on sealed replies. A failure
		// status with a plain body is HTTP.sys or a proxy speaking (a 503
		// page, a 502 page), not WinRM: the body is dropped, as nothing in
		// it can be trusted, and the bare status (with its headers, such
		// as Retry-After) goes up so that package wsman can classify it
		// like any other.
		if len(resp.Body) != 0 {
			resp.Body, resp.ContentType = []byte{}, ""
		}
		return resp, nil
	}
	if t.sess == nil {
		return nil, fmt.Errorf("reply from %s is sealed but no security session was negotiated: %w", host, ErrUnsealedReply)
	}
	// The reply body is ours (a new buffer per reply): it is decrypted
	// where it lies.
	plain, otype, err := encframe.UnwrapInPlace(resp.Body, t.unsealFn)
	if err != nil {
		return nil, fmt.Errorf("unseal reply (HTTP %d) from %s: %w: %w", resp.StatusCode, host, ErrUnsealedReply, err)
	}
	resp.Body, resp.ContentType, resp.Encrypted = plain, otype, true
	return resp, nil
}

// deadConnError is a kept-alive connection found closed when a message was
// sent on it: EOF or a reset before any byte of reply. Usually the host
// closed an idle connection or restarted, and never saw the message; but
// it may also have acted on the message and died before answering, so
// RoundTrip authenticates a new connection and sends the message once more
// only when the request is Idempotent. A CreateJob sent twice would create
// two jobs; its failure goes up for package wsman to report as ambiguous.
// Go's own transport refuses to retry a POST here for the same reason.
type deadConnError struct{ err error }

func (e *deadConnError) Error() string { return e.err.Error() }
func (e *deadConnError) Unwrap() error { return e.err }

// notSentError is a failure before any byte of the request body was
// written: its text is the cause's, and it matches ErrNotSent.
type notSentError struct{ err error }

func (e *notSentError) Error() string   { return e.err.Error() }
func (e *notSentError) Unwrap() []error { return []error{e.err, ErrNotSent} }

// connDead reports a kept-alive connection the host closed under us.
func connDead(err error) bool { return IsConnectionClosed(err) }
