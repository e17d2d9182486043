package hostcheck_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/internal/hostcheck"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const (
	user = `WIN1\admin`
	pass = "S3cret!pw"
)

func newHost(t *testing.T, installed bool) *bitssim.Host {
	t.Helper()
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{Auth: wsmantest.AuthNTLM, Users: map[string]string{user: pass}, RequireEncryption: true, Machine: "WIN1",
			ProductVersion: "OS: 10.0.17763 SP: 0.0 Stack: 3.0"},
		FeatureNotInstalled: !installed,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func client(t *testing.T, url, password string, enc transport.Encryption) *wsman.Client {
	t.Helper()
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: user, Password: password, Encryption: enc})
	if err != nil {
		t.Fatal(err)
	}
	c := wsman.NewClient(url, tr)
	c.Host = "win1"
	c.Retry = wsman.RetryPolicy{}
	return c
}

func ptr[T any](v T) *T { return &v }

var ignoreErr = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())

var server2019 = &hostcheck.OS{Caption: "Microsoft Windows Server 2019 Datacenter", Version: "10.0.17763", BuildNumber: "17763"}

func TestCheck(t *testing.T) {
	missing := "the BITS provider (WMI namespace root\\microsoft\\bits) is missing: the BITS-Compact-Server feature is not installed; 'bitsremote host prepare --yes' installs it"
	tests := []struct {
		name      string
		installed bool
		want      *hostcheck.Report
	}{
		{"ready", true, &hostcheck.Report{Host: "win1", Ready: true, Reachable: true, Auth: true, Encryption: "message",
			ProviderInstalled: ptr(true), OS: server2019, Problems: []string{},
			Feature: &hostcheck.Feature{Name: "BITS-Compact-Server", DisplayName: "Compact Server", Installed: true, InstallState: "Installed"}}},
		{"feature not installed", false, &hostcheck.Report{Host: "win1", Reachable: true, Auth: true, Encryption: "message",
			ProviderInstalled: ptr(false), OS: server2019, Problems: []string{missing},
			Feature: &hostcheck.Feature{Name: "BITS-Compact-Server", DisplayName: "Compact Server", Installed: false, InstallState: "Available"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, tt.installed)
			got := hostcheck.Check(context.Background(), "win1", client(t, h.URL, pass, transport.EncryptionAlways))
			if diff := cmp.Diff(tt.want, got, ignoreErr); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Err != nil {
				t.Errorf("Err = %v", got.Err)
			}
			if open := h.Shell.Open(); len(open) != 0 {
				t.Errorf("shells left open: %v", open)
			}
		})
	}
}

