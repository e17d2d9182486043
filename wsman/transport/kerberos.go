package transport

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// DefaultKrb5Conf is where the Kerberos configuration is read when neither
// Config.Krb5Conf nor $KRB5_CONFIG names one, as MIT's tools do.
const DefaultKrb5Conf = "/etc/krb5.conf"

// NewKerberos returns a Transport that authenticates every request with a
// Kerberos service ticket for the endpoint's SPN (Config.SPN, or
// HTTP/<host>), in an SPNEGO token on an Authorization: Negotiate header,
// as PowerShell and pywinrm do. Credentials are cfg.Password for
// cfg.User ("user" in the default realm, or "user@REALM"), or without a
// password the ticket cache (Config.KrbCCache, $KRB5CCNAME, then MIT's
// /tmp/krb5cc_<uid>) that kinit filled.
//
// One login serves every transport of the process with the same
// credentials (see kerberosLogin), so a fleet asks the KDC for one TGT and
// one service ticket per host, and a wrong password is tried once, not
// once per host: Active Directory locks accounts after a few bad
// attempts.
//
// How bodies are protected follows cfg.Encryption, as for NTLM: Auto
// seals over http:// (NewKerberosEncrypted) and relies on TLS over
// https://, where each request carries its own token (newKerberosHTTP);
// Always seals everywhere; Never never seals (a host with
// AllowUnencrypted=true, or https://).
func NewKerberos(cfg Config) (Transport, error) {
	if _, err := kerberosCredentials(cfg); err != nil {
		return nil, fmt.Errorf("kerberos auth: %w", err)
	}
	switch cfg.Encryption {
	case EncryptionNever:
		return newKerberosHTTP(cfg)
	case EncryptionAlways:
		return NewKerberosEncrypted(cfg)
	case EncryptionAuto:
		if _, err := cfg.newDialer(); err != nil {
			return nil, fmt.Errorf("kerberos auth: %w", err)
		}
		return &autoTransport{cfg: cfg, newSealed: NewKerberosEncrypted, newTLS: newKerberosHTTP}, nil
	}
	return nil, fmt.Errorf("unknown encryption mode %v", cfg.Encryption)
}

// newKerberosHTTP authenticates every request with a token of its own
// and never seals.
func newKerberosHTTP(cfg Config) (Transport, error) {
	creds, err := kerberosCredentials(cfg)
	if err != nil {
		return nil, fmt.Errorf("kerberos auth: %w", err)
	}
	p, err := newHTTPPost(cfg, "kerberos", "", false)
	if err != nil {
		return nil, err
	}
	k := &kerberosTransport{creds: creds, spn: cfg.SPN}
	p.authorize = k.authorize
	return p, nil
}

// kerberosTransport makes the Authorization header of each request.
type kerberosTransport struct {
	creds kerberosCreds
	spn   string
}

