package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertificateNeedsHTTPS: certificate authentication is refused (exit
// 2, before any host is contacted) for the hosts that would be reached
// over http, named; an inventory host whose own scheme is https needs no
// --https, and a host whose own auth is certificate is checked too.
func TestCertificateNeedsHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	for _, p := range []string{cert, key} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inv := filepath.Join(dir, "hosts.ini")
	if err := os.WriteFile(inv, []byte("[web]\nweb1 ansible_host=127.0.0.1 ansible_port=1 ansible_winrm_scheme=https\nweb2 ansible_host=127.0.0.1 ansible_port=2\n"+
		"[db]\ndb1 ansible_host=127.0.0.1 ansible_port=3 ansible_winrm_transport=certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFlags := []string{"--auth", "certificate", "--cert-file", cert, "--key-file", key, "--timeout", "2s"}
	const refused = "certificate authentication needs HTTPS (WinRM accepts client certificates only over HTTPS), and "
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for not refused
	}{
		{"-H over http", append([]string{"list", "-H", "127.0.0.1:1"}, certFlags...), refused + "127.0.0.1:1 would be reached over http: use --https or https:// hosts"},
		{"--https", append([]string{"list", "-H", "127.0.0.1:1", "--https"}, certFlags...), ""},
		{"https:// host", append([]string{"list", "-H", "https://127.0.0.1:1/wsman"}, certFlags...), ""},
		{"inventory host with its own https", append([]string{"list", "-i", inv, "--limit", "web1"}, certFlags...), ""},
		{"inventory hosts, one over http", append([]string{"list", "-i", inv, "--limit", "web"}, certFlags...), refused + "web2:2 would be reached over http: use --https or https:// hosts"},
		{"a host's own certificate auth over http", []string{"list", "-i", inv, "--limit", "db", "-u", "admin", "--timeout", "2s"}, refused + "db1:3 would be reached over http: use --https or https:// hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, map[string]string{"BITSREMOTE_PASSWORD": "pw"}, tc.args...)
			if tc.want != "" {
				if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
				}
				return
			}
			// Past the check: the host's transport loads the (dummy)
			// certificate and says it is not one.
			if strings.Contains(r.stderr, "needs HTTPS") || !strings.Contains(r.stderr, "load client certificate") {
				t.Errorf("exit %d, stderr %q; want the check passed and the certificate loaded", r.code, r.stderr)
			}
		})
	}
}

// TestKerberosAnyScheme: Kerberos goes to hosts over http (sealed, unless
// --encryption never) and https alike, whatever --encryption says or an
// inventory host's own transport: every case gets past the flags to the
// login, which fails here because no KDC answers (exit 4).
func TestKerberosAnyScheme(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts.ini")
	if err := os.WriteFile(inv, []byte("[web]\nweb1 ansible_host=127.0.0.1 ansible_port=1 ansible_winrm_scheme=https ansible_winrm_transport=kerberos\n"+
		"web2 ansible_host=127.0.0.1 ansible_port=2 ansible_winrm_transport=kerberos\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte("[libdefaults]\n default_realm = NOWHERE.TEST\n[realms]\n NOWHERE.TEST = {\n  kdc = 127.0.0.1:1\n }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	krb := []string{"--auth", "kerberos", "-u", "admin", "--timeout", "2s", "--retries", "0"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"-H over http", append([]string{"list", "-H", "127.0.0.1:1"}, krb...)},
		{"--encryption always", append([]string{"list", "-H", "127.0.0.1:1", "--encryption", "always"}, krb...)},
		{"--encryption never", append([]string{"list", "-H", "127.0.0.1:1", "--encryption", "never"}, krb...)},
		{"--https", append([]string{"list", "-H", "127.0.0.1:1", "--https"}, krb...)},
		{"inventory hosts' own kerberos", []string{"list", "-i", inv, "-u", "admin", "--timeout", "2s", "--retries", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, map[string]string{"BITSREMOTE_PASSWORD": "pw", "KRB5_CONFIG": conf}, tc.args...)
			if r.code != ExitConnection || !strings.Contains(r.stderr, "no KDC of the realm could be reached") {
				t.Errorf("exit %d, stderr %q; want 4 and the KDC unreachable", r.code, r.stderr)
			}
		})
	}
}
