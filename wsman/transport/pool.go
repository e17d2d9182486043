package transport

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// idleTimeout is how long an idle connection is kept. Windows closes idle
// WinRM connections after about two minutes; closing ours first avoids
// racing its close with a new request.
const idleTimeout = 90 * time.Second

// connPool keeps idle connections for transports whose requests any
// connection may carry (Basic, certificate, anonymous), keyed by endpoint.
type connPool struct {
	d       *dialer
	maxIdle int
	// sem bounds open connections (Config.MaxConnsPerHost); nil: no bound.
	sem chan struct{}

	mu   sync.Mutex
	idle []idleConn
}

type idleConn struct {
	key string
	h   *hconn
}

func newConnPool(d *dialer, cfg Config) *connPool {
	p := &connPool{d: d, maxIdle: cfg.MaxIdleConnsPerHost}
	if p.maxIdle <= 0 {
		p.maxIdle = 2
	}
	if cfg.MaxConnsPerHost > 0 {
		p.sem = make(chan struct{}, cfg.MaxConnsPerHost)
	}
	return p
}

// get returns an idle connection to ep that is still open, or a new one.
func (p *connPool) get(ctx context.Context, ep endpoint) (*hconn, error) {
	for {
		var h *hconn
		p.mu.Lock()
		for i := len(p.idle) - 1; i >= 0; i-- {
			if p.idle[i].key == ep.key {
				h = p.idle[i].h
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		if h == nil {
			return p.d.connect(ctx, ep)
		}
		if h.reusable(idleTimeout) {
			return h, nil
		}
		h.close()
	}
}

// put keeps h for the next request to key, unless it is broken or enough
// are kept already.
func (p *connPool) put(key string, h *hconn) {
	if h.broken {
		return
	}
	p.mu.Lock()
	n := 0
	for _, ic := range p.idle {
		if ic.key == key {
			n++
		}
	}
	if n < p.maxIdle {
		p.idle = append(p.idle, idleConn{key, h})
		h = nil
	}
	p.mu.Unlock()
	if h != nil {
		h.close()
	}
}

// acquire takes a connection slot when MaxConnsPerHost bounds them.
func (p *connPool) acquire(ctx context.Context, host string) (release func(), err error) {
	if p.sem == nil {
		return func() {}, nil
	}
	if !take(ctx, p.sem) {
		return nil, fmt.Errorf("post to %s: waiting for a connection: %w", host, ctx.Err())
	}
	return func() { <-p.sem }, nil
}

// take puts a token in sem, waiting for room until ctx ends, and reports
// whether it did. A free slot is taken without a blocking select: that
// select cost more than the rest of taking the slot, once per request.
func take(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, ic := range idle {
		ic.h.close()
	}
}

// exchange sends one request on a pooled connection. A failure before a
// byte was written is marked ErrNotSent. A kept-alive connection found
// closed by the host under the request (it closed it just as the request
// went out) is not retried here, whatever the request: package wsman's
// retry policy decides, with its backoff and its count of attempts.
func (p *connPool) exchange(ctx context.Context, ep endpoint, hdrs []header, contentType string, body []byte, limit int64, respTimeout time.Duration) (*Response, error) {
	release, err := p.acquire(ctx, ep.hostHeader)
	if err != nil {
		return nil, &notSentError{err}
	}
	defer release()
	h, err := p.get(ctx, ep)
	if err != nil {
		return nil, &notSentError{fmt.Errorf("post to %s: %w", ep.hostHeader, ctxErr(ctx, err))}
	}
	resp, err := h.roundTrip(ctx, ep, hdrs, contentType, body, limit, respTimeout)
	if err != nil {
		return nil, exchangeFailed(ctx, ep.hostHeader, err)
	}
	p.put(ep.key, h)
	return resp, nil
}

// requestHeaders turns req's extra headers into header lines, leaving out
// those the engine or the authentication writes itself. A name or value
// that would break the header block (a CR or LF, an invalid name) is
// refused rather than sent.
func requestHeaders(dst []header, h http.Header) ([]header, error) {
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Host", "Content-Type", "Content-Length", "Authorization", "Connection", "Transfer-Encoding", "User-Agent", "Proxy-Authorization":
			continue
		}
		if !isToken(ck) {
			return nil, fmt.Errorf("invalid request header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("request header %s: value contains a line break", ck)
			}
			if strings.IndexByte(v, 0) >= 0 {
				return nil, fmt.Errorf("request header %s: value contains a NUL byte", ck)
			}
			dst = append(dst, header{ck, v})
		}
	}
	return dst, nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of a field
// name: anything else could split or confuse the header block.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