// authorize returns "Negotiate <SPNEGO NegTokenInit with an AP-REQ>" for
// ep, and the check of the host's reply. A token is made per request (a
// new authenticator; the service ticket comes from the client's cache),
// which Windows accepts on any connection, so no request depends on how
// long the host keeps a connection's authentication.
func (k *kerberosTransport) authorize(ep endpoint) (string, func(*Response) error, error) {
	spn, tok, err := k.token(ep)
	if err != nil {
		return "", nil, err
	}
	check := func(resp *Response) error {
		_, err := tok.verify(resp, ep.hostHeader, spn)
		return err
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(tok.spnego), check, nil
}

// spnFor is the service principal for ep: Config.SPN, or HTTP/<host>.
func (k *kerberosTransport) spnFor(ep endpoint) string {
	if k.spn != "" {
		return k.spn
	}
	// A fully qualified name's trailing dot is not part of the principal,
	// as MIT's krb5_sname_to_principal drops it.
	return "HTTP/" + strings.TrimSuffix(strings.ToLower(ep.u.Hostname()), ".")
}

// token logs in (once per credentials) and makes an AP-REQ token for ep's
// SPN.
func (k *kerberosTransport) token(ep endpoint) (spn string, tok apReqToken, err error) {
	spn = k.spnFor(ep)
	cl, err := kerberosLogin(k.creds)
	if err != nil {
		return spn, tok, fmt.Errorf("kerberos login (%s): %w", k.creds, err)
	}
	// The ticket first, outside tokenMu: a KDC exchange for one host must
	// not hold up the tokens of the others.
	var (
		tkt messages.Ticket
		key types.EncryptionKey
	)
	if err := guard(func() (err error) { tkt, key, err = cl.GetServiceTicket(spn); return err }); err != nil {
		return spn, tok, fmt.Errorf("kerberos service ticket for %s (host %s): %w", spn, ep.hostHeader, kdcError(err, spn))
	}
	if err := guard(func() (err error) { tok, err = newAPReqToken(cl, tkt, key); return err }); err != nil {
		return spn, tok, fmt.Errorf("kerberos token for %s (host %s): %w", spn, ep.hostHeader, err)
	}
	return spn, tok, nil
}

// verify is checkReply, guarded, with the error saying which host failed
// to prove itself.
func (t apReqToken) verify(resp *Response, host, spn string) (rep *messages.EncAPRepPart, err error) {
	err = guard(func() (err error) { rep, err = t.checkReply(resp); return err })
	if err != nil {
		return nil, &mutualAuthError{fmt.Errorf("reply from %s (HTTP %d): the host did not prove it is %s (Kerberos mutual authentication): %w", host, resp.StatusCode, spn, err)}
	}
	return rep, nil
}

// krbRefusal is a Kerberos failure before the host is reached: the KDC
// refusing the credentials or the service principal, or a ticket cache
// that cannot serve. It counts as an authentication failure (exit 3)
// without saying, as ErrAuthentication's text does, that the host
// rejected anything.
type krbRefusal struct{ err error }

func (e *krbRefusal) Error() string   { return e.err.Error() }
func (e *krbRefusal) Unwrap() []error { return []error{e.err, ErrAuthentication} }

func refused(format string, a ...any) error { return &krbRefusal{fmt.Errorf(format, a...)} }

// ErrHostNotProven marks a reply from a host that did not prove it holds
// the SPN's key (Kerberos mutual authentication). The request was sent:
// whoever answered may have acted on it, so a caller must not take the
// failure as "not done" (package wsman reports it as ambiguous, and a
// CreateJob looks for its marker).
var ErrHostNotProven = errors.New("the host did not prove its identity")

// mutualAuthError is a reply from a host that did not prove it holds the
// SPN's key. It counts as an authentication failure (exit 3) without
// saying that our credentials were refused.
type mutualAuthError struct{ err error }

func (e *mutualAuthError) Error() string { return e.err.Error() }
func (e *mutualAuthError) Unwrap() []error {
	return []error{e.err, ErrAuthentication, ErrHostNotProven}
}

var (
	tokenMu   sync.Mutex
	lastMicro int64
)

// apReqToken is one request's SPNEGO token and what checking the host's
// answer to it needs.
type apReqToken struct {
	spnego []byte
	// key is the ticket's session key, which only the KDC, the client and
	// the service that holds the SPN's key know.
	key types.EncryptionKey
	// ctime and cusec are the authenticator's time, which the host's
	// AP-REP must send back (RFC 4120 §3.2.4).
	ctime time.Time
	cusec int
	// auth is the whole authenticator: its subkey and sequence number
	// start a sealing session (krbseal).
	auth types.Authenticator
}

// newAPReqToken makes an SPNEGO NegTokenInit with an AP-REQ that asks for
// mutual authentication, replay and sequence detection, confidentiality
// and integrity (what SSPI and pyspnego ask for WinRM), whose authenticator's
// time (ctime, cusec) no other token of this process has: a Kerberos
// acceptor's replay cache (Windows', MIT's, gokrb5's) refuses a second
// authenticator from the same client with the same time, and concurrent
// requests could otherwise make two in one microsecond.
func newAPReqToken(cl *client.Client, tkt messages.Ticket, key types.EncryptionKey) (apReqToken, error) {
	tokenMu.Lock()
	for time.Now().UnixMicro() <= lastMicro {
		runtime.Gosched()
	}
	mt, err := spnego.NewKRB5TokenAPREQ(cl, tkt, key,
		[]int{gssapi.ContextFlagInteg, gssapi.ContextFlagConf, gssapi.ContextFlagMutual, gssapi.ContextFlagReplay, gssapi.ContextFlagSequence},
		[]int{flags.APOptionMutualRequired})
	lastMicro = time.Now().UnixMicro()
	tokenMu.Unlock()
	if err != nil {
		return apReqToken{}, err
	}
	// gokrb5 keeps the authenticator it made to itself; read its time back
	// from the AP-REQ.
	plain, err := crypto.DecryptEncPart(mt.APReq.EncryptedAuthenticator, key, keyusage.AP_REQ_AUTHENTICATOR)
	if err != nil {
		return apReqToken{}, fmt.Errorf("read back our own authenticator: %w", err)
	}
	var auth types.Authenticator
	if err := auth.Unmarshal(plain); err != nil {
		return apReqToken{}, fmt.Errorf("read back our own authenticator: %w", err)
	}
	mtb, err := mt.Marshal()
	if err != nil {
		return apReqToken{}, err
	}
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{MechTokenBytes: mtb}}
	st.NegTokenInit.MechTypes = append(st.NegTokenInit.MechTypes, gssapi.OIDKRB5.OID())
	b, err := st.Marshal()
	if err != nil {
		return apReqToken{}, err
	}
	return apReqToken{spnego: b, key: key, ctime: auth.CTime, cusec: auth.Cusec, auth: auth}, nil
}

