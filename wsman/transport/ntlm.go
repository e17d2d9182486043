package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"

	ntlmssp "github.com/Azure/go-ntlmssp"
)

// NewNTLM returns a Transport that authenticates with NTLM (NTLMv2, through
// Azure/go-ntlmssp) and does not seal messages. Use it over https://, or
// against hosts with AllowUnencrypted=true; a default Windows host refuses
// unsealed messages over http:// with a bare 500 (NewNTLMEncrypted seals).
//
// NTLM authenticates a connection, not a request, so the transport keeps one
// connection per host (MaxConnsPerHost 1) and lets one request at a time
// through: the handshake runs once per connection and later requests go out
// without credentials on the authenticated connection. User may be "user",
// "DOMAIN\user" or "user@realm".
//
// The host keeps NTLM state per TCP connection, so from the NEGOTIATE until
// the AUTHENTICATE's reply the exchange is pinned to the NEGOTIATE's
// connection: the transport's dialer refuses to open another
// (errConnReplaced, before a byte is written). When that connection is
// lost between the legs (the host closes it, or net/http declines to reuse
// it, which it does when a write is not confirmed within 50 ms of the
// reply), the whole exchange starts over on a new connection, at most
// maxAttempts times, instead of sending the AUTHENTICATE where the host
// can only answer 401 (which would read as rejected credentials). The
// negotiator sends the body with every leg, but the host acts on none
// answered 401 or never written. An AUTHENTICATE written on the
// NEGOTIATE's connection and met by a closed connection may have reached
// the host: the exchange starts over for an Idempotent request only, and
// otherwise fails as a lost connection (never as the first 401). Nothing
// is sent again after a 2xx; a request that finds its kept-alive connection dead
// before any handshake fails as with Basic, for package wsman to judge.
//
// Through an http:// proxy each request may reach the host on another
// connection, which breaks NTLM; an https:// endpoint is tunnelled with
// CONNECT and works.
//
// Encryption=Always is refused; Auto and Never both mean "do not seal" here
// (New picks NewNTLMEncrypted where Auto calls for sealing).
func NewNTLM(cfg Config) (Transport, error) {
	if cfg.User == "" {
		return nil, errors.New("ntlm auth: a user name is required")
	}
	if cfg.Encryption == EncryptionAlways {
		// Asked to seal, this transport would send every body in clear.
		return nil, errors.New("ntlm auth: NewNTLM never seals; use NewNTLMEncrypted (or New) for encryption always")
	}
	cfg.MaxConnsPerHost = 1
	cfg.MaxIdleConnsPerHost = 1
	t, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("ntlm auth: %w", err)
	}
	p := &ntlmPlain{
		transport: t,
		limit:     cfg.maxResponseBytes(),
		user:      cfg.User,
		password:  cfg.Password,
		serial:    make(chan struct{}, 1),
		dialer:    t.DialContext,
	}
	t.DialContext = p.dial
	return p, nil
}

// ntlmPlain is the unsealed NTLM transport: go-ntlmssp's Negotiator over
// one pinned connection, with the exchange redone when the connection is
// lost between legs.
type ntlmPlain struct {
	transport      *http.Transport
	limit          int64
	user, password string
	// serial lets one request at a time through: the legs of one exchange
	// must not interleave with another request's.
	serial chan struct{}

	// dialer is the plain dialer behind dial.
	dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// pinMu guards pinned, which dial reads on net/http's goroutines.
	pinMu  sync.Mutex
	pinned bool
}

// dial opens a connection unless an exchange is between its NEGOTIATE and
// the AUTHENTICATE's reply: the AUTHENTICATE would reach the host on a
// connection that never saw the NEGOTIATE.
func (p *ntlmPlain) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.pinMu.Lock()
	pinned := p.pinned
	p.pinMu.Unlock()
	if pinned {
		return nil, errConnReplaced
	}
	return p.dialer(ctx, network, addr)
}

func (p *ntlmPlain) setPinned(v bool) {
	p.pinMu.Lock()
	p.pinned = v
	p.pinMu.Unlock()
}

