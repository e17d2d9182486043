package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

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
// The host keeps NTLM state per TCP connection, so the exchange runs on
// one connection that the transport holds: a NEGOTIATE with an empty
// body, the host's 401 with its CHALLENGE, then the AUTHENTICATE carrying
// the request's body, whose reply is the answer. Later requests go on
// that connection without credentials. When the connection is lost
// between the legs, the whole exchange starts over on a new connection,
// at most maxAttempts times, instead of sending the AUTHENTICATE where
// the host can only answer 401 (which would read as rejected
// credentials). An AUTHENTICATE written and met by a closed connection
// may have reached the host: it goes again for an Idempotent request
// only, once, and otherwise fails as a lost connection; so does any
// request on the authenticated connection found closed under it, for
// package wsman's retry policy to judge. A 401 to a request on the
// authenticated connection (the host forgot it) authenticates a new
// connection and sends the request again: the host did not act on it.
//
// Through an http:// proxy each request may reach the host on another
// connection, which breaks NTLM; an https:// endpoint is tunnelled with
// CONNECT and works.
//
// The handshake messages are built by Azure/go-ntlmssp.
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
	d, err := cfg.newDialer()
	if err != nil {
		return nil, fmt.Errorf("ntlm auth: %w", err)
	}
	return &ntlmPlain{
		d:           d,
		anon:        newConnPool(d, Config{MaxIdleConnsPerHost: 1}),
		limit:       cfg.maxResponseBytes(),
		respTimeout: cfg.ResponseTimeout,
		user:        cfg.User,
		password:    cfg.Password,
		serial:      make(chan struct{}, 1),
	}, nil
}

// ntlmPlain is the unsealed NTLM transport: one authenticated connection,
// its exchange redone on a new connection when it is lost between legs.
type ntlmPlain struct {
	endpoints endpointCache
	d         *dialer
	// anon carries Anonymous requests on connections of their own, so they
	// never ride on (or disturb) the authenticated one.
	anon           *connPool
	limit          int64
	respTimeout    time.Duration
	user, password string
	// serial lets one request at a time through and guards conn and key:
	// the legs of one exchange must not interleave with another request's.
	serial chan struct{}
	// conn is the authenticated connection (nil: none), to endpoint key.
	conn *hconn
	key  string
}

// RoundTrip posts req.Body and returns the reply whatever its status.
func (p *ntlmPlain) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	var buf [4]header
	ep, hdrs, err := p.endpoints.prepare(req, buf[:0])
	if err != nil {
		return nil, err
	}
	if req.Anonymous {
		return p.anon.exchange(ctx, ep, hdrs, ContentTypeSOAP, req.Body, p.limit, p.respTimeout)
	}
	if !take(ctx, p.serial) {
		return nil, &notSentError{fmt.Errorf("post to %s: waiting for the connection: %w", ep.hostHeader, ctx.Err())}
	}
	defer func() { <-p.serial }()

	// maybeSeen says an earlier attempt may have reached the host with the
	// body and got no reply: an Idempotent request is sent again once.
	maybeSeen := false
	var lost error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if p.conn != nil && (p.key != ep.key || !p.conn.reusable(idleTimeout)) {
			p.drop()
		}
		var resp *Response
		var err error
		authenticated := p.conn != nil
		if authenticated {
			resp, err = p.conn.roundTrip(ctx, ep, hdrs, ContentTypeSOAP, req.Body, p.limit, p.respTimeout)
		} else {
			resp, err = p.authenticate(ctx, ep, hdrs, req.Body)
		}
		if err == nil {
			if authenticated && resp.StatusCode == http.StatusUnauthorized {
				// The host no longer finds the connection authenticated and
				// did not act on the message: authenticate a new one.
				p.drop()
				lost = errors.New("HTTP 401 on the authenticated connection")
				continue
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, p.fail(ctx, ep, err)
		}
		var redo *redoError
		var xe *exchangeError
		switch {
		case errors.As(err, &redo):
			// Nothing of the body reached the host.
			lost = redo.err
			continue
		case errors.As(err, &xe) && !xe.written:
			lost = err
			continue
		case !authenticated && errors.As(err, &xe) && !xe.answered && IsConnectionClosed(err) && req.Idempotent && !maybeSeen:
			// The NEGOTIATE's connection was found closed under the
			// AUTHENTICATE; the host most likely never saw the body, but
			// may have (see deadConnError). A request on the authenticated
			// connection found dead fails as with Basic, for package
			// wsman's retry policy to judge.
			maybeSeen, lost = true, &deadConnError{err}
			continue
		}
		return nil, p.fail(ctx, ep, err)
	}
	err = fmt.Errorf("post to %s: %w (the connection was lost during each of %d NTLM exchanges)", ep.hostHeader, lost, maxAttempts)
	if maybeSeen {
		return nil, err
	}
	return nil, &notSentError{err}
}

