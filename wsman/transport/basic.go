package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// secprofileMutual is the Authorization value WinRM expects with TLS client
// certificate authentication (MS-WSMV 2.2.9.1; pywinrm and masterzen send it).
const secprofileMutual = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

// httpPost is the plaintext transport shared by Basic, certificate and NTLM
// authentication: they differ only in how a request is authorised and in
// the round tripper underneath.
type httpPost struct {
	rt        http.RoundTripper
	transport *http.Transport
	limit     int64
	// authorize adds credentials to a request that is not anonymous.
	authorize func(*http.Request)
	// httpsOnly refuses http:// endpoints (certificate auth).
	httpsOnly bool
	// serial, when not nil, lets one request at a time through: the
	// authentication is bound to a connection and its legs must not
	// interleave with another request's.
	serial chan struct{}
	name   string
}

// NewBasic returns a Transport that authenticates with HTTP Basic. WinRM
// accepts Basic only for local accounts and only when the listener allows it;
// over http:// the password crosses the network in clear, so prefer https://.
// Basic cannot seal: Encryption=Always is refused.
func NewBasic(cfg Config) (Transport, error) {
	if cfg.Encryption == EncryptionAlways {
		return nil, errors.New("basic auth cannot encrypt messages: use --encryption never or auto with https, or NTLM")
	}
	if cfg.User == "" {
		return nil, errors.New("basic auth: a user name is required")
	}
	t, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	user, pass := cfg.User, cfg.Password
	return &httpPost{
		rt:        t,
		transport: t,
		limit:     cfg.maxResponseBytes(),
		authorize: func(r *http.Request) { r.SetBasicAuth(user, pass) },
		name:      "basic",
	}, nil
}

// NewCertificate returns a Transport that authenticates with the TLS client
// certificate in cfg.CertFile and cfg.KeyFile. It needs https://.
func NewCertificate(cfg Config) (Transport, error) {
	if cfg.Encryption == EncryptionAlways {
		return nil, errors.New("certificate auth cannot encrypt messages: it runs over https, which already does")
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("certificate auth: a client certificate and key file are required")
	}
	t, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("certificate auth: %w", err)
	}
	return &httpPost{
		rt:        t,
		transport: t,
		limit:     cfg.maxResponseBytes(),
		authorize: func(r *http.Request) { r.Header.Set("Authorization", secprofileMutual) },
		httpsOnly: true,
		name:      "certificate",
	}, nil
}

// RoundTrip posts req.Body and returns the reply whatever its status.
func (p *httpPost) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	if p.httpsOnly {
		u, err := parseEndpoint(req.URL)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(u.Scheme, "https") {
			return nil, fmt.Errorf("%s auth to %s: needs an https:// endpoint", p.name, u.Host)
		}
	}
	hr, err := newHTTPRequest(ctx, req, req.Body, ContentTypeSOAP)
	if err != nil {
		return nil, err
	}
	if req.Anonymous {
		hr.Header.Del("Authorization")
	} else {
		p.authorize(hr)
	}
	if p.serial != nil {
		select {
		case p.serial <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("post to %s: waiting for the connection: %w", hr.URL.Host, ctx.Err())
		}
		defer func() { <-p.serial }()
	}
	resp, err := doHTTP(p.rt, hr, p.limit)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && ctx.Err() != nil {
		// Some round trippers (the NTLM negotiator) swallow errors of
		// later legs and hand back an earlier 401; the context says why.
		return nil, fmt.Errorf("post to %s: %w", hr.URL.Host, ctx.Err())
	}
	return resp, err
}

// Confidential is true only over https://: Basic, certificate and plain
// NTLM never seal a body.
func (p *httpPost) Confidential(endpoint string) bool {
	u, err := parseEndpoint(endpoint)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// CloseIdleConnections closes kept-alive connections, ending any
// connection-bound authentication.
func (p *httpPost) CloseIdleConnections() { p.transport.CloseIdleConnections() }
