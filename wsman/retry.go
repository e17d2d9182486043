package wsman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// RetryPolicy says how often and how patiently a Client repeats a call that
// failed on a passing condition. Only calls that are safe to repeat are
// repeated: Identify, Get, Enumerate and Release (and Invoke of a method
// the caller declares idempotent with Options.Idempotent) on connection
// errors, garbled or truncated replies, 502/503/504, w:TimedOut and
// w:InternalError; Pull on failures that show the host never saw it (its
// enumeration context moves with every answer, so a lost reply cannot be
// asked for again; such a failure ends the enumeration, and callers that
// collect the items start it over) and on w:TimedOut. Put, Create, Delete and Invoke are
// repeated only when the request provably never reached WinRM (no
// connection, HTTP 503 from HTTP.sys); when it may have been carried out,
// the error matches ErrAmbiguous and the caller decides.
//
// The pause before attempt n+1 is Base·2^(n-1), capped at Max, with the
// upper half jittered so that a fleet does not retry in step; a 503's
// Retry-After replaces it, and one longer than Max ends the retries.
type RetryPolicy struct {
	// Attempts is the most tries of one call, the first included: 0 means
	// DefaultRetry.Attempts, 1 turns retrying off.
	Attempts int
	// Base is the first pause (0: DefaultRetry.Base).
	Base time.Duration
	// Max caps a pause and the Retry-After honoured (0: DefaultRetry.Max).
	Max time.Duration
}

// DefaultRetry is the policy of a Client whose Retry is the zero value.
var DefaultRetry = RetryPolicy{Attempts: 4, Base: 200 * time.Millisecond, Max: 10 * time.Second}

// NoRetry turns retrying off.
var NoRetry = RetryPolicy{Attempts: 1}

// WithDefaults returns p with zero fields replaced by DefaultRetry's, as
// the Client applies it; callers that retry at a higher level (a whole
// listing, a CreateJob checked by its marker) use it to stay in step.
func (p RetryPolicy) WithDefaults() RetryPolicy { return p.withDefaults() }

// Pause returns the jittered wait before the attempt after the n-th
// failure (n >= 1) under p with its defaults applied.
func (p RetryPolicy) Pause(n int) time.Duration {
	d, _ := p.withDefaults().pause(n, 0)
	return d
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetry.Attempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetry.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultRetry.Max
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	return p
}

// pause is the wait before the attempt after the n-th failure (n >= 1);
// ok is false when the host asked for a longer wait than Max.
func (p RetryPolicy) pause(n int, retryAfter time.Duration) (d time.Duration, ok bool) {
	if retryAfter > 0 {
		if retryAfter > p.Max {
			return 0, false
		}
		return retryAfter, true
	}
	d = p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(half+1), true
}

// ErrAmbiguous means a call that is not safe to repeat (Put, Create,
// Delete, Invoke) failed in a way that leaves open whether the host
// carried it out: the connection broke after the request was sent, the
// reply was cut, garbled or not ours, or the operation timed out. Check
// the host's state before sending it again.
var ErrAmbiguous = errors.New("outcome unknown: the host may have carried out the request")

// AmbiguousError wraps the failure of a call that may have been carried
// out; it matches ErrAmbiguous and the underlying error (a *Fault, an
// *HTTPError, a connection error).
type AmbiguousError struct {
	Err error
}

// Error is the underlying error followed by the warning.
func (e *AmbiguousError) Error() string {
	return e.Err.Error() + " (" + ErrAmbiguous.Error() + ")"
}

// Unwrap returns the underlying error and ErrAmbiguous.
func (e *AmbiguousError) Unwrap() []error { return []error{e.Err, ErrAmbiguous} }

// IsAmbiguous reports whether err says a non-idempotent call may or may
// not have been carried out.
func IsAmbiguous(err error) bool { return errors.Is(err, ErrAmbiguous) }

// failure is what a failed attempt tells about the host and the request.
type failure struct {
	// notSent: the request provably never reached WinRM; any call may be
	// sent again.
	notSent bool
	// transient: a passing condition; an idempotent call may be repeated.
	transient bool
	// ambiguous: the request may have been carried out.
	ambiguous bool
}

// IsTransient reports whether err is a passing condition after which
// repeating a call that is safe to repeat may succeed: a connection
// refused, reset or timed out, a reply cut short, garbled or not matching
// the request, HTTP 502/503/504, or a w:TimedOut or w:InternalError fault.
// Authentication failures, other faults, oversized replies and bad
// configuration are not.
func IsTransient(err error) bool {
	f := classifyFailure(err)
	return f.transient || f.notSent
}

