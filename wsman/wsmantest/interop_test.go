package wsmantest_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const pythonPath = "/usr/bin/python3"

// requirePywinrm skips when Debian's pywinrm is not installed, unless
// BITSREMOTE_REQUIRE_INTEROP=1 (CI), where its absence is a failure.
func requirePywinrm(t *testing.T) {
	t.Helper()
	if err := exec.Command(pythonPath, "-c", "import winrm").Run(); err != nil {
		if os.Getenv("BITSREMOTE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("pywinrm is required (BITSREMOTE_REQUIRE_INTEROP=1) but %s -c 'import winrm' failed: %v", pythonPath, err)
		}
		t.Skipf("pywinrm not installed (%s -c 'import winrm': %v)", pythonPath, err)
	}
}

// OpenSSL 3 ships MD4, which ntlm-auth 1.4.0 needs, only in the legacy
// provider (peers.md §1.1 pitfall 2).
const opensslLegacy = `openssl_conf = openssl_init
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

type pyResult struct {
	Get       map[string]*string `json:"get"`
	Enumerate []string           `json:"enumerate"`
	Pulls     int                `json:"pulls"`
	Invoke    map[string]*string `json:"invoke"`
	Fault     map[string]any     `json:"fault"`
}

func strp(s string) *string { return &s }

// TestPywinrmInterop has pywinrm send Get, Enumerate/Pull, Invoke and a
// faulting Get to the server with Basic, NTLM and sealed NTLM, and checks
// what pywinrm parsed from our replies.
func TestPywinrmInterop(t *testing.T) {
	requirePywinrm(t)
	dir := t.TempDir()
	cnf := filepath.Join(dir, "openssl-legacy.cnf")
	if err := os.WriteFile(cnf, []byte(opensslLegacy), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "pywinrm_interop.py"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, transport, encryption string
		cfg                         wsmantest.Config
	}{
		{"basic", "basic", "never", wsmantest.Config{Auth: wsmantest.AuthBasic}},
		{"ntlm", "ntlm", "never", wsmantest.Config{Auth: wsmantest.AuthNTLM}},
		{"ntlm sealed", "ntlm", "always", wsmantest.Config{Auth: wsmantest.AuthNTLM, RequireEncryption: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, tt.cfg, 5)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, pythonPath, script, s.URL, tt.transport, tt.encryption, testUser, testPass, widgetURI)
			cmd.Env = pyEnv(cnf)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("pywinrm: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
			}
			var got pyResult
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("pywinrm output %q: %v", out, err)
			}
			want := pyResult{
				Get:       map[string]*string{"Caption": strp("Widget number 1"), "Name": strp("w001"), "State": strp("1"), "Owner": nil},
				Enumerate: []string{"w000", "w001", "w002", "w003", "w004"},
				Pulls:     2,
				Invoke:    map[string]*string{"ReturnValue": strp("0"), "Total": strp("5")},
			}
			fault := got.Fault
			got.Fault = nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("pywinrm read (-want +got):\n%s", diff)
			}
			for _, k := range []string{"wsmanfault_code", "subcode", "code", "http"} {
				if fault[k] != true {
					t.Errorf("pywinrm fault field %s not as expected: %v", k, fault)
				}
			}
			// The server's view: who sent what, sealed or not.
			wantEnc := tt.encryption == "always"
			var actions []string
			for _, e := range s.Log() {
				if e.Action == "" {
					continue // authentication legs
				}
				actions = append(actions, e.Action)
				if e.Encrypted != wantEnc || e.User != testUser {
					t.Errorf("log entry %+v: want Encrypted=%v User=%s", e, wantEnc, testUser)
				}
			}
			wantActions := []string{wsman.ActionGet, wsman.ActionEnumerate, wsman.ActionPull, wsman.ActionPull, widgetURI + "/Count", wsman.ActionGet}
			if diff := cmp.Diff(wantActions, actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

// pyEnv is the environment for pywinrm: the legacy OpenSSL provider, no
// CA bundle overrides (pywinrm#201) and no proxy for loopback.
func pyEnv(cnf string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "OPENSSL_CONF", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OPENSSL_CONF="+cnf, "NO_PROXY=*", "no_proxy=*")
}
