package pywinrmtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnv(t *testing.T) {
	for _, k := range []string{"REQUESTS_CA_BUNDLE", "curl_ca_bundle", "HTTPS_PROXY", "http_proxy", "OPENSSL_CONF", "no_proxy"} {
		t.Setenv(k, "/elsewhere")
	}
	t.Setenv("BITSREMOTE_KEEP_ME", "yes")
	dir := t.TempDir()
	env, err := Env(dir)
	if err != nil {
		t.Fatal(err)
	}
	cnf := filepath.Join(dir, "openssl-legacy.cnf")
	var got []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if containsFold(dropped, k) || k == "BITSREMOTE_KEEP_ME" {
			got = append(got, kv)
		}
	}
	slices.Sort(got)
	want := []string{"BITSREMOTE_KEEP_ME=yes", "NO_PROXY=*", "OPENSSL_CONF=" + cnf, "no_proxy=*"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(cnf)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != LegacyOpenSSLConfig {
		t.Errorf("configuration file holds %q", b)
	}
}

func TestEnvUnwritableDir(t *testing.T) {
	_, err := Env(filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.HasPrefix(err.Error(), "pywinrmtest: write the OpenSSL configuration: open ") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheck(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "python3")
	err := Check(missing, os.Environ())
	if err == nil || !strings.HasPrefix(err.Error(), missing+" cannot run pywinrm: fork/exec "+missing+": no such file or directory") {
		t.Fatalf("err = %v", err)
	}
	// The real interpreter passes the check with the prepared environment
	// wherever the interop tests run (Require skips elsewhere).
	env := Require(t)
	if err := Check(Python, env); err != nil {
		t.Fatal(err)
	}
}
