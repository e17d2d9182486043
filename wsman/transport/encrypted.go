package transport

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bodgit/ntlmssp"

	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
)

// ErrAuthentication is returned when the host refuses the NTLM credentials
// during the handshake. Nothing but the handshake itself (empty bodies) was
// sent.
var ErrAuthentication = errors.New("the host rejected the credentials")

// ErrUnsealedReply is returned when a reply to a sealed request comes back
// unencrypted or fails its signature check: its content cannot be trusted.
var ErrUnsealedReply = errors.New("reply to a sealed request is not correctly sealed")

// errConnReplaced is what the transport's dialer answers while a session
// is bound to a connection: net/http wanted a new connection (the bound one
// was closed, by the host or by net/http itself) and nothing was written
// on one. See ntlmEncrypted.dial.
var errConnReplaced = errors.New("the NTLM-authenticated connection was closed; a new connection needs a new handshake")

// maxAttempts bounds the handshakes of one RoundTrip and the attempts at
// authenticating one connection: a host (or a middlebox) that closes every
// connection between the legs must not hold a caller forever.
const maxAttempts = 3

// ntlmSignatureLen is the size of an NTLM message signature (MS-NLMP
// 2.2.2.9.1); bodgit's Unwrap indexes it blindly, so anything else is
// refused before it gets there.
const ntlmSignatureLen = 16

