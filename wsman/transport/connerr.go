package transport

import (
	"errors"
	"io"
	"strings"
	"syscall"
)

// serverClosedIdle is the text of net/http's errServerClosedIdle: a
// kept-alive connection the host closed (an idle timeout, a restart)
// just as a request went out on it. net/http retries such a request by
// itself only when it is idempotent by HTTP's rules, which a POST is not,
// so the error reaches us. The value is unexported, so it can only be
// recognised by its message, which has not changed since Go 1.6.
const serverClosedIdle = "http: server closed idle connection"

// IsConnectionClosed reports whether err says the host closed or reset
// the connection without answering: EOF or a cut-short reply, a reset, a
// broken pipe, or net/http's "server closed idle connection". Such a
// failure is a connection error, worth repeating for a request that is
// safe to repeat; whether the host saw the request is unknown.
func IsConnectionClosed(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	return strings.Contains(err.Error(), serverClosedIdle)
}