func classifyFailure(err error) failure {
	switch {
	case err == nil:
		return failure{}
	case errors.Is(err, transport.ErrHostNotProven) && !errors.Is(err, transport.ErrNotSent):
		// A reply that failed Kerberos mutual authentication came after
		// the request went out: never repeated, and the request may have
		// been carried out by whoever answered.
		return failure{ambiguous: true}
	case errors.Is(err, transport.ErrAuthentication), errors.Is(err, transport.ErrEncryptionRequired),
		errors.Is(err, transport.ErrResponseTooLarge), errors.Is(err, ErrReplyTooLarge),
		errors.Is(err, ErrAuth), errors.Is(err, ErrEnvelopeTooLarge):
		return failure{}
	case errors.Is(err, context.Canceled):
		// The caller gave up: never repeated, but the request may have
		// gone out.
		return failure{ambiguous: !errors.Is(err, transport.ErrNotSent)}
	case errors.Is(err, context.DeadlineExceeded):
		// A timeout waiting for the reply (net/http's response-header
		// timeout matches DeadlineExceeded too). withRetry never repeats
		// once the caller's own context has ended.
		if errors.Is(err, transport.ErrNotSent) {
			return failure{notSent: true, transient: true}
		}
		return failure{transient: true, ambiguous: true}
	}
	var f *Fault
	if errors.As(err, &f) {
		switch f.Subcode {
		case "TimedOut":
			// The operation ran out of time on the host; it may still finish.
			return failure{transient: true, ambiguous: true}
		case "InternalError":
			// A definite answer, but often a passing one (a provider host
			// restarting).
			return failure{transient: true}
		}
		return failure{}
	}
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.StatusCode == http.StatusServiceUnavailable:
			// HTTP.sys (or a proxy) refusing the request: WinRM never saw it.
			return failure{notSent: true, transient: true}
		case he.StatusCode == http.StatusBadGateway, he.StatusCode == http.StatusGatewayTimeout:
			return failure{transient: true, ambiguous: true}
		case errors.Is(he.Kind, ErrProtocol):
			return failure{transient: true, ambiguous: true}
		case he.StatusCode == http.StatusInternalServerError && he.BodyStart == "":
			// Windows answers a message it will not take (an unsealed one
			// under AllowUnencrypted=false) with a bare 500 before WinRM
			// dispatches it: sending the same message again gets the same
			// answer, so it is not retried. It stays ambiguous so that a
			// CreateJob still looks for its marker rather than trusting this.
			return failure{ambiguous: true}
		}
		return failure{}
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, transport.ErrUnsealedReply) {
		return failure{transient: true, ambiguous: true}
	}
	if netFailure(err) {
		if errors.Is(err, transport.ErrNotSent) || dialFailure(err) {
			return failure{notSent: true, transient: true}
		}
		return failure{transient: true, ambiguous: true}
	}
	// Anything else (a bad endpoint URL, a TLS certificate refused) will
	// not change by trying again; whether it was sent is unknown.
	return failure{ambiguous: !errors.Is(err, transport.ErrNotSent)}
}

// netFailure reports a connection-level error.
func netFailure(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// net/http reports some broken connections only in text.
	s := err.Error()
	return strings.Contains(s, "server closed") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "malformed HTTP")
}

// dialFailure reports a failure to connect, before anything was written.
func dialFailure(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// retryAfter is the Retry-After of a 503 carried by err, or 0.
func retryAfter(err error) time.Duration {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 10.2.3). Anything else, or a time past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retryMode says which failures of a call may be repeated.
type retryMode int

const (
	// retryUnsafe: Put, Create, Delete, Invoke; only never-sent requests.
	retryUnsafe retryMode = iota
	// retryIdempotent: Identify, Get, Enumerate, Release.
	retryIdempotent
	// retryCursor: Pull; a lost reply moved the cursor, so only requests
	// the host never saw are repeated here (the Pull loop repeats
	// w:TimedOut, "no data yet", at once).
	retryCursor
)

// withRetry runs once until it succeeds, fails for good, or the policy
// or ctx says stop. A final failure of a retryUnsafe call that may have
// been carried out is returned as an *AmbiguousError.
func (c *Client) withRetry(ctx context.Context, mode retryMode, once func() error) error {
	pol := c.Retry.withDefaults()
	for attempt := 1; ; attempt++ {
		err := once()
		if err == nil {
			return nil
		}
		f := classifyFailure(err)
		again := f.notSent
		switch mode {
		case retryIdempotent:
			again = again || f.transient
		}
		final := func() error {
			if mode == retryUnsafe && f.ambiguous {
				return &AmbiguousError{Err: err}
			}
			return err
		}
		if !again || attempt >= pol.Attempts || ctx.Err() != nil {
			return final()
		}
		d, ok := pol.pause(attempt, retryAfter(err))
		if !ok {
			return final()
		}
		if dl, has := ctx.Deadline(); has && time.Until(dl) < d {
			return final()
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return final()
		case <-t.C:
		}
	}
}

// ErrReplyTooLarge means a reply was larger than the MaxEnvelopeSize the
// request announced, which a WS-Management service must never send.
var ErrReplyTooLarge = errors.New("reply larger than the MaxEnvelopeSize sent")

// checkReplySize refuses a plaintext reply above the MaxEnvelopeSize we
// sent (the transport has already bounded what it read).
func (c *Client) checkReplySize(body []byte) error {
	limit := c.MaxEnvelopeSize
	if limit <= 0 {
		limit = DefaultMaxEnvelopeSize
	}
	if len(body) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrReplyTooLarge, len(body), limit)
	}
	return nil
}