// fail wraps the error of an exchange with the host, marked ErrNotSent
// when nothing of the body was written.
func (p *ntlmPlain) fail(ctx context.Context, ep endpoint, err error) error {
	var ns *notSentError
	if errors.As(err, &ns) {
		return &notSentError{fmt.Errorf("post to %s: %w", ep.hostHeader, ctxErr(ctx, err))}
	}
	return exchangeFailed(ctx, ep.hostHeader, err)
}

// redoError is a handshake leg lost before the body went out: the
// exchange may start over on a new connection.
type redoError struct{ err error }

func (e *redoError) Error() string { return e.err.Error() }
func (e *redoError) Unwrap() error { return e.err }

// drop forgets the authenticated connection.
func (p *ntlmPlain) drop() {
	if p.conn != nil {
		p.conn.close()
		p.conn, p.key = nil, ""
	}
}

// authenticate dials a connection, runs the NEGOTIATE leg with an empty
// body and sends the body with the AUTHENTICATE. On success the
// connection becomes p.conn.
func (p *ntlmPlain) authenticate(ctx context.Context, ep endpoint, hdrs []header, body []byte) (*Response, error) {
	h, err := p.d.connect(ctx, ep)
	if err != nil {
		return nil, &notSentError{err}
	}
	negotiate, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		h.close()
		return nil, &notSentError{fmt.Errorf("ntlm: build NEGOTIATE: %w", err)}
	}
	leg := append(hdrs[:len(hdrs):len(hdrs)], header{"Authorization", "Negotiate " + base64.StdEncoding.EncodeToString(negotiate)})
	resp, err := h.roundTrip(ctx, ep, leg, ContentTypeSOAP, nil, max401Body, p.respTimeout)
	if err != nil {
		// The NEGOTIATE went on a new connection: one dropped at once is
		// the host refusing, not a loss to ride out. It carried no body.
		return nil, &notSentError{fmt.Errorf("NTLM NEGOTIATE: %w", err)}
	}
	challenge, err := challengeToken(resp)
	if err != nil {
		h.close()
		if resp.StatusCode == http.StatusUnauthorized {
			// Refused without a challenge (the host does not offer
			// Negotiate, or refuses this account outright): that 401 is
			// the answer, for package wsman to report.
			return resp, nil
		}
		return nil, &notSentError{fmt.Errorf("ntlm handshake with %s: %w", ep.hostHeader, err)}
	}
	if h.broken {
		return nil, &redoError{errors.New("NTLM: the host closed the connection after its CHALLENGE")}
	}
	authenticate, err := ntlmssp.NewAuthenticateMessage(challenge, p.user, p.password, nil)
	if err != nil {
		h.close()
		return nil, &notSentError{fmt.Errorf("ntlm handshake with %s: process CHALLENGE: %w", ep.hostHeader, err)}
	}
	leg = append(hdrs[:len(hdrs):len(hdrs)], header{"Authorization", "Negotiate " + base64.StdEncoding.EncodeToString(authenticate)})
	resp, err = h.roundTrip(ctx, ep, leg, ContentTypeSOAP, body, p.limit, p.respTimeout)
	if err != nil {
		var xe *exchangeError
		if errors.As(err, &xe) && !xe.written {
			return nil, &redoError{fmt.Errorf("NTLM AUTHENTICATE: %w", err)}
		}
		// reused is true here: the connection carried the NEGOTIATE.
		return nil, fmt.Errorf("NTLM AUTHENTICATE: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The credentials were refused; the 401 goes up for package wsman.
		h.close()
		return resp, nil
	}
	if !h.broken {
		p.conn, p.key = h, ep.key
	}
	return resp, nil
}

// Confidential is true only over https://: plain NTLM never seals a body.
func (p *ntlmPlain) Confidential(endpoint string) bool {
	u, err := parseEndpoint(endpoint)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// CloseIdleConnections closes kept-alive connections, ending the NTLM
// authentication; the next request authenticates again.
func (p *ntlmPlain) CloseIdleConnections() {
	select {
	case p.serial <- struct{}{}:
		p.drop()
		<-p.serial
	default:
		// A request is in flight on the connection; it stays.
	}
	p.anon.closeIdle()
}

// max401Body bounds the body of a reply during the NTLM handshake;
// Windows sends none.
const max401Body = 64 << 10
