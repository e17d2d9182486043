// Package transport carries WS-Management envelopes over HTTP(S).
//
// A Transport sends one SOAP envelope and returns the raw reply. It owns
// authentication (Basic, NTLM, certificates), HTTP message encryption, TLS,
// proxies, timeouts and the size limit on replies. It knows nothing of SOAP:
// classifying a reply (fault, 401, 413, non-SOAP body) is the job of package
// wsman, which sees every status code because transports return replies of
// any status as a *Response, not as an error.
//
// Transports compose like http.RoundTripper: recording and replay are
// Transports that wrap another one.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Request is one envelope to post to an endpoint.
type Request struct {
	// URL is the endpoint, for example http://host:5985/wsman.
	URL string
	// Body is the plaintext SOAP envelope (UTF-8).
	Body []byte
	// Header holds extra HTTP headers, such as WSMANIDENTIFY for an
	// unauthenticated Identify. Content-Type is set by the transport.
	Header http.Header
	// Anonymous asks the transport to send no credentials (Identify).
	Anonymous bool
	// Idempotent says the message may safely reach the host twice (a
	// read: Identify, Get, Enumerate, Pull, Release). Only then may a
	// transport send it again after a failure that leaves open whether the
	// host received it; other messages are resent only when provably
	// nothing of them was written.
	Idempotent bool
}

// Response is the reply to one Request, whatever its HTTP status.
type Response struct {
	StatusCode int
	// Header is the HTTP header of the reply.
	Header http.Header
	// ContentType is the media type of Body after any decryption: a
	// decrypted multipart/encrypted reply reports its OriginalContent type.
	ContentType string
	// Body is the plaintext reply body. It belongs to the caller: no
	// transport keeps, reuses or changes it after returning it, so package
	// wsman reads it in place and lets parsed strings point into it.
	// Transports that wrap another one must keep this promise too.
	Body []byte
	// Encrypted reports whether the reply arrived sealed.
	Encrypted bool
}

// Transport sends envelopes. Implementations are safe for concurrent use.
type Transport interface {
	RoundTrip(ctx context.Context, req *Request) (*Response, error)
}

// Func adapts a function to a Transport.
type Func func(ctx context.Context, req *Request) (*Response, error)

// RoundTrip calls f.
func (f Func) RoundTrip(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// DefaultMaxResponseBytes bounds a reply body when no limit is configured.
// Windows never sends more than MaxEnvelopeSize (150-500 KiB by default), so
// 16 MiB leaves room for large enumerations while still stopping a runaway
// peer from exhausting memory.
const DefaultMaxResponseBytes = 16 << 20

// ErrResponseTooLarge is returned when a reply body exceeds the limit. The
// transport stops reading at the limit; it never buffers the whole body.
var ErrResponseTooLarge = errors.New("response body exceeds the size limit")

// ErrEncryptionRequired is returned when encryption is required but could not
// be set up (for example the handshake failed); nothing was sent unsealed.
var ErrEncryptionRequired = errors.New("message encryption is required but no sealed session could be established")

// ErrNotSent marks a failure that happened before any byte of the
// request body left the client (no connection, a failed handshake): the
// host cannot have acted on the message, so even a non-idempotent one may
// be sent again.
var ErrNotSent = errors.New("the request was not sent")

// SizeError reports a reply body larger than the limit.
type SizeError struct {
	Limit int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("response body exceeds the limit of %d bytes", e.Limit)
}

// Unwrap makes errors.Is(err, ErrResponseTooLarge) true.
func (e *SizeError) Unwrap() error { return ErrResponseTooLarge }

// Confidential is implemented by transports that know whether a body they
// send to an endpoint is hidden from the network, by TLS or by message
// encryption. Callers about to send a secret in a body (a BITS job's
// server password) ask IsConfidential first.
type Confidential interface {
	Confidential(endpoint string) bool
}

// IsConfidential reports whether t keeps a body sent to endpoint from
// eavesdroppers. An https:// endpoint always does. Otherwise t must say
// so through Confidential; known is false when it cannot tell (a wrapper
// from another package), and the caller decides.
func IsConfidential(t Transport, endpoint string) (confidential, known bool) {
	if u, err := url.Parse(endpoint); err == nil && strings.EqualFold(u.Scheme, "https") {
		return true, true
	}
	if c, ok := t.(Confidential); ok {
		return c.Confidential(endpoint), true
	}
	return false, false
}
