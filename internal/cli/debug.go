package cli

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// debugTransport logs every exchange for --debug. It sits above the
// authenticating transport, so it sees plaintext envelopes but never the
// Authorization header the transport adds; password values inside bodies
// (SetCredentials) are blanked before logging.
type debugTransport struct {
	next transport.Transport
	log  *slog.Logger
	host string
}

// RoundTrip logs the request, sends it, and logs the reply or the error.
func (d *debugTransport) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	start := time.Now()
	d.log.Debug("request", "host", d.host, "url", req.URL, "anonymous", req.Anonymous,
		"header", redactHeader(req.Header), "body", string(redactBody(req.Body)))
	resp, err := d.next.RoundTrip(ctx, req)
	if err != nil {
		d.log.Debug("request failed", "host", d.host, "elapsed", time.Since(start), "err", err)
		return resp, err
	}
	d.log.Debug("response", "host", d.host, "status", resp.StatusCode, "encrypted", resp.Encrypted,
		"elapsed", time.Since(start), "contentType", resp.ContentType, "body", string(redactBody(resp.Body)))
	return resp, nil
}

// Confidential passes the wrapped transport's answer through, so that
// bitsprov's refusal to send a job password in clear still works under
// --debug. A transport that cannot tell counts as not confidential.
func (d *debugTransport) Confidential(endpoint string) bool {
	ok, _ := transport.IsConfidential(d.next, endpoint)
	return ok
}

// CloseIdleConnections passes through to the wrapped transport.
func (d *debugTransport) CloseIdleConnections() {
	if c, ok := d.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// passwordElement matches the text of any element whose local name ends in
// "Password" (SetCredentials' Password, and anything like it).
var passwordElement = regexp.MustCompile(`(?i)(<(?:[\w.-]+:)?[\w.-]*password\b[^>]*>)[^<]*(</)`)

// redactBody blanks password element text.
func redactBody(b []byte) []byte {
	return passwordElement.ReplaceAll(b, []byte("${1}REDACTED${2}"))
}

// redactHeader drops credentials from a header copy.
func redactHeader(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	c := h.Clone()
	for _, k := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		if c.Get(k) != "" {
			c.Set(k, "REDACTED")
		}
	}
	return c
}
