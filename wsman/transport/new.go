package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// New builds the Transport that cfg describes:
//
//   - Basic, certificate and none: NewBasic, NewCertificate, or a transport
//     that never sends credentials. They cannot seal, so Encryption=Always
//     is an error (pywinrm refuses the same way).
//   - NTLM with Encryption=Never: NewNTLM. With Always: NewNTLMEncrypted.
//     With Auto: sealed (NewNTLMEncrypted) for http:// endpoints and plain
//     NTLM for https:// ones, chosen per request URL; each is built on first
//     use.
//   - Kerberos: NewKerberos, with the same choice: sealed
//     (NewKerberosEncrypted) for http:// with Auto and everywhere with
//     Always, a token per request and no sealing over https:// with Auto
//     and everywhere with Never.
func New(cfg Config) (Transport, error) {
	switch cfg.Auth {
	case AuthBasic:
		return NewBasic(cfg)
	case AuthCertificate:
		return NewCertificate(cfg)
	case AuthNone:
		return newAnonymous(cfg)
	case AuthKerberos:
		return NewKerberos(cfg)
	case AuthNTLM:
		switch cfg.Encryption {
		case EncryptionNever:
			return NewNTLM(cfg)
		case EncryptionAlways:
			return NewNTLMEncrypted(cfg)
		case EncryptionAuto:
			if cfg.User == "" {
				return nil, errors.New("ntlm auth: a user name is required")
			}
			// Check the TLS and proxy settings now rather than on the
			// first request.
			if _, err := cfg.newDialer(); err != nil {
				return nil, fmt.Errorf("ntlm auth: %w", err)
			}
			return &autoTransport{cfg: cfg, newSealed: NewNTLMEncrypted, newTLS: NewNTLM}, nil
		}
		return nil, fmt.Errorf("unknown encryption mode %v", cfg.Encryption)
	}
	return nil, fmt.Errorf("unknown auth method %v", cfg.Auth)
}

// newAnonymous is AuthNone: no credentials on any request (Identify).
func newAnonymous(cfg Config) (Transport, error) {
	if cfg.Encryption == EncryptionAlways {
		return nil, errors.New("unauthenticated requests cannot be encrypted")
	}
	return newHTTPPost(cfg, "none", "", false)
}

// autoTransport is Encryption=Auto: it seals over http:// and relies on
// TLS over https://, with a transport for each built on first use.
type autoTransport struct {
	cfg               Config
	newSealed, newTLS func(Config) (Transport, error)
	mu                sync.Mutex
	sealed, tls       Transport
}

func (a *autoTransport) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	u, err := parseEndpoint(req.URL)
	if err != nil {
		return nil, err
	}
	t, err := a.pick(strings.ToLower(u.Scheme))
	if err != nil {
		return nil, err
	}
	return t.RoundTrip(ctx, req)
}

func (a *autoTransport) pick(scheme string) (Transport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	switch scheme {
	case "https":
		if a.tls == nil {
			a.tls, err = a.newTLS(a.cfg)
		}
		return a.tls, err
	case "http":
		if a.sealed == nil {
			a.sealed, err = a.newSealed(a.cfg)
		}
		return a.sealed, err
	}
	return nil, fmt.Errorf("endpoint scheme %q: must be http or https", scheme)
}

// Confidential is true: http:// is sealed and https:// is TLS.
func (a *autoTransport) Confidential(endpoint string) bool {
	_, err := parseEndpoint(endpoint)
	return err == nil
}

// CloseIdleConnections closes the idle connections of both transports.
func (a *autoTransport) CloseIdleConnections() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range []Transport{a.sealed, a.tls} {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}
