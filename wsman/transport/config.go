package transport

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Auth is an authentication method.
type Auth int

// Authentication methods.
const (
	AuthBasic Auth = iota
	AuthNTLM
	AuthCertificate
	AuthKerberos
	AuthNone
)

var authNames = []string{"basic", "ntlm", "certificate", "kerberos", "none"}

func (a Auth) String() string {
	if int(a) < len(authNames) {
		return authNames[a]
	}
	return fmt.Sprintf("Auth(%d)", int(a))
}

// ParseAuth parses "basic", "ntlm" (also "negotiate"), "certificate", "kerberos", "none".
func ParseAuth(s string) (Auth, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "negotiate" {
		return AuthNTLM, nil
	}
	for i, n := range authNames {
		if n == s {
			return Auth(i), nil
		}
	}
	return 0, fmt.Errorf("unknown auth method %q (want basic, ntlm, certificate or kerberos)", s)
}

// Encryption says when to seal messages with the NTLM session (MS-WSMV 2.2.9.1).
type Encryption int

// Encryption modes. Auto seals over http:// and not over https://, as
// pypsrp and pywinrm do.
const (
	EncryptionAuto Encryption = iota
	EncryptionAlways
	EncryptionNever
)

var encNames = []string{"auto", "always", "never"}

func (e Encryption) String() string {
	if int(e) < len(encNames) {
		return encNames[e]
	}
	return fmt.Sprintf("Encryption(%d)", int(e))
}

// ParseEncryption parses "auto", "always" or "never".
func ParseEncryption(s string) (Encryption, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range encNames {
		if n == s {
			return Encryption(i), nil
		}
	}
	return 0, fmt.Errorf("unknown encryption mode %q (want auto, always or never)", s)
}

// Config describes how to reach one host. One Transport is built per host so
// that connection-bound authentication (NTLM) is kept per host.
type Config struct {
	Auth Auth
	// User is "user", "DOMAIN\\user" or "user@realm".
	User string
	// Password is never logged, recorded or put in an error.
	Password string
	// Encryption applies to NTLM only; Basic and certificate auth cannot seal.
	// Kerberos cannot either, so it needs https:// unless this is Never.
	Encryption Encryption

	// Krb5Conf is the Kerberos configuration file (Kerberos auth; "" means
	// $KRB5_CONFIG, then DefaultKrb5Conf).
	Krb5Conf string
	// KrbCCache is the ticket cache used when there is no Password
	// (Kerberos auth; "" means $KRB5CCNAME, then /tmp/krb5cc_<uid>).
	KrbCCache string
	// SPN is the service principal to ask tickets for (Kerberos auth; ""
	// means HTTP/<host of the endpoint URL>, as WinRM registers).
	SPN string

	// CAFile is a PEM bundle of CAs to trust instead of the system pool.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key
	// (certificate auth, or TLS client auth alongside another method).
	CertFile, KeyFile string
	// InsecureSkipVerify turns off server certificate checks. Callers must
	// warn the user; it is never the default.
	InsecureSkipVerify bool
	// ServerName overrides the TLS server name.
	ServerName string

	// DialTimeout bounds connecting (default 30s).
	DialTimeout time.Duration
	// ResponseTimeout bounds waiting for a reply's headers after sending
	// (0: none beyond the context). Use it above the OperationTimeout.
	ResponseTimeout time.Duration
	// MaxResponseBytes bounds a reply body (0: DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// Proxy picks a proxy per request; nil means http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)

	// MaxConnsPerHost bounds connections to the host (0: no bound). NTLM
	// transports force 1 so that authentication stays on one connection.
	MaxConnsPerHost int
	// MaxIdleConnsPerHost bounds kept-alive idle connections (0: 2).
	MaxIdleConnsPerHost int
}

// configNoMethods is Config without its methods, to print it field by
// field without recursing into String.
type configNoMethods Config

// redactedConfig is c with the password replaced.
func (c Config) redactedConfig() configNoMethods {
	p := configNoMethods(c)
	if p.Password != "" {
		p.Password = "REDACTED"
	}
	return p
}

// String renders the settings with the password replaced, so that a Config
// printed into a log, an error or a panic never shows it (%v, %+v, %s).
func (c Config) String() string { return fmt.Sprintf("%+v", c.redactedConfig()) }

// GoString is String for %#v.
func (c Config) GoString() string { return fmt.Sprintf("transport.Config%+v", c.redactedConfig()) }

// LogValue keeps the password out of log/slog records.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
