package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"usage", usageErrorf("bad flag"), ExitUsage},
		{"wrapped usage", fmt.Errorf("x: %w", usageErrorf("bad")), ExitUsage},
		{"job failed", &JobFailedError{Host: "h", JobID: "{1}", Reason: "cancelled"}, ExitJobFailed},
		{"explicit", &exitError{code: ExitConnection, err: errors.New("x")}, ExitConnection},
		{"http 401", &wsman.HTTPError{Host: "h", StatusCode: 401, Kind: wsman.ErrAuth}, ExitAuth},
		{"ErrAuth wrapped", fmt.Errorf("get: %w", wsman.ErrAuth), ExitAuth},
		{"ntlm handshake refused", fmt.Errorf("ntlm handshake: %w", transport.ErrAuthentication), ExitAuth},
		{"unsealed reply", fmt.Errorf("post: %w", transport.ErrUnsealedReply), ExitFault},
		{"reply above MaxEnvelopeSize", fmt.Errorf("get on h: %w: 200000 bytes, limit 153600", wsman.ErrReplyTooLarge), ExitFault},
		{"http 403", &wsman.HTTPError{StatusCode: 403}, ExitAuth},
		{"http 407 from a forwarding proxy", &wsman.HTTPError{StatusCode: 407}, ExitAuth},
		{"proxy wants credentials for CONNECT", fmt.Errorf("post to h: proxy p refused CONNECT h:5986: HTTP 407: %w", transport.ErrProxyAuthentication), ExitAuth},
		{"proxy refuses the tunnel", fmt.Errorf("post to h: proxy p refused CONNECT h:5986: HTTP 403: %w", transport.ErrProxyRefused), ExitConnection},
		{"http 503", &wsman.HTTPError{StatusCode: 503}, ExitConnection},
		{"http 502", &wsman.HTTPError{StatusCode: 502}, ExitConnection},
		{"http 500 not soap", &wsman.HTTPError{StatusCode: 500}, ExitFault},
		{"http 413", &wsman.HTTPError{StatusCode: 413, Kind: wsman.ErrEnvelopeTooLarge}, ExitFault},
		{"fault", &wsman.Fault{Code: "Sender", Subcode: "InvalidSelectors", WSManCode: wsman.CodeInvalidSelectors}, ExitFault},
		{"fault access denied subcode", &wsman.Fault{Code: "Sender", Subcode: "AccessDenied", WSManCode: 5}, ExitAuth},
		{"fault E_ACCESSDENIED", &wsman.Fault{Code: "Receiver", Subcode: "InternalError", WSManCode: 0x80070005}, ExitAuth},
		{"fault WBEM_E_ACCESS_DENIED", &wsman.Fault{Code: "Receiver", WSManCode: 0x80041003}, ExitAuth},
		{"not found wraps fault", &bitsprov.NotFoundError{Host: "h", Op: "Get", Key: "{X}", Err: &wsman.Fault{Subcode: "DestinationUnreachable", SubcodeNS: wsman.NsAddressing}}, ExitFault},
		{"return error", &bitsprov.ReturnError{Host: "h", Method: "SetJobState", Code: 0x80200002}, ExitFault},
		{"return access denied", &bitsprov.ReturnError{Method: "CreateJob", Code: 0x80070005}, ExitAuth},
		{"setup error", &bitsprov.SetupError{Host: "h", JobID: "{1}", Step: "AddFile", Err: &bitsprov.ReturnError{Code: 0x8020001C}}, ExitFault},
		{"protocol", fmt.Errorf("h: Get: %w", wsman.ErrProtocol), ExitFault},
		{"too large", &transport.SizeError{Limit: 10}, ExitFault},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ExitConnection},
		{"dns", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, ExitConnection},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), ExitConnection},
		{"unknown CA", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), ExitConnection},
		{"hostname", x509.HostnameError{Host: "h"}, ExitConnection},
		{"encryption required", fmt.Errorf("h: %w", transport.ErrEncryptionRequired), ExitConnection},
		{"closed without an answer", fmt.Errorf("post to h: %w", io.EOF), ExitConnection},
		// net/http's unexported errServerClosedIdle, known by its text.
		{"server closed idle connection", fmt.Errorf("get on h: post to h: %w", errors.New("http: server closed idle connection")), ExitConnection},
		{"reply cut short", &url.Error{Op: "Post", URL: "http://h/wsman", Err: io.ErrUnexpectedEOF}, ExitConnection},
		{"ambiguous reset", &wsman.AmbiguousError{Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}, ExitConnection},
		{"ambiguous fault", &wsman.AmbiguousError{Err: &wsman.Fault{Subcode: "InternalError"}}, ExitFault},
		{"other", errors.New("something else"), ExitJobFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		codes []int
		want  int
	}{
		{nil, 0},
		{[]int{0, 0}, 0},
		{[]int{0, 1, 0}, 1},
		{[]int{4, 1, 5, 0}, 5},
		{[]int{2, 3}, 3},
	}
	for _, tt := range tests {
		if got := worst(tt.codes...); got != tt.want {
			t.Errorf("worst(%v) = %d, want %d", tt.codes, got, tt.want)
		}
	}
}

