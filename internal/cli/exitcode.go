package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// Exit codes (DESIGN.md "Exit codes"). Scripts rely on them; never renumber.
const (
	// ExitOK: everything asked for was done.
	ExitOK = 0
	// ExitJobFailed: the operation ran but a job ended in error or was
	// cancelled (and any other failure that fits no other code).
	ExitJobFailed = 1
	// ExitUsage: bad flags, arguments or input files, found before talking
	// to a host.
	ExitUsage = 2
	// ExitAuth: the host refused our credentials or denied access.
	ExitAuth = 3
	// ExitConnection: could not connect, TLS failed, or a deadline passed.
	ExitConnection = 4
	// ExitFault: the host answered with a fault (including an unknown job
	// id and a provider method that returned an error code).
	ExitFault = 5
)

// UsageError is bad input found before any host was contacted.
type UsageError struct {
	Err error
	// showHelp adds "Run '… --help' for usage." (flag and argument
	// errors, not bad values in files).
	showHelp bool
}

// Error returns the message of the wrapped error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a *UsageError with a formatted message.
func usageErrorf(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// JobFailedError says a job ended in error or was cancelled: the commands
// ran, the outcome is bad.
type JobFailedError struct {
	Host  string
	JobID string
	// Reason says what happened ("job failed: BG_E_HTTP_ERROR_404 …; cancelled").
	Reason string
}

// Error reads "host: job {GUID}: reason".
func (e *JobFailedError) Error() string {
	return fmt.Sprintf("%s: job %s: %s", e.Host, e.JobID, e.Reason)
}

// exitError carries an explicit exit code with an error that was already
// reported (for example per host), so Execute prints nothing more.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// isAccessDenied reports E_ACCESSDENIED and WBEM_E_ACCESS_DENIED, which
// WinRM and WMI use for "authenticated, but not allowed" (for example a
// user who is not an administrator).
func isAccessDenied(code uint32) bool {
	return code == uint32(bitsprov.CodeAccessDenied) || code == uint32(bitsprov.CodeWBEMAccessDenied)
}

// returnErrorCode finds a provider method's failing ReturnValue in err.
func returnErrorCode(err error) (uint32, bool) {
	var re *bitsprov.ReturnError
	if errors.As(err, &re) {
		return re.Code, true
	}
	return 0, false
}

// ExitCode maps an error to the process exit code. It is the only place
// that decides; every command's error goes through it.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var jf *JobFailedError
	if errors.As(err, &jf) {
		return ExitJobFailed
	}
	if errors.Is(err, wsman.ErrAuth) || errors.Is(err, transport.ErrAuthentication) || errors.Is(err, transport.ErrProxyAuthentication) {
		return ExitAuth
	}
	if errors.Is(err, transport.ErrProxyRefused) {
		return ExitConnection
	}
	var f *wsman.Fault
	if errors.As(err, &f) {
		if f.Subcode == "AccessDenied" || isAccessDenied(f.WSManCode) {
			return ExitAuth
		}
		return ExitFault
	}
	if code, ok := returnErrorCode(err); ok {
		if isAccessDenied(code) {
			return ExitAuth
		}
		return ExitFault
	}
	var he *wsman.HTTPError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case 403, 407:
			// 407: a forwarding proxy wants credentials of its own.
			return ExitAuth
		case 502, 503, 504:
			// A gateway or a host that is not serving yet: the
			// connection failed, the host has not answered.
			return ExitConnection
		}
		return ExitFault
	}
	if errors.Is(err, wsman.ErrProtocol) || errors.Is(err, transport.ErrResponseTooLarge) ||
		errors.Is(err, wsman.ErrReplyTooLarge) || errors.Is(err, transport.ErrUnsealedReply) {
		// The host answered, but not with WS-Management we can use.
		return ExitFault
	}
	if isConnectionError(err) {
		return ExitConnection
	}
	return ExitJobFailed
}

// isConnectionError reports network, TLS and deadline failures.
func isConnectionError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, transport.ErrEncryptionRequired) || errors.Is(err, transport.ErrKDCUnreachable) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var (
		netErr   net.Error
		opErr    *net.OpError
		dnsErr   *net.DNSError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		verErr   *tls.CertificateVerificationError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	return errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.As(err, &recErr) || errors.As(err, &alertErr) || errors.As(err, &verErr) ||
		errors.As(err, &unkAuth) || errors.As(err, &hostErr) || errors.As(err, &invErr) ||
		// The host closed the connection without answering (a service
		// restarting, a proxy or load balancer dropping us, a kept-alive
		// connection closed under us: net/http's "server closed idle
		// connection", which only its message identifies, hence last).
		transport.IsConnectionClosed(err)
}

// worst returns the exit code that wins when several hosts report: the
// highest, so that one unreachable host is not hidden by others' success.
func worst(codes ...int) int {
	w := ExitOK
	for _, c := range codes {
		w = max(w, c)
	}
	return w
}

// hintUnencryptedRefused is what a bare HTTP 500 to a message that went
// unencrypted over http:// most likely means: Windows answers so when
// AllowUnencrypted=false (the default) and the message was not sealed.
const hintUnencryptedRefused = "the host refused an unencrypted message; it probably requires encryption (AllowUnencrypted=false): use --encryption auto (NTLM or Kerberos) or --https"

// hintError is an error with what it likely means appended; it matches
// everything the error does, so its exit code is the error's.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + ": " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// explain adds what err likely means when the error itself cannot say:
// an HTTP 500 with an empty body, in answer to a message this connection
// sent readable (no TLS, no message encryption), is the host refusing
// unencrypted messages. (wsman reports the bare status; only here are
// the connection and the flags to change known together.)
func explain(wc *wsman.Client, err error) error {
	var he *wsman.HTTPError
	if err == nil || wc == nil || !errors.As(err, &he) || he.StatusCode != http.StatusInternalServerError || he.BodyStart != "" {
		return err
	}
	if confidential, known := transport.IsConfidential(wc.Transport, wc.Endpoint); !known || confidential {
		return err
	}
	return &hintError{err: err, hint: hintUnencryptedRefused}
}
