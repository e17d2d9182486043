package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	ntlmssp "github.com/Azure/go-ntlmssp"
)

// NewNTLM returns a Transport that authenticates with NTLM (NTLMv2, through
// Azure/go-ntlmssp) and does not seal messages. Use it over https://, or
// against hosts with AllowUnencrypted=true; a default Windows host refuses
// unsealed messages over http:// with a bare 500 (NewNTLMEncrypted seals).
//
// NTLM authenticates a connection, not a request, so the transport keeps one
// connection per host (MaxConnsPerHost 1) and lets one request at a time
// through: the handshake runs once per connection and later requests go out
// without credentials on the authenticated connection. User may be "user",
// "DOMAIN\user" or "user@realm".
//
// Through an http:// proxy each request may reach the host on another
// connection, which breaks NTLM; an https:// endpoint is tunnelled with
// CONNECT and works.
//
// Encryption=Always is refused; Auto and Never both mean "do not seal" here
// (New picks NewNTLMEncrypted where Auto calls for sealing).
func NewNTLM(cfg Config) (Transport, error) {
	if cfg.User == "" {
		return nil, errors.New("ntlm auth: a user name is required")
	}
	if cfg.Encryption == EncryptionAlways {
		// Asked to seal, this transport would send every body in clear.
		return nil, errors.New("ntlm auth: NewNTLM never seals; use NewNTLMEncrypted (or New) for encryption always")
	}
	cfg.MaxConnsPerHost = 1
	cfg.MaxIdleConnsPerHost = 1
	t, err := cfg.httpTransport()
	if err != nil {
		return nil, fmt.Errorf("ntlm auth: %w", err)
	}
	user, pass := cfg.User, cfg.Password
	return &httpPost{
		rt:        ntlmssp.Negotiator{RoundTripper: release401{t}},
		transport: t,
		limit:     cfg.maxResponseBytes(),
		authorize: func(r *http.Request) { r.SetBasicAuth(user, pass) },
		serial:    make(chan struct{}, 1),
		name:      "ntlm",
	}, nil
}

// max401Body bounds the body of a 401 buffered during the NTLM handshake;
// Windows sends none.
const max401Body = 64 << 10

// release401 reads and closes the body of every 401 at once. The negotiator
// keeps the first 401 open while it sends the next leg, and with one
// connection per host that leg would wait forever for the connection the
// open body holds.
type release401 struct{ next http.RoundTripper }

func (r release401) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body, max401Body)
	if err != nil {
		return nil, fmt.Errorf("read 401 reply from %s: %w", req.URL.Host, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
