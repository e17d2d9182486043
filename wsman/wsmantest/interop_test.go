package wsmantest_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
