// Package krbtest runs a real MIT Kerberos KDC on loopback for tests: a
// realm of its own in a temporary folder, its users and service keys, and
// the krb5.conf that points clients at it. Kerberos cannot be tested
// without a KDC (go-deps.md §6 left it to a lab against AD); Debian's
// krb5-kdc and krb5-admin-server give one that starts in milliseconds
// and is independent of gokrb5, the library our client and the simulator
// use.
package krbtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/bitsremote/bitsremote/internal/pywinrmtest"
)

// RealmName is the realm every test KDC serves: upper case, as Active
// Directory realms are, and under .test so that it can never be real.
const RealmName = "BITSREMOTE.TEST"

// The default user of a realm. Its password is made up for tests only.
const (
	User     = "fleetadmin"
	Password = "Krb-T3st!pass"
)

// Tools are the MIT programs a realm needs, with where Debian puts them.
var Tools = map[string]string{
	"krb5kdc":      "/usr/sbin/krb5kdc",
	"kdb5_util":    "/usr/sbin/kdb5_util",
	"kadmin.local": "/usr/sbin/kadmin.local",
	"kinit":        "/usr/bin/kinit",
}

// Realm is a running KDC and what tests need to use it.
type Realm struct {
	// Name is the realm (RealmName).
	Name string
	// KDC is the KDC's host:port on 127.0.0.1, TCP only.
	KDC string
	// Dir holds the database, the configuration and the keytabs.
	Dir string
	// Krb5Conf is the client configuration: default realm, this KDC, no
	// DNS lookups, TCP only.
	Krb5Conf string
	// Log is the KDC's log file, worth reading when a test fails.
	Log string

	mu  sync.Mutex
	env []string
}

// Available reports why a realm cannot be started here, or nil.
func Available() error {
	var missing []string
	for name, path := range Tools {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("MIT Kerberos tools missing (%s): apt-get install krb5-kdc krb5-admin-server krb5-user", strings.Join(missing, ", "))
	}
	return nil
}

// Start runs a KDC for RealmName until tb ends, with User and its
// Password already added. Where the tools are missing it skips tb, or
// fails it when BITSREMOTE_REQUIRE_INTEROP=1 (CI installs them).
func Start(tb testing.TB) *Realm {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv(pywinrmtest.RequireEnv) == "1" {
			tb.Fatalf("krbtest: %v (%s=1)", err, pywinrmtest.RequireEnv)
		}
		tb.Skipf("krbtest: %v", err)
	}
	var lastErr error
	for range 3 { // a port found free may be taken before the KDC binds it
		r, err := start(tb)
		if err == nil {
			r.AddUser(tb, User, Password)
			return r
		}
		lastErr = err
	}
	tb.Fatalf("krbtest: %v", lastErr)
	return nil
}

func start(tb testing.TB) (*Realm, error) {
	dir := tb.TempDir()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Realm{
		Name:     RealmName,
		KDC:      net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		Dir:      dir,
		Krb5Conf: filepath.Join(dir, "krb5.conf"),
		Log:      filepath.Join(dir, "kdc.log"),
	}
	kdcConf := filepath.Join(dir, "kdc.conf")
	// AES only, as current Active Directory issues; no UDP, so that a
	// client never falls back to a port nobody listens on.
	if err := os.WriteFile(kdcConf, fmt.Appendf(nil, `[kdcdefaults]
 kdc_listen = ""
 kdc_tcp_listen = 127.0.0.1:%d
[realms]
 %s = {
  database_name = %s
  key_stash_file = %s
  acl_file = %s
  max_life = 10h
  max_renewable_life = 7d
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }
[logging]
 kdc = FILE:%s
`, port, r.Name, filepath.Join(dir, "principal"), filepath.Join(dir, "stash"), filepath.Join(dir, "kadm5.acl"), r.Log), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(r.Krb5Conf, fmt.Appendf(nil, `[libdefaults]
 default_realm = %s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 dns_canonicalize_hostname = false
 udp_preference_limit = 1
 default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
[realms]
 %s = {
  kdc = %s
 }
`, r.Name, r.Name, r.KDC), 0o600); err != nil {
		return nil, err
	}
	r.env = append(os.Environ(), "KRB5_CONFIG="+r.Krb5Conf, "KRB5_KDC_PROFILE="+kdcConf, "KRB5CCNAME=FILE:"+filepath.Join(dir, "unused-ccache"))
	if _, err := r.run("kdb5_util", "create", "-s", "-r", r.Name, "-P", "krbtest-master-key"); err != nil {
		return nil, err
	}
	cmd := exec.Command(Tools["krb5kdc"], "-n", "-r", r.Name)
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start krb5kdc: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	// The KDC is ready once it accepts TCP connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", r.KDC, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(r.Log)
			return nil, fmt.Errorf("krb5kdc exited before listening on %s: %s %s", r.KDC, bytes.TrimSpace(out.Bytes()), lastLines(log, 5))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("krb5kdc did not listen on %s within 10 s", r.KDC)
		}
	}
	tb.Cleanup(stop)
	return r, nil
}