// NewNTLMEncrypted returns a Transport that authenticates with NTLMv2 and
// seals every message with the NTLM session (MS-WSMV 2.2.9.1 HTTP message
// encryption), which is what a default Windows host (AllowUnencrypted=false)
// requires over http://. It is built on bodgit/ntlmssp's client and
// security session, with our own framing; its http helper and
// masterzen/winrm's Encryption are avoided for their bugs (go-deps.md §1.6,
// §5).
//
// One handshake runs per connection (an empty-body POST carrying NEGOTIATE
// and then AUTHENTICATE); later messages go sealed, without Authorization,
// on that connection. The RC4 streams and sequence numbers of a session are
// shared by every message, so the transport keeps one connection per host
// and lets one request at a time through.
//
// The host keeps NTLM state per TCP connection, so the session is pinned
// to the connection that carried its NEGOTIATE: once it is chosen, the
// transport's dialer refuses to open another (errConnReplaced). When that
// connection goes away (the host closes it, an idle timeout, or net/http
// declining to reuse it, which it does when a request write has not been
// confirmed within 50 ms of the reply on a loaded machine), the next leg
// or message fails before a byte is written instead of reaching a new,
// unauthenticated connection and a 401. A handshake that loses its
// connection between legs starts over from NEGOTIATE; a message that could
// not go out authenticates a new connection and goes then, whatever its
// Idempotent flag (at most maxAttempts times).
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
	cfg.MaxConnsPerHost = 1
	cfg.MaxIdleConnsPerHost = 1
	t, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("ntlm encrypted: %w", err)
	}
	anon, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("ntlm encrypted: %w", err)
	}
	user, domain := cfg.User, ""
	if d, u, ok := strings.Cut(cfg.User, `\`); ok {
		domain, user = d, u
	}
	// Keep-alive is what NTLM rides on (httpTransport never turns it off);
	// MaxConnsPerHost 1 makes a request wait for the pinned connection to
	// come back to the pool instead of dialling beside it.
	t.DisableKeepAlives = false
	e := &ntlmEncrypted{
		transport: t,
		anon:      anon,
		limit:     cfg.maxResponseBytes(),
		user:      user,
		domain:    domain,
		password:  cfg.Password,
		mode:      cfg.Encryption,
		serial:    make(chan struct{}, 1),
		dialer:    t.DialContext,
	}
	t.DialContext = e.dial
	return e, nil
}

type ntlmEncrypted struct {
	transport *http.Transport
	// anon carries Anonymous requests on connections of their own, so they
	// never ride on (or disturb) the authenticated one.
	anon                   *http.Transport
	limit                  int64
	user, domain, password string
	mode                   Encryption

	// serial is a context-aware mutex: it guards sess and keeps the sealed
	// stream in order.
	serial chan struct{}
	// authed says the current connection is authenticated; sess is its
	// security session, nil when none was negotiated (possible only when
	// not sealing).
	authed bool
	sess   *ntlmssp.SecuritySession

	// dialer is the plain dialer behind dial.
	dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// pinMu guards pinned and conn, which dial reads on net/http's
	// goroutines (a dial can outlive the request that started it).
	pinMu sync.Mutex
	// pinned says a handshake has chosen conn, so no other connection may
	// be dialled until reset.
	pinned bool
	conn   net.Conn

	// testHookBetweenLegs, when set, runs after the CHALLENGE is read and
	// before the AUTHENTICATE is sent.
	testHookBetweenLegs func()
}

// dial opens a connection only while no session is bound to one. net/http
// dials when the pool has no idle connection for a request; with the
// session's connection gone, that request would reach the host on a new,
// unauthenticated connection, so it fails here instead, before anything
// is written on any connection.
func (t *ntlmEncrypted) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	t.pinMu.Lock()
	pinned := t.pinned
	t.pinMu.Unlock()
	if pinned {
		return nil, errConnReplaced
	}
	return t.dialer(ctx, network, addr)
}

// pin binds the session being negotiated to c.
func (t *ntlmEncrypted) pin(c net.Conn) {
	t.pinMu.Lock()
	t.pinned, t.conn = true, c
	t.pinMu.Unlock()
}

// pinnedTo reports whether c is the connection the session is bound to.
func (t *ntlmEncrypted) pinnedTo(c net.Conn) bool {
	t.pinMu.Lock()
	defer t.pinMu.Unlock()
	return t.pinned && t.conn == c
}

// RoundTrip sends req.Body, sealed when the mode and scheme call for it, and
// returns the reply (unsealed) whatever its status.
func (t *ntlmEncrypted) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	// parseEndpoint keeps a password written into the URL out of the error.
	u, err := parseEndpoint(req.URL)
	if err != nil {
		return nil, &notSentError{err}
	}
	if req.Anonymous {
		hr, err := newHTTPRequest(ctx, req, req.Body, ContentTypeSOAP)
		if err != nil {
			return nil, err
		}
		hr.Header.Del("Authorization")
		return doHTTP(t.anon, hr, t.limit)
	}
	seal := t.mode == EncryptionAlways || (t.mode == EncryptionAuto && strings.EqualFold(u.Scheme, "http"))

	select {
	case t.serial <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("post to %s: waiting for the connection: %w", u.Host, ctx.Err())
	}
	defer func() { <-t.serial }()

	// retried is spent by the retry that may follow a 401 to a message
	// the host saw: once. A message that never left (errConnReplaced) or
	// an Idempotent one lost with a dead connection costs only an attempt.
	retried := false
	for attempt := 1; ; attempt++ {
		if !t.authed {
			if err := t.authenticate(ctx, req, seal); err != nil {
				t.reset()
				// Only empty-body handshake legs went out.
				return nil, &notSentError{err}
			}
		}
		resp, err := t.send(ctx, req, seal)
		if err != nil {
			// The peer may or may not have consumed a sequence number; the
			// session can no longer be trusted to be in step.
			t.reset()
			if attempt < maxAttempts && ctx.Err() == nil && errors.Is(err, errConnReplaced) {
				// The authenticated connection was gone before the message
				// could go out: nothing was written anywhere.
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
			return nil, fmt.Errorf("post to %s: HTTP 401 right after a successful handshake: %w", u.Host, ErrAuthentication)
		}
		return resp, nil
	}
}

// Confidential reports whether bodies to endpoint are sealed or go over
// TLS.
func (t *ntlmEncrypted) Confidential(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	https := strings.EqualFold(u.Scheme, "https")
	return https || t.mode == EncryptionAlways || t.mode == EncryptionAuto
}

// reset forgets the session and its connection, so the next request starts
// over with a new connection and a new handshake.
func (t *ntlmEncrypted) reset() {
	t.authed, t.sess = false, nil
	// Close first, then unpin: the next dial is for the next handshake.
	t.transport.CloseIdleConnections()
	t.pinMu.Lock()
	t.pinned, t.conn = false, nil
	t.pinMu.Unlock()
}

// CloseIdleConnections closes kept-alive connections, ending the NTLM
// session; the next request authenticates again.
func (t *ntlmEncrypted) CloseIdleConnections() {
	select {
	case t.serial <- struct{}{}:
		t.reset()
		<-t.serial
	default:
		// A request is in flight; closing idle connections is still safe,
		// and the request's own error or 401 path resets the session.
		t.transport.CloseIdleConnections()
		t.anon.CloseIdleConnections()
		return
	}
	t.anon.CloseIdleConnections()
}

// authenticate runs the handshake, starting over from NEGOTIATE on a new
// connection when the one carrying it is lost between legs (at most
// maxAttempts times): the host's NTLM state is bound to that connection,
// so an AUTHENTICATE on another could only get a 401.
func (t *ntlmEncrypted) authenticate(ctx context.Context, req *Request, seal bool) error {
	var err error
	for range maxAttempts {
		t.reset()
		err = t.handshake(ctx, req, seal)
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

// handshake authenticates one connection with empty-body POSTs (so that
// no body needs replaying): NEGOTIATE, CHALLENGE, AUTHENTICATE, then 2xx,
// all on the connection that the NEGOTIATE pinned.
func (t *ntlmEncrypted) handshake(ctx context.Context, req *Request, seal bool) error {
	host := hostOf(req.URL)
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
	resp, err := t.leg(ctx, req, negotiate, true)
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
		t.testHookBetweenLegs()
	}
	resp, err = t.leg(ctx, req, authenticate, false)
	if err != nil {
		return fmt.Errorf("ntlm handshake with %s: AUTHENTICATE: %w", host, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("ntlm handshake with %s as %q: HTTP 401: %w", host, t.user, ErrAuthentication)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("ntlm handshake with %s: AUTHENTICATE answered with HTTP %d, want 2xx", host, resp.StatusCode)
	}
	sess := nc.SecuritySession()
	if seal && (sess == nil || !sealing128(authenticate)) {
		// bodgit would "wrap" a sign-only session without encrypting, and
		// a host offering 40- or 56-bit keys is not one to trust with a
		// password-bearing BITS job.
		return fmt.Errorf("ntlm handshake with %s: the host did not agree to 128-bit sealing: %w", host, ErrEncryptionRequired)
	}
	t.authed, t.sess = true, sess
	return nil
}

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

// leg posts one handshake message with an empty body. The NEGOTIATE
// (first) pins the connection it gets; a later leg must get that same one.
// doHTTP reads every reply to its end, which is what hands the connection
// back to the pool for the next leg.
func (t *ntlmEncrypted) leg(ctx context.Context, req *Request, token []byte, first bool) (*Response, error) {
	// Trace callbacks may run on net/http's goroutines.
	var got atomic.Pointer[httptrace.GotConnInfo]
	var answered atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if first {
				t.pin(i.Conn)
			}
			got.Store(&i)
		},
		GotFirstResponseByte: func() { answered.Store(true) },
	}
	hr, err := newHTTPRequest(httptrace.WithClientTrace(ctx, trace), req, nil, ContentTypeSOAP)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(token))
	resp, err := doHTTP(t.transport, hr, max401Body)
	info := got.Load()
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, errConnReplaced) ||
			info != nil && info.Reused && !answered.Load() && connDead(err)) {
			return nil, &connLostError{err}
		}
		return nil, err
	}
	if !first && (info == nil || !t.pinnedTo(info.Conn)) {
		// dial makes this unreachable; should it happen, the reply came
		// from a connection that never saw our NEGOTIATE and means
		// nothing about the credentials.
		return nil, &connLostError{fmt.Errorf("went out on another connection than the NEGOTIATE (answered HTTP %d)", resp.StatusCode)}
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
func (t *ntlmEncrypted) send(ctx context.Context, req *Request, seal bool) (*Response, error) {
	host := hostOf(req.URL)
	body, ctype := req.Body, ContentTypeSOAP
	if seal {
		var err error
		body, err = encframe.Wrap(req.Body, encframe.SOAPType, t.sess.Wrap)
		if err != nil {
			return nil, &notSentError{fmt.Errorf("seal message for %s: %w", host, err)}
		}
		ctype = encframe.ContentType
	}
	// The trace callbacks run on net/http's connection goroutines, which
	// can still be running when doHTTP returns an error, hence atomics.
	var connected, reused, answered atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			reused.Store(i.Reused)
			connected.Store(true)
		},
		GotFirstResponseByte: func() { answered.Store(true) },
	}
	hr, err := newHTTPRequest(httptrace.WithClientTrace(ctx, trace), req, body, ctype)
	if err != nil {
		return nil, &notSentError{err}
	}
	// The connection is authenticated; credentials must not ride along.
	hr.Header.Del("Authorization")
	resp, err := doHTTP(t.transport, hr, t.limit)
	if err != nil {
		switch {
		case !connected.Load():
			// No connection was ever handed to the request (dial failure,
			// or ctx ended while waiting for one): nothing was written.
			return nil, &notSentError{err}
		case errors.Is(err, errConnReplaced):
			// net/http found the kept-alive connection dead before writing
			// anything (nothingWrittenError, the only retry it makes for a
			// POST) and asked dial for another, which refused.
			return nil, &notSentError{err}
		case reused.Load() && !answered.Load() && ctx.Err() == nil && connDead(err):
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
	plain, otype, err := encframe.Unwrap(resp.Body, func(sealed, sig []byte) ([]byte, error) {
		if len(sig) != ntlmSignatureLen {
			return nil, fmt.Errorf("signature is %d bytes, want %d", len(sig), ntlmSignatureLen)
		}
		return t.sess.Unwrap(sealed, sig)
	})
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

func hostOf(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		return u.Host
	}
	return rawURL
}