// checkReply verifies the host's mutual authentication: a reply other
// than 401 must carry, in WWW-Authenticate, an AP-REP (in an SPNEGO
// NegTokenResp, or bare) that decrypts with the session key and echoes the
// authenticator's time. Only the holder of the SPN's key can make one, so
// this authenticates the host even where TLS does not (a certificate not
// checked, --insecure-skip-verify). A 401 is the host refusing us and goes
// up as such.
//
// An error reply (400 and above) without any token goes up unchecked:
// WinRM sends SOAP faults' HTTP 500, a w:TimedOut among them, without
// WWW-Authenticate (requests-kerberos PR #72 was made for that), as
// HTTP.sys does its 400 for a header too long, and pywinrm takes them as
// the host's answer. Refusing them would turn every fault into "the host
// did not prove itself" (exit 3) and stop the retry of a w:TimedOut. Such
// a reply proves nothing, but it is a failure, never a success.
//
// checkReply returns the host's decrypted AP-REP, nil for a reply that
// need not carry one (a 401, an error status without a token).
func (t apReqToken) checkReply(resp *Response) (*messages.EncAPRepPart, error) {
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, nil
	}
	var tokens []string
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		scheme, b64, _ := strings.Cut(strings.TrimSpace(v), " ")
		if (strings.EqualFold(scheme, "Negotiate") || strings.EqualFold(scheme, "Kerberos")) && strings.TrimSpace(b64) != "" {
			tokens = append(tokens, strings.TrimSpace(b64))
		}
	}
	if len(tokens) == 0 && resp.StatusCode >= http.StatusBadRequest {
		return nil, nil
	}
	if len(tokens) != 1 {
		return nil, fmt.Errorf("%d Kerberos tokens in WWW-Authenticate, want the one with its AP-REP", len(tokens))
	}
	raw, err := base64.StdEncoding.DecodeString(tokens[0])
	if err != nil {
		return nil, fmt.Errorf("mutual authentication token: %w", err)
	}
	mech := raw
	if len(raw) > 0 && raw[0] == 0xa1 { // SPNEGO NegTokenResp
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(raw); err != nil || !st.Resp {
			return nil, fmt.Errorf("mutual authentication token is not an SPNEGO response: %v", err)
		}
		if int(st.NegTokenResp.NegState) != int(spnego.NegStateAcceptCompleted) {
			return nil, fmt.Errorf("SPNEGO state %d, want accept-completed", st.NegTokenResp.NegState)
		}
		mech = st.NegTokenResp.ResponseToken
	}
	var kt spnego.KRB5Token
	if err := kt.Unmarshal(mech); err != nil {
		return nil, fmt.Errorf("mutual authentication token: %w", err)
	}
	if !kt.IsAPRep() {
		return nil, errors.New("mutual authentication token holds no AP-REP")
	}
	plain, err := crypto.DecryptEncPart(kt.APRep.EncPart, t.key, keyusage.AP_REP_ENCPART)
	if err != nil {
		return nil, fmt.Errorf("AP-REP does not decrypt with the session key: %w", err)
	}
	var enc messages.EncAPRepPart
	if err := enc.Unmarshal(plain); err != nil {
		return nil, fmt.Errorf("AP-REP: %w", err)
	}
	// KerberosTime has whole seconds; cusec carries the microseconds.
	if enc.CTime.Unix() != t.ctime.Unix() || enc.Cusec != t.cusec {
		return nil, fmt.Errorf("AP-REP answers an authenticator of %s.%06d, ours is of %s.%06d",
			enc.CTime.UTC().Format(time.RFC3339), enc.Cusec, t.ctime.UTC().Format(time.RFC3339), t.cusec)
	}
	return &enc, nil
}

