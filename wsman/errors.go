package wsman

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors for what callers must tell apart; the typed errors below
// wrap them so errors.Is works.
var (
	// ErrAuth means the host refused our credentials (HTTP 401).
	ErrAuth = errors.New("authentication failed")
	// ErrEnvelopeTooLarge means the host refused the request size (HTTP 413).
	ErrEnvelopeTooLarge = errors.New("request envelope too large for the host (MaxEnvelopeSizekb)")
	// ErrProtocol means the reply was not what WS-Management promises
	// (wrong RelatesTo, wrong Action, not SOAP).
	ErrProtocol = errors.New("protocol violation")
)

// HTTPError is a reply that is not a SOAP envelope: a proxy's 502 page, a
// 401, a 413, an empty 500. It shows the status and the start of the body.
type HTTPError struct {
	Host       string
	Operation  string
	StatusCode int
	Status     string
	// BodyStart is at most the first 512 bytes of the body, as text.
	BodyStart string
	// Kind is ErrAuth, ErrEnvelopeTooLarge, an error wrapping ErrProtocol
	// (a 200 reply that is not SOAP), or nil.
	Kind error
	// RetryAfter is the reply's Retry-After (a 503's hint), or 0.
	RetryAfter time.Duration
}

// Error renders "host: operation: HTTP status (why): body start".
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s: %s: HTTP %d", e.Host, e.Operation, e.StatusCode)
	switch {
	case errors.Is(e.Kind, ErrAuth):
		s += " (authentication failed: check the user, the password and the auth method)"
	case errors.Is(e.Kind, ErrEnvelopeTooLarge):
		s += " (request envelope too large for the host)"
	case e.Kind != nil:
		s += " (" + e.Kind.Error() + ")"
	}
	if e.BodyStart != "" {
		s += ": " + e.BodyStart
	}
	return s
}

// Unwrap returns Kind so errors.Is(err, ErrAuth) works.
func (e *HTTPError) Unwrap() error { return e.Kind }
