package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// secprofileMutual is the Authorization value WinRM expects with TLS client
// certificate authentication (MS-WSMV 2.2.9.1; pywinrm and masterzen send it).
const secprofileMutual = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

// httpPost is the plaintext transport shared by Basic, certificate and
// unauthenticated requests: they differ only in the Authorization header.
// Any pooled connection may carry any request.
type httpPost struct {
	endpoints endpointCache
	pool      *connPool
	limit     int64
	// respTimeout is Config.ResponseTimeout.
	respTimeout time.Duration
	// authorization is the Authorization header of requests that are not
	// anonymous ("" for none).
	authorization string
	// httpsOnly refuses http:// endpoints (certificate auth).
	httpsOnly bool
	// authorize, when set, makes the Authorization header of each request
	// that is not anonymous (Kerberos: a new token per request), and a
	// check of the reply (Kerberos: the host's mutual authentication). An
	// error from authorize fails the request before anything is sent; one
	// from check fails it after the reply.
	authorize func(endpoint) (authorization string, check func(*Response) error, err error)
	name      string
}

func newHTTPPost(cfg Config, name, authorization string, httpsOnly bool) (*httpPost, error) {
	d, err := cfg.newDialer()
	if err != nil {
		return nil, fmt.Errorf("%s auth: %w", name, err)
	}
	return &httpPost{
		pool:          newConnPool(d, cfg),
		limit:         cfg.maxResponseBytes(),
		respTimeout:   cfg.ResponseTimeout,
		authorization: authorization,
		httpsOnly:     httpsOnly,
		name:          name,
	}, nil
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
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.User+":"+cfg.Password))
	return newHTTPPost(cfg, "basic", auth, false)
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
	return newHTTPPost(cfg, "certificate", secprofileMutual, true)
}

// RoundTrip posts req.Body and returns the reply whatever its status.
func (p *httpPost) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	var buf [4]header
	ep, hdrs, err := p.endpoints.prepare(req, buf[:0])
	if err != nil {
		return nil, err
	}
	if p.httpsOnly && !ep.https {
		return nil, &notSentError{fmt.Errorf("%s auth to %s: needs an https:// endpoint", p.name, ep.hostHeader)}
	}
	var check func(*Response) error
	switch {
	case req.Anonymous:
	case p.authorize != nil:
		var a string
		a, check, err = p.authorize(ep)
		if err != nil {
			return nil, &notSentError{err}
		}
		hdrs = append(hdrs, header{"Authorization", a})
	case p.authorization != "":
		hdrs = append(hdrs, header{"Authorization", p.authorization})
	}
	resp, err := p.pool.exchange(ctx, ep, hdrs, ContentTypeSOAP, req.Body, p.limit, p.respTimeout)
	if err == nil && check != nil {
		if err := check(resp); err != nil {
			return nil, err
		}
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
func (p *httpPost) CloseIdleConnections() { p.pool.closeIdle() }