// kerberosCreds are what a login needs, resolved once from the Config
// and the environment.
type kerberosCreds struct {
	conf     string // krb5.conf path
	ccache   string // ticket cache path, when there is no password
	user     string // user name without the realm ("" from a cache)
	realm    string // "" for the default realm
	password string
}

// String names the credentials in errors: the principal, or the cache.
func (c kerberosCreds) String() string {
	if c.password != "" {
		return c.user + "@" + c.realm + " with a password"
	}
	return "ticket cache " + c.ccache
}

// key identifies the credentials in the login cache without holding the
// password itself.
func (c kerberosCreds) key() string {
	h := sha256.Sum256([]byte(c.password))
	return strings.Join([]string{c.conf, c.ccache, c.user, c.realm, base64.RawStdEncoding.EncodeToString(h[:])}, "\x00")
}

// KerberosPrincipal returns the principal, user@REALM, that Kerberos
// authentication with cfg logs in as: cfg.User in its realm (krb5.conf's
// default_realm when it names none) with a password, else the ticket
// cache's principal, which cfg.User need not name. It reads the
// configuration and the cache and asks no KDC. A fleet's ledger records
// it as the account a run's jobs belong to.
func KerberosPrincipal(cfg Config) (string, error) {
	c, err := kerberosCredentials(cfg)
	if err != nil {
		return "", fmt.Errorf("kerberos auth: %w", err)
	}
	if c.password != "" {
		return c.user + "@" + c.realm, nil
	}
	var cc *credentials.CCache
	if err := guard(func() (err error) { cc, err = credentials.LoadCCache(c.ccache); return err }); err != nil {
		return "", fmt.Errorf("kerberos auth: ticket cache %s: %w", c.ccache, err)
	}
	return cc.DefaultPrincipal.PrincipalName.PrincipalNameString() + "@" + cc.DefaultPrincipal.Realm, nil
}

