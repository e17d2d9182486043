package wsmantest

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

const forgedRealm = "BITSREMOTE.TEST"

// fuzzKeytab is an HTTP/localhost key made from a password, for tests
// that mint their own tickets instead of asking a KDC.
func fuzzKeytab(tb testing.TB) *keytab.Keytab {
	tb.Helper()
	kt := keytab.New()
	if err := kt.AddEntry("HTTP/localhost", forgedRealm, "not a real key", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		tb.Fatal(err)
	}
	return kt
}

// forgeAPReq mints, with the service's own key as only a KDC should, a
// ticket for "alice" ending at end and an AP-REQ whose authenticator says
// ctime, and returns its GSS krb5 token.
func forgeAPReq(tb testing.TB, kt *keytab.Keytab, end, ctime time.Time, mutual bool) []byte {
	tb.Helper()
	return gssAPReq(tb, forge(tb, kt, end, ctime, mutual))
}

func forge(tb testing.TB, kt *keytab.Keytab, end, ctime time.Time, mutual bool) messages.APReq {
	tb.Helper()
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "alice")
	sname := types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "HTTP/localhost")
	start := end.Add(-10 * time.Hour)
	tkt, key, err := messages.NewTicket(cname, forgedRealm, sname, forgedRealm, types.NewKrbFlags(), kt, etypeID.AES256_CTS_HMAC_SHA1_96, 1, start, start, end, end)
	if err != nil {
		tb.Fatal(err)
	}
	auth, err := types.NewAuthenticator(forgedRealm, cname)
	if err != nil {
		tb.Fatal(err)
	}
	auth.CTime = ctime.UTC().Truncate(time.Second)
	auth.Cusec = ctime.Nanosecond() / 1000
	apreq, err := messages.NewAPReq(tkt, key, auth)
	if err != nil {
		tb.Fatal(err)
	}
	if mutual {
		types.SetFlag(&apreq.APOptions, flags.APOptionMutualRequired)
	}
	return apreq
}

// gssAPReq is the GSS krb5 token (RFC 1964 §1.1, token id 0x0100) of an
// AP-REQ.
func gssAPReq(tb testing.TB, apreq messages.APReq) []byte {
	tb.Helper()
	b, err := apreq.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	oid, err := asn1.Marshal(gssapi.OIDKRB5.OID())
	if err != nil {
		tb.Fatal(err)
	}
	return asn1tools.AddASNAppTag(append(append(oid, 0x01, 0x00), b...), 0)
}

// TestKerberosTimes covers what a KDC will not hand out on demand: a
// ticket past its end and an authenticator from outside the 5-minute
// clock tolerance, both refused, and their edges, accepted.
func TestKerberosTimes(t *testing.T) {
	kt := fuzzKeytab(t)
	now := time.Now()
	tests := []struct {
		name       string
		end, ctime time.Time
		why        string
	}{
		{"valid", now.Add(time.Hour), now, ""},
		{"ticket ended within the tolerance", now.Add(-4 * time.Minute), now, ""},
		{"ticket expired", now.Add(-6 * time.Minute), now, KrbErrTicketTime},
		{"authenticator 4 minutes old", now.Add(time.Hour), now.Add(-4 * time.Minute), ""},
		{"authenticator 6 minutes old", now.Add(time.Hour), now.Add(-6 * time.Minute), KrbErrSkew},
		{"authenticator 6 minutes ahead", now.Add(time.Hour), now.Add(6 * time.Minute), KrbErrSkew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newKrbAcceptor(kt, nil)
			tok := forgeAPReq(t, kt, tt.end, tt.ctime, false)
			logon, why := a.accept("Kerberos", base64.StdEncoding.EncodeToString(tok), "127.0.0.1:1")
			if why != tt.why {
				t.Fatalf("reason %q, want %q", why, tt.why)
			}
			if why == "" && (logon.user != "alice" || logon.reply != "") {
				t.Errorf("logon %+v, want alice and no reply (no mutual authentication asked)", logon)
			}
		})
	}
}

// TestKerberosShortCiphertext: gokrb5 v8.4.4 panics decrypting a
// ciphertext shorter than its checksum (jcmturner/gokrb5#580); from a
// client that is a malformed token, answered with a 401.
func TestKerberosShortCiphertext(t *testing.T) {
	kt := fuzzKeytab(t)
	now := time.Now()
	tests := []struct {
		name string
		cut  func(*messages.APReq)
		why  string
	}{
		{"ticket", func(a *messages.APReq) { a.Ticket.EncPart.Cipher = a.Ticket.EncPart.Cipher[:4] }, KrbErrMalformed},
		{"authenticator", func(a *messages.APReq) { a.EncryptedAuthenticator.Cipher = a.EncryptedAuthenticator.Cipher[:4] }, KrbErrMalformed},
		{"authenticator one block", func(a *messages.APReq) { a.EncryptedAuthenticator.Cipher = a.EncryptedAuthenticator.Cipher[:28] }, KrbErrAuthenticator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apreq := forge(t, kt, now.Add(time.Hour), now, false)
			tt.cut(&apreq)
			logon, why := newKrbAcceptor(kt, nil).accept("Kerberos", base64.StdEncoding.EncodeToString(gssAPReq(t, apreq)), "127.0.0.1:1")
			if logon != nil || why != tt.why {
				t.Errorf("logon %+v reason %q, want %q", logon, why, tt.why)
			}
		})
	}
}