// RoundTrip posts req.Body and returns the reply whatever its status.
func (p *ntlmPlain) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	hr, err := newHTTPRequest(ctx, req, req.Body, ContentTypeSOAP)
	if err != nil {
		return nil, err
	}
	host := hr.URL.Host
	select {
	case p.serial <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("post to %s: waiting for the connection: %w", host, ctx.Err())
	}
	defer func() { <-p.serial }()
	if req.Anonymous {
		hr.Header.Del("Authorization")
		return doHTTP(p.transport, hr, p.limit)
	}

	// maybeSeen says an earlier attempt may have reached the host with the
	// body and got no reply; spent once, like the sealed transport's.
	maybeSeen := false
	var lost error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			p.transport.CloseIdleConnections()
			if hr, err = newHTTPRequest(ctx, req, req.Body, ContentTypeSOAP); err != nil {
				return nil, err
			}
		}
		hr.SetBasicAuth(p.user, p.password)
		legs := &legLog{}
		rt := ntlmssp.Negotiator{RoundTripper: &legTracer{p: p, log: legs, next: release401{p.transport}}}
		resp, err := doHTTP(rt, hr, p.limit)
		p.setPinned(false)
		if err == nil && resp.StatusCode == http.StatusUnauthorized && ctx.Err() != nil {
			// The negotiator swallows errors of later legs and hands back
			// an earlier 401; the context says why.
			return nil, fmt.Errorf("post to %s: %w", host, ctx.Err())
		}
		v := legs.verdict(req.Idempotent && !maybeSeen)
		switch {
		case v.redo == nil:
			if v.err != nil {
				return nil, fmt.Errorf("post to %s: %w", host, ctxErr(ctx, v.err))
			}
			return resp, err
		case ctx.Err() != nil:
			return nil, fmt.Errorf("post to %s: %w", host, ctx.Err())
		}
		maybeSeen = maybeSeen || v.maybeSeen
		lost = v.redo
	}
	err = fmt.Errorf("post to %s: %w (the connection was lost during each of %d NTLM exchanges)", host, lost, maxAttempts)
	if maybeSeen {
		return nil, err
	}
	return nil, &notSentError{err}
}