func TestDisplayJobDescription(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nightly [bitsremote:0b6e1c1e-4a47-4b55-9d35-0f4f3f1a2b3c]", "nightly"},
		{"[bitsremote:0b6e1c1e-4a47-4b55-9d35-0f4f3f1a2b3c]", ""},
		{"backup [daily]", "backup [daily]"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		j := &bitsprov.Job{Description: tt.in}
		if got := displayJob(j).Description; got != tt.want {
			t.Errorf("displayJob(%q).Description = %q, want %q", tt.in, got, tt.want)
		}
		if j.Description != tt.in {
			t.Errorf("displayJob changed its argument")
		}
	}
}

// TestUnencryptedRefusedHint: Windows answers a message sent unsealed to
// a host that requires encryption with a bare HTTP 500; the CLI says what
// that likely means, and only when the message did go unencrypted.
func TestUnencryptedRefusedHint(t *testing.T) {
	h := newSimHost(t) // RequireEncryption, like AllowUnencrypted=false
	host := h.hostArg()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ntlm --encryption never", []string{"--encryption", "never"},
			"bitsremote: " + host + ": Enumerate: HTTP 500: " + hintUnencryptedRefused + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, withPassword(), append([]string{"list", "-H", host, "-u", testUser, "--retries", "0"}, tc.args...)...)
			if r.code != ExitFault || r.stderr != tc.want {
				t.Errorf("exit %d stderr %q\nwant 5, %q", r.code, r.stderr, tc.want)
			}
		})
	}
	t.Run("sealed: no hint", func(t *testing.T) {
		wc := wsman.NewClient("http://"+host+"/wsman", mustTransport(t, transport.Config{Auth: transport.AuthNTLM, User: testUser, Password: testPassword}))
		err := &wsman.HTTPError{Host: host, Operation: "Get", StatusCode: 500}
		if got := explain(wc, err); got != error(err) {
			t.Errorf("explain over a sealed transport = %v, want the error unchanged", got)
		}
		plain := wsman.NewClient("http://"+host+"/wsman", mustTransport(t, transport.Config{Auth: transport.AuthNTLM, User: testUser, Password: testPassword, Encryption: transport.EncryptionNever}))
		if got := explain(plain, &wsman.HTTPError{Host: host, Operation: "Get", StatusCode: 500, BodyStart: "<html>proxy error</html>"}); ExitCode(got) != ExitFault || strings.Contains(got.Error(), "AllowUnencrypted") {
			t.Errorf("a 500 with a body got the hint: %v", got)
		}
	})
}

func mustTransport(t *testing.T, cfg transport.Config) transport.Transport {
	t.Helper()
	tr, err := transport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