func kerberosCredentials(cfg Config) (kerberosCreds, error) {
	c := kerberosCreds{conf: cfg.Krb5Conf, password: cfg.Password}
	if c.conf == "" {
		c.conf = os.Getenv("KRB5_CONFIG")
	}
	if c.conf == "" {
		c.conf = DefaultKrb5Conf
	}
	if i := strings.IndexByte(c.conf, ':'); i >= 0 {
		// KRB5_CONFIG may list several files; gokrb5 reads one.
		c.conf = c.conf[:i]
	}
	user := cfg.User
	if strings.Contains(user, `\`) {
		return c, fmt.Errorf(`user %q: give a Kerberos principal, user or user@REALM, not DOMAIN\user (a NetBIOS domain is not always the realm)`, user)
	}
	if u, realm, ok := strings.Cut(user, "@"); ok {
		if u == "" || realm == "" {
			return c, fmt.Errorf("user %q: want user or user@REALM", user)
		}
		// Realms are upper case in Active Directory and MIT alike; a
		// user typing the DNS domain in lower case means the same one.
		user, c.realm = u, strings.ToUpper(realm)
	}
	c.user = user
	if c.password != "" {
		if c.user == "" {
			return c, errors.New("a user name is required with a password")
		}
		if c.realm == "" {
			conf, err := loadKrb5Conf(c.conf)
			if err != nil {
				return c, fmt.Errorf("read the Kerberos configuration %s: %w", c.conf, err)
			}
			if c.realm = conf.LibDefaults.DefaultRealm; c.realm == "" {
				return c, fmt.Errorf("user %q has no realm and %s sets no default_realm: give user@REALM", user, c.conf)
			}
		}
		return c, nil
	}
	cc, from := cfg.KrbCCache, ""
	if cc == "" {
		cc = os.Getenv("KRB5CCNAME")
	}
	if cc == "" {
		// Where kinit put it: krb5.conf's default_ccache_name, then
		// MIT's built-in default.
		if cc = defaultCCacheName(c.conf); cc != "" {
			from = " (default_ccache_name in " + c.conf + ")"
		} else {
			cc = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
		}
	}
	if kind, path, ok := strings.Cut(cc, ":"); ok {
		if !strings.EqualFold(kind, "FILE") {
			return c, fmt.Errorf("ticket cache %q%s: only FILE: caches can be read (run kinit -c FILE:/path and set KRB5CCNAME to it, or give a password)", cc, from)
		}
		cc = path
	}
	c.ccache = cc
	return c, nil
}

// krb5CCacheName finds krb5.conf's default_ccache_name.
var krb5CCacheName = regexp.MustCompile(`(?m)^[ \t]*default_ccache_name[ \t]*=[ \t]*(\S+)`)

// defaultCCacheName is the default_ccache_name that the krb5.conf at
// path sets, with the parameters MIT expands in it that name the user
// and the temporary folder, or "" when it sets none. gokrb5 does not
// read it, and Fedora's and sssd's krb5.conf set it.
func defaultCCacheName(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	m := krb5CCacheName.FindSubmatch(b)
	if m == nil {
		return ""
	}
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	uid := strconv.Itoa(os.Getuid())
	return strings.NewReplacer("%{uid}", uid, "%{euid}", strconv.Itoa(os.Geteuid()), "%{USERID}", uid, "%{TEMP}", tmp, "%{null}", "").Replace(string(m[1]))
}

var (
	loginMu sync.Mutex
	logins  = map[string]*loginEntry{}
)

type loginEntry struct {
	once sync.Once
	err  error
	// mu guards cl after once, and serializes the check of its TGT and
	// what renews it, so that a fleet's hosts wait for one KDC exchange
	// or one reading of the ticket cache instead of each making its own.
	mu sync.Mutex
	cl *client.Client
}

// kerberosLogin returns a logged-in client for creds, shared by every
// transport of the process with the same credentials. A refusal by the
// KDC is kept (it would only be refused again, counting against the
// account's lockout); a failure to reach the KDC is not, so that a later
// request tries again, nor is a ticket cache's failure, which costs no
// KDC exchange and which kinit may mend.
func kerberosLogin(creds kerberosCreds) (*client.Client, error) {
	loginMu.Lock()
	e := logins[creds.key()]
	if e == nil {
		e = &loginEntry{}
		logins[creds.key()] = e
	}
	loginMu.Unlock()
	e.once.Do(func() {
		e.err = guard(func() (err error) { e.cl, err = newKerberosClient(creds); return err })
	})
	if e.err != nil {
		if errors.Is(e.err, ErrKDCUnreachable) || errors.Is(e.err, errMalformed) || creds.password == "" {
			loginMu.Lock()
			if logins[creds.key()] == e {
				delete(logins, creds.key())
			}
			loginMu.Unlock()
		}
		return nil, e.err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// A client from a password logs in again when its TGT expires.
	if err := guard(e.cl.AffirmLogin); err != nil {
		if creds.password != "" {
			return nil, kdcError(err, "")
		}
		// One from a cache cannot: gokrb5 reads the cache once. Read it
		// again, as MIT's library does for every context: kinit,
		// k5start or sssd may have refreshed it since.
		var cl *client.Client
		if err := guard(func() (err error) { cl, err = newKerberosClient(creds); return err }); err != nil {
			return nil, err
		}
		e.cl = cl
	}
	return e.cl, nil
}

func newKerberosClient(creds kerberosCreds) (*client.Client, error) {
	conf, err := loadKrb5Conf(creds.conf)
	if err != nil {
		return nil, fmt.Errorf("read the Kerberos configuration %s: %w", creds.conf, err)
	}
	// FAST armoring needs a host key the client does not have; Windows
	// does not require it.
	settings := client.DisablePAFXFAST(true)
	if creds.password != "" {
		cl := client.NewWithPassword(creds.user, creds.realm, creds.password, conf, settings)
		if err := cl.Login(); err != nil {
			return nil, kdcError(err, "")
		}
		return cl, nil
	}
	cc, err := credentials.LoadCCache(creds.ccache)
	if err != nil {
		return nil, refused("no password was given and the ticket cache %s cannot be read (run kinit first): %w", creds.ccache, err)
	}
	if creds.user != "" {
		got := cc.DefaultPrincipal.PrincipalName.PrincipalNameString()
		if !strings.EqualFold(got, creds.user) || (creds.realm != "" && !strings.EqualFold(cc.DefaultPrincipal.Realm, creds.realm)) {
			return nil, refused("the ticket cache %s holds %s@%s, not the user asked for", creds.ccache, got, cc.DefaultPrincipal.Realm)
		}
	}
	cl, err := client.NewFromCCache(cc, conf, settings)
	if err != nil {
		return nil, refused("ticket cache %s: %w", creds.ccache, err)
	}
	// gokrb5 cannot renew the cache's TGT, nor log in again without a
	// password.
	krbtgt := types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", cc.DefaultPrincipal.Realm}}
	if tgt, ok := cc.GetEntry(krbtgt); ok && !time.Now().Before(tgt.EndTime) {
		return nil, refused("the ticket-granting ticket in %s expired at %s: run kinit again", creds.ccache, tgt.EndTime.Local().Format(time.RFC3339))
	}
	return cl, nil
}

// krb5DNS finds the settings that say whether to look KDCs up in DNS.
var krb5DNS = regexp.MustCompile(`(?mi)^[ \t]*(dns_lookup_kdc|dns_fallback)[ \t]*=[ \t]*(\S*)`)

// loadKrb5Conf reads a krb5.conf as MIT's library would where gokrb5
// reads it otherwise: a realm whose KDCs it does not list has them looked
// up in DNS (_kerberos._tcp SRV records, which Active Directory's domain
// controllers publish) unless dns_lookup_kdc, else dns_fallback, says
// no. gokrb5 reads only dns_lookup_kdc and does not look by default, and
// the krb5.conf of a machine joined to a domain (realmd's, say) often
// names the realm and no KDC.
func loadKrb5Conf(path string) (*config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	conf, err := config.NewFromString(string(b))
	if err != nil {
		return nil, err
	}
	var lookup, fallback string
	for _, m := range krb5DNS.FindAllStringSubmatch(string(b), -1) {
		if strings.EqualFold(m[1], "dns_lookup_kdc") {
			lookup = m[2]
		} else {
			fallback = m[2]
		}
	}
	switch {
	case lookup != "":
		// gokrb5 read it.
	case fallback != "":
		conf.LibDefaults.DNSLookupKDC = krb5Bool(fallback)
	default:
		conf.LibDefaults.DNSLookupKDC = true
	}
	return conf, nil
}

// krb5Bool reads a krb5.conf boolean as MIT's profile library does.
func krb5Bool(v string) bool {
	switch strings.ToLower(v) {
	case "y", "yes", "true", "t", "1", "on":
		return true
	}
	return false
}

// errMalformed marks a gokrb5 panic turned into an error by guard.
var errMalformed = errors.New("the kerberos library failed on a malformed message")

// guard runs f, turning a panic into an error: gokrb5 v8.4.4 panics on
// some malformed messages from the network, a KDC reply whose encrypted
// part is shorter than its checksum among them (jcmturner/gokrb5#580),
// and on an empty ticket cache file (as kinit leaves it for a moment
// while it rewrites it), and neither a KDC, nor whatever answers on its
// port, nor a cache being refreshed must crash a run over a whole fleet. The panic's value names no secret: gokrb5's panics are
// runtime errors such as slice bounds.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w (%v)", errMalformed, p)
		}
	}()
	return f()
}

// ErrKDCUnreachable marks a Kerberos login or ticket request that failed
// because no KDC of the realm answered: a connection failure, not a
// refusal of the credentials.
var ErrKDCUnreachable = errors.New("no KDC of the realm could be reached")

// kdcError classifies a gokrb5 error, which carries the KDC's error code
// only in its text: a refusal of the credentials or of the SPN is a
// krbRefusal (ErrAuthentication, exit 3), no KDC reached wraps
// ErrKDCUnreachable.
func kdcError(err error, spn string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no valid existing session"):
		// A client from a ticket cache whose TGT expired, with no
		// password to get another.
		return refused("the ticket-granting ticket has expired: run kinit again: %w", err)
	case strings.Contains(msg, "KDC_ERR_S_PRINCIPAL_UNKNOWN"):
		return refused("the KDC does not know the service principal %s (use the host's DNS name as registered in the domain, not an address or alias, or set the SPN): %w", spn, err)
	case strings.Contains(msg, "KDC_ERR_PREAUTH_FAILED"), strings.Contains(msg, "KDC_ERR_C_PRINCIPAL_UNKNOWN"),
		strings.Contains(msg, "KDC_ERR_CLIENT_REVOKED"), strings.Contains(msg, "KDC_ERR_KEY_EXPIRED"),
		strings.Contains(msg, "KRB_AP_ERR_TKT_EXPIRED"),
		strings.Contains(msg, "KDC_ERR_POLICY"), strings.Contains(msg, "KDC_ERR_ETYPE_NOSUPP"),
		// A KDC that does not require pre-authentication answers a wrong
		// password with an AS-REP the client cannot decrypt.
		strings.Contains(msg, "client password/keytab incorrect"):
		return refused("the KDC refused the credentials: %w", err)
	case strings.Contains(msg, "KRB_AP_ERR_SKEW"):
		return refused("this machine's clock differs from the KDC's by more than Kerberos allows (5 minutes by default): set it right: %w", err)
	case strings.Contains(msg, "Networking_Error"),
		// A KDC that cannot serve now: another, or a later request, may.
		strings.Contains(msg, "KDC_ERR_SVC_UNAVAILABLE"):
		return fmt.Errorf("%w: %w", ErrKDCUnreachable, err)
	}
	return err
}