// Confidential is true only over https://: plain NTLM never seals a body.
func (p *ntlmPlain) Confidential(endpoint string) bool {
	u, err := parseEndpoint(endpoint)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// CloseIdleConnections closes kept-alive connections, ending the NTLM
// authentication; the next request authenticates again.
func (p *ntlmPlain) CloseIdleConnections() { p.transport.CloseIdleConnections() }

// Kinds of leg, by the NTLM message in their Authorization header.
const (
	legAnonymous = iota
	legNegotiate
	legAuthenticate
	legOther
)

// leg is what one round trip of the negotiator's exchange met.
type leg struct {
	kind     int
	conn     net.Conn // the connection it went out on, nil if none
	reused   bool
	answered bool // a byte of reply arrived
	// writeFailed says writing the request failed: it never reached the
	// host whole, so the host cannot have acted on it.
	writeFailed bool
	status      int // 0 without a reply
	err         error
}

// legLog records the legs of one exchange; trace callbacks may write to it
// on net/http's goroutines.
type legLog struct {
	mu   sync.Mutex
	legs []*leg
}

// verdict is what to make of one exchange: redo says to start over (and
// why), err replaces the negotiator's answer (which hides leg errors
// behind the first 401), maybeSeen says the body may have reached the
// host on a leg that got no reply.
type verdict struct {
	redo, err error
	maybeSeen bool
}

// verdict decides from the legs whether the exchange's answer stands.
// mayRepeat allows starting over after a leg that may have reached the
// host with the body and got no reply.
func (l *legLog) verdict(mayRepeat bool) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var negConn net.Conn
	for _, lg := range l.legs {
		switch {
		case lg.status >= 200 && lg.status <= 299:
			// The host acted on the body: whatever happened, never again.
			return verdict{}
		case lg.err == nil && lg.kind == legNegotiate:
			negConn = lg.conn
		case lg.err == nil && lg.kind == legAuthenticate && lg.conn != negConn && lg.status == http.StatusUnauthorized:
			// dial makes this unreachable; should it happen, the 401 came
			// on a connection that never saw our NEGOTIATE.
			return verdict{redo: fmt.Errorf("NTLM AUTHENTICATE went out on another connection than the NEGOTIATE (answered HTTP %d)", lg.status)}
		case lg.err == nil:
		case errors.Is(lg.err, errConnReplaced):
			// The NEGOTIATE's connection was gone before the AUTHENTICATE
			// could go out: nothing was written anywhere.
			return verdict{redo: lg.err}
		case lg.writeFailed && !lg.answered:
			return verdict{redo: fmt.Errorf("NTLM exchange: %w", lg.err)}
		case lg.kind == legNegotiate && !lg.answered:
			// A NEGOTIATE is never acted on (the host must challenge it),
			// so it can go again on a fresh connection.
			return verdict{redo: fmt.Errorf("NTLM NEGOTIATE: %w", lg.err)}
		case mayRepeat && lg.kind == legAuthenticate && lg.reused && !lg.answered && connDead(lg.err):
			// The NEGOTIATE's connection found closed under the
			// AUTHENTICATE; the host most likely never saw the body, but
			// may have (see deadConnError). A request on a kept-alive
			// connection found dead before any handshake fails as with
			// Basic, for package wsman's retry policy to judge.
			return verdict{redo: &deadConnError{lg.err}, maybeSeen: true}
		case lg.kind == legAuthenticate:
			// The negotiator would answer with the first 401, which says
			// nothing about the credentials.
			return verdict{err: fmt.Errorf("NTLM AUTHENTICATE: %w", lg.err)}
		}
	}
	return verdict{}
}

// legTracer records each leg of the negotiator's exchange and pins the
// NEGOTIATE's connection until the exchange ends.
type legTracer struct {
	p    *ntlmPlain
	log  *legLog
	next http.RoundTripper
}

func (t *legTracer) RoundTrip(req *http.Request) (*http.Response, error) {
	lg := &leg{kind: legKindOf(req.Header.Get("Authorization"))}
	t.log.mu.Lock()
	t.log.legs = append(t.log.legs, lg)
	t.log.mu.Unlock()
	trace := &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if lg.kind == legNegotiate {
				t.p.setPinned(true)
			}
			t.log.mu.Lock()
			lg.conn, lg.reused = i.Conn, i.Reused
			t.log.mu.Unlock()
		},
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			t.log.mu.Lock()
			lg.writeFailed = i.Err != nil
			t.log.mu.Unlock()
		},
		GotFirstResponseByte: func() {
			t.log.mu.Lock()
			lg.answered = true
			t.log.mu.Unlock()
		},
	}
	resp, err := t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	t.log.mu.Lock()
	lg.err = err
	if resp != nil {
		lg.status = resp.StatusCode
	}
	t.log.mu.Unlock()
	return resp, err
}

// legKindOf names a leg by its Authorization header.
func legKindOf(h string) int {
	if h == "" {
		return legAnonymous
	}
	_, tok, _ := strings.Cut(h, " ")
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok))
	switch {
	case err != nil || len(msg) < 12:
		return legOther
	case msg[8] == 1:
		return legNegotiate
	case msg[8] == 3:
		return legAuthenticate
	}
	return legOther
}

// max401Body bounds the body of a 401 buffered during the NTLM handshake;
// Windows sends none.
const max401Body = 64 << 10

// release401 reads and closes the body of every 401 at once. The negotiator
// keeps the first 401 open while it sends the next leg, and with one
// connection per host that leg would wait forever for the connection the
// open body holds.
type release401 struct{ next http.RoundTripper }

func (r release401) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body, max401Body)
	if err != nil {
		return nil, fmt.Errorf("read 401 reply from %s: %w", req.URL.Host, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
