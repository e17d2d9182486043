package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// ContentTypeSOAP is the media type of a plaintext WS-Management request. Windows
// answers 415 to anything else (wsman-wire.md §1.1).
const ContentTypeSOAP = "application/soap+xml;charset=UTF-8"

// DefaultDialTimeout bounds connecting when Config.DialTimeout is zero.
const DefaultDialTimeout = 30 * time.Second

// tlsConfig builds the client TLS settings from the CA file, client
// certificate and verification choices.
func (c Config) tlsConfig() (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // only when the user asks, and the CLI warns.
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates found", c.CAFile)
		}
		conf.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, errors.New("client certificate: both CertFile and KeyFile are required")
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", c.CertFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
		// Windows asks for the client certificate through renegotiation
		// when the listener maps certificates per URL.
		conf.Renegotiation = tls.RenegotiateOnceAsClient
	}
	return conf, nil
}

// maxResponseBytes is the configured reply limit or the default.
func (c Config) maxResponseBytes() int64 {
	if c.MaxResponseBytes > 0 {
		return c.MaxResponseBytes
	}
	return DefaultMaxResponseBytes
}

// readBody reads all of r up to limit bytes. A longer body yields a
// *SizeError after reading at most limit+1 bytes, and the buffer never grows
// past limit+1 bytes, so a peer streaming without end cannot exhaust memory.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	return readBodySized(r, limit, -1)
}

// readBodySized is readBody with the announced length (Content-Length, or
// -1) as a hint for the first allocation.
func readBodySized(r io.Reader, limit, size int64) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	ceiling := limit + 1
	c := int64(512)
	if size >= 0 {
		c = size + 1 // +1 to see EOF without growing
	}
	buf := make([]byte, 0, min(c, ceiling))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= ceiling {
				return nil, &SizeError{Limit: limit}
			}
			grown := make([]byte, len(buf), min(int64(cap(buf))*2, ceiling))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if int64(len(buf)) > limit {
				return nil, &SizeError{Limit: limit}
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseEndpoint checks an endpoint URL. Its errors never repeat a password
// written into the URL, and such URLs are refused: credentials belong in
// Config, where they are kept out of logs and recordings.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		shown := raw
		if strings.Contains(raw, "@") {
			shown = "(URL with credentials)"
		}
		return nil, fmt.Errorf("endpoint %s: %w", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("endpoint %s: no host", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("endpoint %s: credentials in the URL are not accepted; set the user and password instead", u.Redacted())
	}
	return u, nil
}

// ctxErr makes sure a failure caused by the context satisfies
// errors.Is(err, ctx.Err()). net/http usually wraps it already, but some
// paths (a body read cut short) only say "canceled".
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
