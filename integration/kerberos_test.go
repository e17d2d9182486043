package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/internal/krbtest"
)

// TestKerberos runs the binary with --auth kerberos over HTTPS against a
// simulated host that accepts Kerberos with a keytab, both issued by a
// real MIT KDC: a whole transfer with a password, a listing with kinit's
// ticket cache and no password, and what a user gets wrong.
func TestKerberos(t *testing.T) {
	t.Parallel()
	r := krbtest.Start(t)
	kt := r.AddService(t, "HTTP/localhost")
	s := startSim(t, simOptions{auth: "kerberos", https: true, extra: []string{"--keytab", kt}})
	// sim's hosts accept the account "admin"; in the realm it is
	// admin@BITSREMOTE.TEST, with sim's password.
	r.AddUser(t, "admin", s.password)
	h := s.host()
	if h.Auth != "kerberos" {
		t.Fatalf("sim says auth %q", h.Auth)
	}
	// The ticket is for HTTP/localhost: the host is named, not addressed.
	host := strings.Replace(h.Host, "127.0.0.1", "localhost", 1)
	flags := []string{"-H", host, "--auth", "kerberos", "--https", "--ca-file", h.CAFile}
	env := func(extra ...string) []string { return append([]string{"KRB5_CONFIG=" + r.Krb5Conf}, extra...) }
	secrets := s.secrets()

	t.Run("transfer with a password", func(t *testing.T) {
		fs := newFileServer(t)
		u, content := fs.addRandom("krb/a.bin", 50_000)
		dest := filepath.Join(t.TempDir(), "a.bin")
		res := run(t, runSpec{
			args:    append([]string{"transfer", u, dest, "--interval", "50ms", "-o", "json", "-u", "admin@" + strings.ToLower(r.Name)}, flags...),
			env:     env("BITSREMOTE_PASSWORD=" + s.password),
			secrets: secrets,
		})
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		if j.Host != host || j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "Completed" {
			t.Errorf("transfer: %+v", j)
		}
		sameBytes(t, "a.bin", readFile(t, dest), content)
	})

	t.Run("a fault is the host's answer", func(t *testing.T) {
		// WinRM sends a fault's 500 without the mutual authentication
		// token: it is a fault (exit 5), not an impostor (exit 3).
		const unknownID = "{0BADC0DE-0000-4000-8000-000000000001}"
		res := run(t, runSpec{
			args:    append([]string{"get", unknownID, "-u", "admin"}, flags...),
			env:     env("BITSREMOTE_PASSWORD=" + s.password),
			secrets: secrets,
		})
		wantCode(t, res, 5)
		if !strings.Contains(res.Stderr, unknownID) || !strings.Contains(res.Stderr, "not found") {
			t.Errorf("stderr:\n%s", res.Stderr)
		}
	})

	t.Run("ticket cache without a password", func(t *testing.T) {
		cc := r.Kinit(t, "admin", s.password)
		res := run(t, runSpec{
			args:    append([]string{"list", "-o", "json"}, flags...),
			env:     env("KRB5CCNAME=FILE:" + cc),
			secrets: secrets,
		})
		wantCode(t, res, 0)
		if strings.TrimSpace(res.Stdout) != "[]" {
			t.Errorf("list: %s", res.Stdout)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "Not-The-Password-1"
		res := run(t, runSpec{
			args:    append([]string{"list", "-u", "admin"}, flags...),
			env:     env("BITSREMOTE_PASSWORD=" + wrong),
			secrets: append(secrets, wrong),
		})
		wantCode(t, res, 3)
		if !strings.Contains(res.Stderr, "KDC_ERR_PREAUTH_FAILED") || !strings.Contains(res.Stderr, "admin@"+r.Name) {
			t.Errorf("stderr does not say the KDC refused admin's password:\n%s", res.Stderr)
		}
	})

	t.Run("host by address", func(t *testing.T) {
		res := run(t, runSpec{
			args:    []string{"list", "-u", "admin", "-H", h.Host, "--auth", "kerberos", "--https", "--ca-file", h.CAFile},
			env:     env("BITSREMOTE_PASSWORD=" + s.password),
			secrets: secrets,
		})
		wantCode(t, res, 3)
		if !strings.Contains(res.Stderr, "the KDC does not know the service principal HTTP/127.0.0.1") {
			t.Errorf("stderr:\n%s", res.Stderr)
		}
	})

	t.Run("inventory host by address with its Kerberos name", func(t *testing.T) {
		_, port, _ := strings.Cut(h.Host, ":")
		inv := filepath.Join(t.TempDir(), "hosts.ini")
		if err := os.WriteFile(inv, []byte("[win]\nweb1 ansible_host=127.0.0.1 ansible_port="+port+
			" ansible_winrm_scheme=https ansible_winrm_transport=kerberos ansible_winrm_kerberos_hostname_override=localhost\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := run(t, runSpec{
			args:    []string{"list", "-i", inv, "-u", "admin", "--ca-file", h.CAFile, "-o", "json"},
			env:     env("BITSREMOTE_PASSWORD=" + s.password),
			secrets: secrets,
		})
		wantCode(t, res, 0)
	})

	t.Run("a user the host does not admit", func(t *testing.T) {
		r.AddUser(t, "intern", "Intern-Pw-1")
		res := run(t, runSpec{
			args:    append([]string{"list", "-u", "intern"}, flags...),
			env:     env("BITSREMOTE_PASSWORD=Intern-Pw-1"),
			secrets: append(secrets, "Intern-Pw-1"),
		})
		wantCode(t, res, 3)
		// The KDC gave intern a ticket; the host refused it.
		if want := "bitsremote: " + host + ": Enumerate: HTTP 401 "; !strings.HasPrefix(res.Stderr, want) {
			t.Errorf("stderr %q, want the host's 401 (%q...)", res.Stderr, want)
		}
	})

	if b, err := os.ReadFile(r.Log); err == nil && strings.Count(string(b), "ISSUE") == 0 {
		t.Errorf("the KDC issued no ticket")
	}
}

// TestKerberosSealed runs a whole transfer with --auth kerberos against a
// simulated default Windows host: HTTP on its port, unencrypted traffic
// refused (sim's default), so every message must go sealed with the
// Kerberos context's keys, as PowerShell sends them to a domain host.
func TestKerberosSealed(t *testing.T) {
	t.Parallel()
	r := krbtest.Start(t)
	kt := r.AddService(t, "HTTP/localhost")
	s := startSim(t, simOptions{auth: "kerberos", extra: []string{"--keytab", kt}})
	r.AddUser(t, "admin", s.password)
	h := s.host()
	host := strings.Replace(h.Host, "127.0.0.1", "localhost", 1)
	fs := newFileServer(t)
	u, content := fs.addRandom("krb/sealed.bin", 80_000)
	dest := filepath.Join(t.TempDir(), "sealed.bin")
	env := []string{"KRB5_CONFIG=" + r.Krb5Conf, "BITSREMOTE_PASSWORD=" + s.password}
	res := run(t, runSpec{
		args:    []string{"transfer", u, dest, "--interval", "50ms", "-o", "json", "-u", "admin", "-H", host, "--auth", "kerberos"},
		env:     env,
		secrets: s.secrets(),
	})
	wantCode(t, res, 0)
	var j jobJSON
	decode(t, res, &j)
	if j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "Completed" {
		t.Errorf("transfer: %+v", j)
	}
	sameBytes(t, "sealed.bin", readFile(t, dest), content)

	// --encryption never: the host refuses unsealed bodies (HTTP 500 with
	// no body, as Windows does with AllowUnencrypted=false).
	res = run(t, runSpec{
		args:    []string{"list", "-u", "admin", "-H", host, "--auth", "kerberos", "--encryption", "never"},
		env:     env,
		secrets: s.secrets(),
	})
	wantCode(t, res, 5)
	if !strings.Contains(res.Stderr, "HTTP 500: the host refused an unencrypted message; it probably requires encryption (AllowUnencrypted=false): use --encryption auto (NTLM or Kerberos) or --https") {
		t.Errorf("stderr:\n%s", res.Stderr)
	}
}
