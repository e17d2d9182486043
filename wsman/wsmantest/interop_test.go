package wsmantest_test

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/internal/pywinrmtest"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

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
	env := pywinrmtest.Require(t)
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
			cmd := exec.CommandContext(ctx, pywinrmtest.Python, script, s.URL, tt.transport, tt.encryption, testUser, testPass, widgetURI)
			cmd.Env = env
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("pywinrm: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
			}
			checkPyResult(t, out)
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

// TestPywinrmKerberosInterop has pywinrm (requests-kerberos and
// pykerberos over MIT GSSAPI, a Kerberos stack independent of gokrb5) send
// the same envelopes over HTTPS with a ticket from kinit. requests-kerberos
// requires mutual authentication, so pywinrm getting any reply at all
// proves the server's AP-REP.
func TestPywinrmKerberosInterop(t *testing.T) {
	env := pywinrmtest.Require(t)
	r := startRealm(t)
	cc := r.Kinit(t, krbtest.User, krbtest.Password)
	script, err := filepath.Abs(filepath.Join("testdata", "pywinrm_interop.py"))
	if err != nil {
		t.Fatal(err)
	}
	s := wsmantest.NewUnstartedServer(wsmantest.Config{Auth: wsmantest.AuthKerberos, KerberosKeytab: r.keytab, Users: map[string]string{krbtest.User: ""}})
	s.Handle(widgetURI, newWidgets(5))
	s.StartTLS()
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	// The host name is what the client's SPN (HTTP@localhost) is built from.
	url := "https://localhost:" + port + "/wsman"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The password argument is unused: the ticket comes from the cache.
	cmd := exec.CommandContext(ctx, pywinrmtest.Python, script, url, "kerberos", "never", krbtest.User+"@"+r.Name, "", widgetURI)
	cmd.Env = append(env, "KRB5_CONFIG="+r.Krb5Conf, "KRB5CCNAME=FILE:"+cc)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pywinrm: %v\nstdout: %s\nstderr: %s\nserver log: %+v", err, out, stderr.String(), s.Log())
	}
	checkPyResult(t, out)
	var actions []string
	for _, e := range s.Log() {
		actions = append(actions, e.Action)
		if e.User != krbtest.User || e.Encrypted || e.AuthError != "" {
			t.Errorf("log entry %+v: want User=%s, unencrypted, no AuthError", e, krbtest.User)
		}
	}
	wantActions := []string{wsman.ActionGet, wsman.ActionEnumerate, wsman.ActionPull, wsman.ActionPull, widgetURI + "/Count", wsman.ActionGet}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	// One preemptive logon, then the connection's: requests keeps it alive.
	if n, c := s.KerberosLogons(), s.Connections(); n != 1 || c != 1 {
		t.Errorf("%d Kerberos logons on %d connections, want 1 on 1", n, c)
	}
}

// checkPyResult checks what the pywinrm script printed: the values it read
// from our Get, Enumerate/Pull and Invoke replies, and the fault it got,
// whatever the transport.
func checkPyResult(t *testing.T, out []byte) {
	t.Helper()
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
}
