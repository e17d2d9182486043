// Package pywinrmtest prepares Debian's pywinrm as an independent peer for
// interop tests and benchmarks: the interpreter that has it, the OpenSSL
// configuration its NTLM code needs, and an environment free of variables
// that would change what requests does (peers.md §1.1).
package pywinrmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Python is Debian's interpreter, where python3-winrm is installed; a
// python3 found on PATH (a virtualenv, pyenv) may lack it.
const Python = "/usr/bin/python3"

// RequireEnv names the variable that turns a missing or unusable pywinrm
// from a skip into a failure when set to "1" (CI, where it is installed).
const RequireEnv = "BITSREMOTE_REQUIRE_INTEROP"

// LegacyOpenSSLConfig enables OpenSSL 3's legacy provider next to the
// default one: MD4, which ntlm-auth 1.4.0 needs for the NT hash through
// hashlib.new("md4"), lives only there (peers.md §1.1 pitfall 2).
const LegacyOpenSSLConfig = `openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
`

// dropped are the variables (matched without regard to case) left out of
// pywinrm's environment: requests merges a CA bundle variable over the
// session's own verify setting (pywinrm#201), proxies would route
// loopback traffic away, and OPENSSL_CONF is replaced.
var dropped = []string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "OPENSSL_CONF"}

// Env writes the legacy OpenSSL configuration into dir and returns the
// current environment without the variables above, plus OPENSSL_CONF
// pointing at that file and no proxy for any host.
func Env(dir string) ([]string, error) {
	cnf := filepath.Join(dir, "openssl-legacy.cnf")
	if err := os.WriteFile(cnf, []byte(LegacyOpenSSLConfig), 0o600); err != nil {
		return nil, fmt.Errorf("pywinrmtest: write the OpenSSL configuration: %w", err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !containsFold(dropped, k) {
			env = append(env, kv)
		}
	}
	return append(env, "OPENSSL_CONF="+cnf, "NO_PROXY=*", "no_proxy=*"), nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Check reports why python cannot run pywinrm with env: winrm must import
// and MD4 must be available, or NTLM fails only once a test is under way.
func Check(python string, env []string) error {
	cmd := exec.Command(python, "-c", `import winrm, hashlib; hashlib.new("md4")`)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s cannot run pywinrm: %w: %s", python, err, bytes.TrimSpace(out))
	}
	return nil
}

// Require returns the environment to run pywinrm with Python in a test. It
// skips the test when pywinrm cannot run, unless RequireEnv is "1", where
// it fails it instead.
func Require(t testing.TB) []string {
	t.Helper()
	env, err := Env(t.TempDir())
	if err == nil {
		err = Check(Python, env)
	}
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("pywinrm is required (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("pywinrm not usable: %v", err)
	}
	return env
}
