package transport

import (
	"context"
	"fmt"
	"net/http"

	"github.com/bitsremote/bitsremote/wsman/internal/krbseal"
)

// NewKerberosEncrypted returns a Transport that authenticates each
// connection with Kerberos and seals every message with the security
// context's keys (RFC 4121 wrap tokens laid out as Windows SSPI lays them
// out for WinRM; wsman/internal/krbseal), in MS-WSMV's multipart/encrypted
// framing: what a default domain-joined Windows host (HTTP on 5985,
// AllowUnencrypted=false) requires when NTLM is not allowed.
//
// As pywinrm does before sealing, one empty-body POST per connection
// carries the AP-REQ (mutual authentication required); the 200 carries
// the host's AP-REP, whose acceptor subkey and sequence number, with the
// authenticator's, start the session. Later messages go sealed, without
// Authorization, on that connection, one at a time (sealedTransport:
// the same retries and guarantees as NTLM's).
func NewKerberosEncrypted(cfg Config) (Transport, error) {
	creds, err := kerberosCredentials(cfg)
	if err != nil {
		return nil, fmt.Errorf("kerberos auth: %w", err)
	}
	t, err := newSealedTransport(cfg)
	if err != nil {
		return nil, fmt.Errorf("kerberos encrypted: %w", err)
	}
	t.krb = &kerberosTransport{creds: creds, spn: cfg.SPN}
	return t, nil
}

// kerberosHandshake authenticates a new connection: an empty-body POST
// with the AP-REQ, answered 2xx with the host's AP-REP, which must prove
// the host holds the SPN's key. On success the connection and its
// session (when sealing) are t's.
func (t *sealedTransport) kerberosHandshake(ctx context.Context, ep endpoint, hdrs []header, seal bool) error {
	host := ep.hostHeader
	spn, tok, err := t.krb.token(ep)
	if err != nil {
		return err
	}
	h, err := t.d.connect(ctx, ep)
	if err != nil {
		return fmt.Errorf("kerberos handshake with %s: %w", host, ctxErr(ctx, err))
	}
	ok := false
	defer func() {
		if !ok {
			h.close()
		}
	}()
	resp, err := t.leg(ctx, h, ep, hdrs, tok.spnego)
	if err != nil {
		return fmt.Errorf("kerberos handshake with %s: %w", host, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("kerberos handshake with %s (%s): the host refused the ticket for %s: HTTP 401: %w", host, t.krb.creds, spn, ErrAuthentication)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("kerberos handshake with %s: the AP-REQ was answered with HTTP %d, want 2xx", host, resp.StatusCode)
	}
	rep, err := tok.verify(resp, host, spn)
	if err == nil && rep == nil {
		err = &mutualAuthError{fmt.Errorf("reply from %s (HTTP %d): the host did not prove it is %s (Kerberos mutual authentication): no AP-REP", host, resp.StatusCode, spn)}
	}
	if err != nil {
		return err
	}
	var sess sealer
	if seal {
		s, err := krbseal.NewInitiator(tok.key, tok.auth, *rep)
		if err != nil {
			return fmt.Errorf("kerberos handshake with %s: start the sealing session: %w: %w", host, ErrEncryptionRequired, err)
		}
		sess = s
	}
	ok = true
	t.conn, t.key, t.sess = h, ep.key, sess
	return nil
}