func TestCheckFailures(t *testing.T) {
	h := newHost(t, true)
	t.Run("wrong password", func(t *testing.T) {
		got := hostcheck.Check(context.Background(), "win1", client(t, h.URL, "wrong", transport.EncryptionAlways))
		if !got.Reachable || got.Auth || got.Ready || got.ProviderInstalled != nil || got.OS != nil || got.Feature != nil {
			t.Errorf("report = %+v", got)
		}
		if !errors.Is(got.Err, wsman.ErrAuth) && !errors.Is(got.Err, transport.ErrAuthentication) {
			t.Errorf("Err = %v, want an authentication error", got.Err)
		}
		if len(got.Problems) != 1 || !strings.HasPrefix(got.Problems[0], "authentication failed: ") || strings.Contains(got.Problems[0], "wrong") {
			t.Errorf("problems = %q", got.Problems)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		addr := testnet.RefusedAddr(t)
		got := hostcheck.Check(context.Background(), "win1", client(t, "http://"+addr+"/wsman", pass, transport.EncryptionAlways))
		if got.Reachable || got.Auth || got.Ready || got.Err == nil || len(got.Problems) != 1 || !strings.HasPrefix(got.Problems[0], "WinRM is not reachable: ") {
			t.Errorf("report = %+v", got)
		}
	})
	t.Run("shell refused", func(t *testing.T) {
		// A host whose WinRS is switched off (AllowRemoteShellAccess
		// false) is still ready: the shell only adds the OS and feature.
		h.Server.Handle(wsmantest.ShellResourceURI, refusingShell{wsmantest.NewShell(nil)})
		got := hostcheck.Check(context.Background(), "win1", client(t, h.URL, pass, transport.EncryptionAlways))
		if !got.Ready || got.OS != nil || got.Feature != nil || len(got.Problems) != 1 ||
			!strings.HasPrefix(got.Problems[0], "remote shell: cannot read the OS version: win1: Create shell: WS-Management fault AccessDenied") {
			t.Errorf("report = %+v", got)
		}
	})
}

// refusingShell answers every shell request with w:AccessDenied, as WinRM
// does when AllowRemoteShellAccess is false.
type refusingShell struct{ *wsmantest.Shell }

func (refusingShell) ServeAction(context.Context, *wsmantest.Request) (*wsmantest.Reply, error) {
	return nil, &wsman.Fault{HTTPStatus: 500, Code: "Sender", SubcodeNS: wsman.NsWSMan, Subcode: "AccessDenied", WSManCode: 5,
		Reason: "Access is denied. ", Message: "Access is denied. "}
}

func TestPrepare(t *testing.T) {
	ready := &hostcheck.Report{Host: "win1", Ready: true, Reachable: true, Auth: true, Encryption: "message",
		ProviderInstalled: ptr(true), OS: server2019, Problems: []string{},
		Feature: &hostcheck.Feature{Name: "BITS-Compact-Server", DisplayName: "Compact Server", Installed: true, InstallState: "Installed"}}
	t.Run("dry run changes nothing", func(t *testing.T) {
		h := newHost(t, false)
		p := hostcheck.Prepare(context.Background(), "win1", client(t, h.URL, pass, transport.EncryptionAlways), false)
		if !p.DryRun || p.Action != hostcheck.ScriptInstall || p.Install != nil || p.After != nil || p.Before.Ready || p.Err != nil {
			t.Errorf("prepare = %+v", p)
		}
		if h.ProviderInstalled() {
			t.Error("the dry run installed the feature")
		}
	})
	t.Run("installs and re-checks", func(t *testing.T) {
		h := newHost(t, false)
		p := hostcheck.Prepare(context.Background(), "win1", client(t, h.URL, pass, transport.EncryptionAlways), true)
		if p.DryRun || p.Action != hostcheck.ScriptInstall || p.Before.Ready || p.Err != nil {
			t.Errorf("prepare = %+v", p)
		}
		if diff := cmp.Diff(&hostcheck.InstallResult{Success: true, RestartNeeded: "No", ExitCode: "Success"}, p.Install); diff != "" {
			t.Errorf("install (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ready, p.After, ignoreErr); diff != "" {
			t.Errorf("after (-want +got):\n%s", diff)
		}
		if !h.ProviderInstalled() {
			t.Error("not installed on the host")
		}
	})
	t.Run("ready host is left alone", func(t *testing.T) {
		h := newHost(t, true)
		p := hostcheck.Prepare(context.Background(), "win1", client(t, h.URL, pass, transport.EncryptionAlways), true)
		if p.Action != "" || p.Install != nil || p.After != nil || p.DryRun {
			t.Errorf("prepare = %+v", p)
		}
		if diff := cmp.Diff(ready, p.Final(), ignoreErr); diff != "" {
			t.Errorf("final (-want +got):\n%s", diff)
		}
		var installs int
		for _, c := range h.Shell.History() {
			if strings.Contains(c.Line, "-EncodedCommand") && c.ExitCode == 0 {
				installs++
			}
		}
		if installs != 2 { // OS and feature, no install
			t.Errorf("%d scripts ran, want 2: %+v", installs, h.Shell.History())
		}
	})
}

func TestCleanError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text\r\n", "plain text"},
		{"#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">Get-Foo : The term 'Get-Foo' is not recognized as the name of a cmdlet, _x000D__x000A_</S><S S=\"Error\">function &amp; more._x000D__x000A_</S></Objs>",
			"Get-Foo : The term 'Get-Foo' is not recognized as the name of a cmdlet, function & more."},
		{"#< CLIXML\r\n<Objs><Obj S=\"progress\" RefId=\"0\"/></Objs>", "#< CLIXML\r\n<Objs><Obj S=\"progress\" RefId=\"0\"/></Objs>"},
	}
	for _, tt := range tests {
		if got := hostcheck.CleanError(tt.in); got != tt.want {
			t.Errorf("CleanError(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzCleanError: any stderr a host sends gives text, never a panic, and
// plain text passes through trimmed.
func FuzzCleanError(f *testing.F) {
	f.Add("#< CLIXML\r\n<Objs><S S=\"Error\">a_x000D__x000A_</S></Objs>")
	f.Add("#< CLIXML<S S=\"Error\">unterminated")
	f.Add("plain")
	f.Fuzz(func(t *testing.T, s string) {
		got := hostcheck.CleanError(s)
		if !strings.HasPrefix(strings.TrimSpace(s), "#< CLIXML") && got != strings.TrimSpace(s) {
			t.Fatalf("plain %q became %q", s, got)
		}
	})
}