// AddUser adds a user principal (name@realm) with a password. It requires
// pre-authentication, as Active Directory does by default, so that a wrong
// password gets KDC_ERR_PREAUTH_FAILED as it would from a domain
// controller.
func (r *Realm) AddUser(tb testing.TB, name, password string) {
	tb.Helper()
	r.admin(tb, fmt.Sprintf("addprinc +requires_preauth -pw %s %s", password, name))
}

// AddService adds a service principal such as "HTTP/localhost" with a
// random key and returns the path of a keytab holding its keys, as
// `ktpass` gives a Windows service account's.
func (r *Realm) AddService(tb testing.TB, spn string) string {
	tb.Helper()
	r.admin(tb, "addprinc -randkey "+spn)
	kt := filepath.Join(r.Dir, strings.NewReplacer("/", "_", "@", "_").Replace(spn)+".keytab")
	r.admin(tb, fmt.Sprintf("ktadd -k %s %s", kt, spn))
	return kt
}

// Kinit gets a ticket-granting ticket for name with MIT's kinit, as an
// admin does before running a tool, and returns the credential cache's
// path.
func (r *Realm) Kinit(tb testing.TB, name, password string) string {
	tb.Helper()
	cc := filepath.Join(tb.TempDir(), "ccache")
	cmd := exec.Command(Tools["kinit"], name+"@"+r.Name)
	cmd.Env = append(r.Env(), "KRB5CCNAME=FILE:"+cc)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("krbtest: kinit %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return cc
}

// Login returns a gokrb5 client logged in as User with Password, for
// tests that make tokens by hand; it is destroyed when tb ends.
func (r *Realm) Login(tb testing.TB) *client.Client {
	tb.Helper()
	cfg, err := config.Load(r.Krb5Conf)
	if err != nil {
		tb.Fatalf("krbtest: %v", err)
	}
	cl := client.NewWithPassword(User, r.Name, Password, cfg, client.DisablePAFXFAST(true))
	tb.Cleanup(cl.Destroy)
	if err := cl.Login(); err != nil {
		tb.Fatalf("krbtest: login as %s: %v", User, err)
	}
	return cl
}

// ReadKeytab reads a keytab that AddService wrote, for tests that accept
// tickets themselves.
func ReadKeytab(tb testing.TB, path string) *keytab.Keytab {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("krbtest: %v", err)
	}
	kt := keytab.New()
	if err := kt.Unmarshal(b); err != nil {
		tb.Fatalf("krbtest: keytab %s: %v", path, err)
	}
	return kt
}

// Env is the environment for a Kerberos client of this realm (KRB5_CONFIG
// set; KRB5CCNAME pointing at an empty cache unless the caller appends
// its own).
func (r *Realm) Env() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.env...)
}

func (r *Realm) admin(tb testing.TB, query string) {
	tb.Helper()
	if out, err := r.run("kadmin.local", "-r", r.Name, "-q", query); err != nil {
		tb.Fatalf("krbtest: kadmin.local %q: %v", strings.Fields(query)[0], err)
	} else if bytes.Contains(out, []byte("error")) || bytes.Contains(out, []byte("rror ")) {
		tb.Fatalf("krbtest: kadmin.local %q: %s", strings.Fields(query)[0], bytes.TrimSpace(out))
	}
}

func (r *Realm) run(tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(Tools[tool], args...)
	cmd.Env = r.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out))
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
